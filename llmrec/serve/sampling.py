"""Constrained sampling for `temperature` / `top_p` requests: model.generate with do_sample and the SID trie
processor, so every draw is a catalogue item. (decode.sample_items has no top_p, exclusion or seed, which
the OpenAI contract needs.)"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import GenerationConfig

from llmrec.decode import SidConstrainedLogitsProcessor, SidTrie, clean_generation_config, encode_prompts


@torch.no_grad()
def sample_lists(model, tokenizer, trie: SidTrie, prompt: str, *, k: int, lists: int, temperature: float,
                 top_p: float, seed: int | None, exclude: set[str] | None, same: Callable[[str], str],
                 max_rounds: int = 4) -> list[list[tuple[str, float]]]:
    """`lists` independent draws of up to `k` distinct items each ([(item_id, log_prob)], draw order).

    `same(item_id)` is the key under which two items count as one (their normalised title), so a list
    never names one title twice. `seed` makes the draws reproducible (the global RNG is restored after).
    """
    dev = next(model.parameters()).device
    if trie.device != dev:
        trie.to(dev)
    ids, am = encode_prompts(tokenizer, [prompt], trie.pad_id)
    ids, am = ids.to(dev), am.to(dev)
    per = min(64, 2 * k)
    cfg = GenerationConfig(do_sample=True, temperature=float(temperature or 1.0), top_p=float(top_p or 1.0),
                           top_k=0, num_beams=1, num_return_sequences=per, max_new_tokens=trie.max_depth + 1,
                           pad_token_id=trie.pad_id, eos_token_id=list(trie.end_ids), output_scores=True,
                           return_dict_in_generate=True)
    out: list[dict[str, tuple[str, float]]] = [{} for _ in range(lists)]
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[] if dev.type == "cpu" else [dev]):
            if seed is not None:
                torch.manual_seed(int(seed))
            for row in out:
                for _ in range(max_rounds):
                    proc = SidConstrainedLogitsProcessor(trie, prompt_length=ids.shape[1],
                                                         exclude=[exclude] if exclude else None)
                    with clean_generation_config(model):
                        gen = model.generate(input_ids=ids, attention_mask=am, generation_config=cfg,
                                             logits_processor=[proc])
                    lp = model.compute_transition_scores(gen.sequences, gen.scores, normalize_logits=True)
                    seq_lp = lp.masked_fill(~torch.isfinite(lp), 0.0).sum(-1).tolist()
                    items = trie.items_from_sequences(gen.sequences[:, ids.shape[1]:]).tolist()
                    for i, s in zip(items, seq_lp):
                        if i >= 0 and len(row) < k:
                            row.setdefault(same(trie.item_ids[i]), (trie.item_ids[i], s))
                    if len(row) >= k:
                        break
    finally:
        model.train(was_training)
    return [list(r.values()) for r in out]
