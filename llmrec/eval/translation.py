"""Accuracy of the SID <-> text translation tasks (item2sid, sid2item) with greedy decoding.

item2sid: the title prompt -> greedy constrained decoding (one beam) -> item id; right when it is
the item itself. sid2item: the SID prompt -> greedy free text; right when it equals the title as
the corpus taught it (clipped to the corpus's `max_title_chars`; exact after whitespace/case
folding). Both use the corpus's own prompts (paraphrase 0).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from llmrec.data.records import Item
from llmrec.eval.metrics import translation_accuracy
from llmrec.sid.sidmap import SidMap


def sample_items(items: Mapping[str, Item], sid_map: SidMap, n: int, seed: int = 0) -> list[str]:
    """Up to n items that have a title and a SID, chosen reproducibly."""
    ids = sorted(i for i, it in items.items() if it.title and i in sid_map)
    random.Random(seed).shuffle(ids)
    return ids[:n]


@torch.no_grad()
def evaluate_translation(model, tokenizer, sid_map: SidMap, items: Mapping[str, Item], item_ids: Sequence[str],
                         *, batch_size: int = 32, max_title_tokens: int = 64,
                         max_title_chars: int | None = None) -> dict[str, Any]:
    """{'item2sid_acc', 'sid2item_acc', 'sid2item_constrained_acc', 'n', 'examples': [...]} over
    `item_ids` (training items); the constrained figure decodes over a trie of catalogue titles.

    `max_title_chars` must match the corpus the model was trained on (None: CorpusConfig's default).
    """
    from llmrec.corpus import CorpusConfig, make_messages, render_prompt
    from llmrec.corpus.tasks import clip_text
    from llmrec.decode import SidTrie, recommend

    trie = SidTrie(sid_map, tokenizer, device=next(model.parameters()).device)
    if max_title_chars is None:
        max_title_chars = CorpusConfig().max_title_chars
    titles = [clip_text(items[i].title, max_title_chars) for i in item_ids]
    prompts = [render_prompt(tokenizer, make_messages("item2sid_title", {"title": t}, template_index=0))
               for t in titles]
    got = recommend(model, tokenizer, trie, prompts, k=1, num_beams=1, batch_size=batch_size)
    pred_items = [row[0][0] if row else None for row in got]

    sid_prompts = [render_prompt(tokenizer, make_messages("sid2item_title", {"sid": sid_map.sid_string(i)},
                                                          template_index=0)) for i in item_ids]
    pred_titles: list[str] = []
    was_training = model.training
    model.eval()
    end_ids = list(trie.end_ids)
    pad_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for b in range(0, len(sid_prompts), batch_size):
            enc = tokenizer(sid_prompts[b:b + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            out = model.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=max_title_tokens,
                                 eos_token_id=end_ids, pad_token_id=trie.pad_id, top_k=None, top_p=None,
                                 temperature=None)
            pred_titles += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = pad_side
        model.train(was_training)
    pred_titles = [t.strip() for t in pred_titles]

    # The same SID prompts, greedy over a trie of the catalogue's titles: the answer is always some
    # catalogue title, as a SID answer is always a catalogue SID.
    title_trie = catalogue_title_trie(tokenizer, items, max_title_chars, trie.end_ids, trie.pad_id,
                                      device=trie.device)
    got = recommend(model, tokenizer, title_trie, sid_prompts, k=1, num_beams=1, batch_size=batch_size)
    pred_constrained = [clip_text(items[row[0][0]].title, max_title_chars) if row else "" for row in got]
    return {
        "n": len(item_ids),
        "item2sid_acc": translation_accuracy(pred_items, list(item_ids)),
        "sid2item_acc": translation_accuracy(pred_titles, titles, normalize=True),
        "sid2item_constrained_acc": translation_accuracy(pred_constrained, titles, normalize=True),
        "examples": [{"item": i, "title": t, "item2sid_pred": p, "sid2item_pred": q, "sid2item_constrained": c}
                     for i, t, p, q, c in list(zip(item_ids, titles, pred_items, pred_titles, pred_constrained))[:20]],
    }


def catalogue_title_trie(tokenizer, items: Mapping[str, Item], max_title_chars: int | None,
                         end_ids: Sequence[int], pad_id: int, device: torch.device | str = "cpu"):
    """A trie over every catalogue title (clipped like the corpus), tokenized as an answer."""
    from llmrec.corpus.tasks import clip_text
    from llmrec.decode import SidTrie

    seqs = {i: tokenizer(clip_text(it.title, max_title_chars), add_special_tokens=False)["input_ids"]
            for i, it in items.items() if it.title}
    return SidTrie.from_token_sequences(seqs, tokenizer, end_ids=end_ids, pad_id=pad_id, device=device)
