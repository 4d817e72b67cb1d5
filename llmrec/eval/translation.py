"""Accuracy of the SID <-> text translation tasks (item2sid, sid2item) with greedy decoding.

item2sid: the title prompt -> greedy constrained decoding (one beam) -> item id; right when it is
the item itself. sid2item: the SID prompt -> greedy free text; right when it equals the title as
the corpus taught it (clipped to the corpus's `max_title_chars`; exact after whitespace/case
folding). Both use the corpus's own prompts (paraphrase 0).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from llmrec.corpus import CorpusConfig, load_corpus_manifest, make_messages, render_prompt
from llmrec.corpus.tasks import clip_text
from llmrec.data.records import Item
from llmrec.decode import GenerativeRecommender, SidTrie, clean_generation_config, recommend
from llmrec.eval.metrics import translation_accuracy
from llmrec.io import LlmrecError, write_json
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)


def sample_items(items: Mapping[str, Item], sid_map: SidMap, n: int, seed: int = 0) -> list[str]:
    """Up to n items that have a title and a SID, chosen reproducibly."""
    ids = sorted(i for i, it in items.items() if it.title and i in sid_map)
    random.Random(seed).shuffle(ids)
    return ids[:n]


@torch.no_grad()
def evaluate_translation(rec: GenerativeRecommender, item_ids: Sequence[str], *, batch_size: int = 32,
                         max_title_tokens: int = 64, max_title_chars: int | None = None) -> dict[str, Any]:
    """{'item2sid_acc', 'sid2item_acc', 'sid2item_constrained_acc', 'n', 'examples': [...]} over
    `item_ids` (training items of `rec.items`); the constrained figure decodes over a trie of
    catalogue titles. `max_title_chars` must match the corpus the model was trained on (None:
    CorpusConfig's default)."""
    model, tokenizer, sid_map, items, trie = rec.model, rec.tokenizer, rec.sid_map, rec.items, rec.trie
    if items is None:
        raise LlmrecError("evaluate_translation needs the recommender's catalogue (items)")
    if max_title_chars is None:
        max_title_chars = CorpusConfig().max_title_chars
    titles = [clip_text(items[i].title, max_title_chars) for i in item_ids]
    prompts = [render_prompt(tokenizer, make_messages("item2sid_title", {"title": t}, template_index=0,
                                                           library=rec.library))
               for t in titles]
    got = rec.recommend_prompts(prompts, k=1, num_beams=1, batch_size=batch_size)
    pred_items = [row[0][0] if row else None for row in got]

    sid_prompts = [render_prompt(tokenizer, make_messages("sid2item_title", {"sid": sid_map.sid_string(i)},
                                                          template_index=0, library=rec.library)) for i in item_ids]
    pred_titles: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for b in range(0, len(sid_prompts), batch_size):
            enc = tokenizer(sid_prompts[b:b + batch_size], return_tensors="pt", padding=True, padding_side="left",
                            add_special_tokens=False).to(model.device)
            with clean_generation_config(model):
                out = model.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=max_title_tokens,
                                     eos_token_id=list(trie.end_ids), pad_token_id=trie.pad_id)
            pred_titles += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
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


def run_translation(model_dirs: Sequence[str | Path], items: Mapping[str, Item], n: int, seed: int,
                    out_dirs: Mapping[str, Path], corpus_dir: Path | None = None) -> dict[str, dict]:
    """item2sid / sid2item accuracy per model on n training items, written to out_dirs[name]/translation.json.

    Titles are clipped as the run's corpus clipped them (its manifest), so the check asks for
    exactly the text the model was taught. `out_dirs` maps each model's ranker name (in the order
    of `model_dirs`) to its folder."""
    max_title_chars = None
    if corpus_dir is not None and (Path(corpus_dir) / "manifest.json").exists():
        max_title_chars = load_corpus_manifest(corpus_dir).get("config", {}).get("max_title_chars")
    out = {}
    for model_dir, (name, folder) in zip(model_dirs, out_dirs.items()):
        rec = GenerativeRecommender.from_dir(model_dir, items)
        res = evaluate_translation(rec, sample_items(items, rec.sid_map, n, seed=seed),
                                   max_title_chars=max_title_chars)
        write_json(Path(folder) / "translation.json", res)
        out[name] = {k: res[k] for k in ("n", "item2sid_acc", "sid2item_acc", "sid2item_constrained_acc")}
        log.info("%s: item2sid %.3f  sid2item %.3f free text, %.3f over catalogue titles  (n=%d)", name,
                 res["item2sid_acc"], res["sid2item_acc"], res["sid2item_constrained_acc"], res["n"])
    return out


def catalogue_title_trie(tokenizer, items: Mapping[str, Item], max_title_chars: int | None,
                         end_ids: Sequence[int], pad_id: int, device: torch.device | str = "cpu"):
    """A trie over every catalogue title (clipped like the corpus), tokenized as an answer."""
    seqs = {i: tokenizer(clip_text(it.title, max_title_chars), add_special_tokens=False)["input_ids"]
            for i, it in items.items() if it.title}
    return SidTrie.from_token_sequences(seqs, tokenizer, end_ids=end_ids, pad_id=pad_id, device=device)
