"""Top-K item recommendation by trie-constrained beam search.

`recommend()` runs its own batched beam search over the SID trie with the model's KV cache: each
step scores only the allowed children of every beam (a gather), never the full vocabulary. Its
rules are those of transformers' beam search with `length_penalty=0.0` (the score of an item is
the sum of the raw log-probabilities of its SID tokens plus the end token; a finishing candidate
is kept only when it ranks among the top `num_beams` of its step), so it ranks items like
`recommend_hf()` (constrained `model.generate`) up to ties and float noise. The model's own
`generation_config` is never read. Item ids come from trie nodes, never from decoded text.

Excluded items (e.g. the user's history) are pruned from the trie per prompt: their leaves, and
any prefix whose items are all excluded, are masked, so no beam is spent on them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from transformers import BatchEncoding, GenerationConfig

from llmrec.decode.processor import SidConstrainedLogitsProcessor
from llmrec.decode.trie import SidTrie
from llmrec.io import LlmrecError
from llmrec.llm.sid_softmax import SidLevelGroups, model_sid_softmax

Prompts = Sequence[str] | Sequence[Sequence[int]] | BatchEncoding


def encode_prompts(tokenizer, prompts: Prompts, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (input_ids, attention_mask) for rendered prompt strings, token id lists, or a
    BatchEncoding (re-padded on the left whatever its padding side). Strings are tokenized with
    add_special_tokens=False: a rendered chat prompt already holds its special tokens."""
    if isinstance(prompts, (BatchEncoding, dict)):
        ids = prompts["input_ids"]
        am = prompts.get("attention_mask")
        rows = []
        for i, row in enumerate(ids):
            row = torch.as_tensor(row)
            rows.append(row[torch.as_tensor(am[i]).bool()].tolist() if am is not None else row.tolist())
    elif len(prompts) and isinstance(prompts[0], str):
        rows = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    else:
        rows = [list(map(int, r)) for r in prompts]
    if not rows or any(len(r) == 0 for r in rows):
        raise LlmrecError("recommend(): every prompt must be non-empty.")
    if tokenizer.pad_token_id is None:
        raise LlmrecError("the tokenizer has no pad token; load models with llmrec.llm (load_base / load_model), "
                          "which set one.")
    enc = tokenizer.pad({"input_ids": rows}, padding=True, padding_side="left", return_tensors="pt")
    return enc["input_ids"].long(), enc["attention_mask"].long()


def _check(trie: SidTrie, model, k: int, num_beams: int | None) -> int:
    if k < 1:
        raise LlmrecError(f"recommend(): k must be >= 1 (got {k}).")
    num_beams = max(k, 20) if num_beams is None else int(num_beams)
    if num_beams < k:
        raise LlmrecError(f"recommend(): num_beams={num_beams} < k={k}; beam search returns at most "
                          "num_beams items, raise num_beams.")
    vocab = model.get_input_embeddings().weight.shape[0]
    if trie.vocab_needed > vocab:
        raise LlmrecError(f"model has {vocab} embedding rows but the SID trie uses token id "
                          f"{trie.vocab_needed - 1}: resize the model embeddings after adding SID tokens.")
    return num_beams


def _format(items: list[str], scores: list[float], return_scores: bool):
    return list(zip(items, scores)) if return_scores else list(items)


@torch.inference_mode()
def _beam_search(model, trie: SidTrie, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 num_beams: int, banned: torch.Tensor | None,
                 score_end: bool = True, groups: SidLevelGroups | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Constrained beam search for one chunk. Returns finished (scores, leaf nodes), each (R, N),
    sorted best first; empty slots have score -inf and node -1. Without `score_end` a finished
    item scores its SID tokens only (the end token adds 0). With `groups` a SID token scores its
    level-softmax log-probability (a model trained with the level softmax)."""
    dev = input_ids.device
    R, N = input_ids.shape[0], num_beams
    neg = float("-inf")
    pos = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos, use_cache=True,
                logits_to_keep=1)
    cache = out.cache
    logp = F.log_softmax(out.logits[:, -1].float(), dim=-1)
    next_pos = attention_mask.sum(-1)
    nodes = torch.zeros(R, 1, dtype=torch.long, device=dev)
    scores = torch.zeros(R, 1, device=dev)
    fin_s = torch.full((R, N), neg, device=dev)
    fin_n = torch.full((R, N), -1, dtype=torch.long, device=dev)
    end_ids = trie.end_ids_t
    prompt_ok = attention_mask.bool()  # (R, P)
    widths: list[int] = []
    P = prompt_ok.shape[1]
    path = torch.zeros(R, 1, 0, dtype=torch.long, device=dev)  # beam slot per depth (tree attention)
    neg_mask = torch.finfo(next(model.parameters()).dtype).min
    for step in range(trie.max_depth + 1):
        W = nodes.shape[1]
        flat = nodes.reshape(-1)
        ctok, cnode, cok = trie.child_tok[flat], trie.child_node[flat], trie.child_ok[flat]
        D = ctok.shape[1]
        if banned is not None:
            cok = cok & ~banned.gather(1, cnode.view(R, W * D)).view(R * W, D)
        lp = logp.gather(1, ctok) if groups is None else groups.token_log_probs(logp, ctok)
        leaf = trie.is_leaf[flat]
        if len(trie.end_ids) > 1:  # one finishing candidate per leaf: its best end token
            end_lp = logp[:, end_ids].max(-1).values
            lp[:, 0] = torch.where(leaf, end_lp, lp[:, 0])
            cok = cok & ~(leaf.unsqueeze(1) & (torch.arange(D, device=dev) > 0))
        if not score_end:
            lp[:, 0] = torch.where(leaf, torch.zeros_like(lp[:, 0]), lp[:, 0])
        cand = torch.where(cok, scores.view(-1, 1) + lp, neg).view(R, W * D)
        is_end = leaf.view(R, W, 1).expand(R, W, D).reshape(R, W * D)

        # finished: finishing candidates that rank among the top N of this step
        top_s, top_i = cand.topk(min(N, W * D), dim=1)
        top_end = is_end.gather(1, top_i) & torch.isfinite(top_s)
        new_s = torch.where(top_end, top_s, neg)
        new_n = torch.where(top_end, nodes.gather(1, top_i // D), -1)
        merged_s, order = torch.cat([fin_s, new_s], 1).topk(N, dim=1)
        fin_s, fin_n = merged_s, torch.cat([fin_n, new_n], 1).gather(1, order)
        if step == trie.max_depth:
            break
        run = cand.masked_fill(is_end, neg)
        run_s, run_i = run.topk(min(N, W * D), dim=1)
        alive = torch.isfinite(run_s)
        # stop when nothing runs, or no running beam can still beat a full finished list
        # (scores never increase, so this is exact for length_penalty=0)
        full = torch.isfinite(fin_s).all(1)
        improvable = alive.any(1) & (~full | (run_s[:, 0] > fin_s[:, -1]))
        if not bool(improvable.any()):
            break
        M = run_s.shape[1]
        tok = torch.where(alive, ctok.view(R, W * D).gather(1, run_i), trie.pad_id)
        nodes = torch.where(alive, cnode.view(R, W * D).gather(1, run_i), trie.done)
        scores = run_s
        # Tree attention: the new beam tokens of a row share one sequence (no per-beam copy of the
        # prompt cache); each attends to the prompt and to its own ancestors only.
        parent = run_i // D
        path = torch.cat([path.gather(1, parent.unsqueeze(-1).expand(R, M, path.shape[2])),
                          torch.arange(M, device=dev).view(1, M, 1).expand(R, M, 1)], 2)
        widths.append(M)
        gen_ok = torch.cat([F.one_hot(path[:, :, d], w).bool() for d, w in enumerate(widths)], 2)
        ok = torch.cat([prompt_ok.unsqueeze(1).expand(R, M, P), gen_ok], 2)
        mask4 = torch.zeros(ok.shape, dtype=next(model.parameters()).dtype, device=dev)
        mask4 = mask4.masked_fill(~ok, neg_mask).unsqueeze(1)
        pos_ids = (next_pos + step).view(R, 1).expand(R, M)
        out = model(input_ids=tok, attention_mask=mask4, position_ids=pos_ids, cache=cache, use_cache=True)
        cache = out.cache
        logp = F.log_softmax(out.logits.float(), dim=-1).view(R * M, -1)
    return fin_s, fin_n


def recommend(model, tokenizer, trie: SidTrie, prompts: Prompts, k: int = 10, num_beams: int | None = None,
              batch_size: int = 16, exclude: Sequence[Iterable[str] | None] | None = None,
              return_scores: bool = True, score_end: bool = True) -> list[list]:
    """Top-k distinct items per prompt: [[(item_id, log_prob), ...], ...] (best first).

    prompts: rendered prompt strings, token id lists or a BatchEncoding (any padding side).
    num_beams: beam width (>= k; default max(k, 20)). exclude: per prompt, item ids never returned.
    Scores are sequence log-probabilities (SID tokens + end token, length_penalty 0; a SID token's
    under the level softmax for a model trained with it, llmrec.llm.sid_softmax). `score_end`
    False leaves the end token out: for models whose answer does not end after one item (the
    `stream` format continues with the next SID), where P(end) says whether the sequence stops,
    not how good the item is.
    """
    num_beams = _check(trie, model, k, num_beams)
    dev = next(model.parameters()).device
    if trie.device != dev:
        trie.to(dev)
    ids, am = encode_prompts(tokenizer, prompts, trie.pad_id)
    groups = trie.level_groups(model) if model_sid_softmax(model) == "level" else None
    if exclude is not None and len(exclude) != ids.shape[0]:
        raise LlmrecError(f"recommend(): exclude has {len(exclude)} entries for {ids.shape[0]} prompts.")
    was_training = model.training
    model.eval()
    results: list[list] = []
    try:
        for b in range(0, ids.shape[0], batch_size):
            cid, cam = ids[b:b + batch_size], am[b:b + batch_size]
            keep = cam.any(0)  # drop columns that are padding for every row of this chunk
            cid, cam = cid[:, keep].to(dev), cam[:, keep].to(dev)
            banned = trie.banned_nodes(exclude[b:b + batch_size]) if exclude is not None else None
            fin_s, fin_n = _beam_search(model, trie, cid, cam, num_beams, banned, score_end, groups)
            items_idx = trie.leaf_item[fin_n.clamp(min=0)].masked_fill(fin_n < 0, -1).cpu().tolist()
            for row_s, row_i in zip(fin_s.cpu().tolist(), items_idx):
                got = [(trie.item_ids[i], s) for i, s in zip(row_i, row_s) if i >= 0][:k]
                results.append(_format([g[0] for g in got], [g[1] for g in got], return_scores))
    finally:
        model.train(was_training)
    return results


def constrained_generation_config(trie: SidTrie, num_beams: int, num_return_sequences: int,
                                  **overrides) -> GenerationConfig:
    """A complete beam-search GenerationConfig (no sampling, no warpers, length_penalty 0)."""
    cfg = {"do_sample": False, "num_beams": num_beams, "num_return_sequences": num_return_sequences,
           "max_new_tokens": trie.max_depth + 1, "early_stopping": False, "length_penalty": 0.0,
           "top_k": None, "top_p": None, "temperature": None, "pad_token_id": trie.pad_id,
           "eos_token_id": list(trie.end_ids), "output_scores": True, "return_dict_in_generate": True}
    cfg.update(overrides)
    return GenerationConfig(**cfg)


@contextlib.contextmanager
def clean_generation_config(model):
    """While inside, model.generation_config is a fresh GenerationConfig: generate() fills unset
    fields of a passed config from the model's one (top_k, temperature, ...), so swap it out."""
    saved = model.generation_config
    model.generation_config = GenerationConfig()
    try:
        yield model
    finally:
        model.generation_config = saved


@torch.inference_mode()
def recommend_hf(model, tokenizer, trie: SidTrie, prompts: Prompts, k: int = 10,
                 num_beams: int | None = None, batch_size: int = 16,
                 exclude: Sequence[Iterable[str] | None] | None = None,
                 return_scores: bool = True) -> list[list]:
    """Same contract as recommend(), via model.generate + SidConstrainedLogitsProcessor (reference)."""
    num_beams = _check(trie, model, k, num_beams)
    dev = next(model.parameters()).device
    ids, am = encode_prompts(tokenizer, prompts, trie.pad_id)
    results: list[list] = []
    cfg = constrained_generation_config(trie, num_beams, num_beams)
    groups = trie.level_groups(model) if model_sid_softmax(model) == "level" else None
    was_training = model.training
    model.eval()
    try:
        for b in range(0, ids.shape[0], batch_size):
            cid, cam = ids[b:b + batch_size].to(dev), am[b:b + batch_size].to(dev)
            ex = exclude[b:b + batch_size] if exclude is not None else None
            proc = SidConstrainedLogitsProcessor(trie, prompt_length=cid.shape[1], exclude=ex, groups=groups)
            with clean_generation_config(model):
                out = model.generate(input_ids=cid, attention_mask=cam, generation_config=cfg,
                                     logits_processor=[proc])
            gen = out.sequences[:, cid.shape[1]:]
            item_idx = trie.items_from_sequences(gen).view(cid.shape[0], num_beams).cpu().tolist()
            seq_s = out.sequences_scores.view(cid.shape[0], num_beams).float().cpu().tolist()
            for row_i, row_s in zip(item_idx, seq_s):
                seen: dict[str, float] = {}
                for i, s in sorted(zip(row_i, row_s), key=lambda t: -t[1]):
                    if i >= 0 and s > -1e8 and trie.item_ids[i] not in seen:
                        seen[trie.item_ids[i]] = s
                got = list(seen.items())[:k]
                results.append(_format([g[0] for g in got], [g[1] for g in got], return_scores))
    finally:
        model.train(was_training)
    return results


@torch.no_grad()
def sample_items(model, tokenizer, trie: SidTrie, prompts: Prompts, n: int = 8, temperature: float = 1.0,
                 batch_size: int = 16, max_tries: int = 3) -> list[list]:
    """Constrained sampling: up to `n` distinct items per prompt, [(item_id, log_prob), ...].

    Draws n sequences per prompt through `generate` + the trie processor (so every draw is a
    catalogue item), redraws up to `max_tries` times to fill duplicates, and keeps draw order.
    A prompt whose model is very confident may still end with fewer than n distinct items.
    """
    dev = next(model.parameters()).device
    if trie.device != dev:
        trie.to(dev)
    ids, am = encode_prompts(tokenizer, prompts, trie.pad_id)
    cfg = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, num_beams=1,
                           num_return_sequences=n, max_new_tokens=trie.max_depth + 1, pad_token_id=trie.pad_id,
                           eos_token_id=list(trie.end_ids), output_scores=True, return_dict_in_generate=True)
    was_training = model.training
    model.eval()
    results: list[dict[str, float]] = [{} for _ in range(ids.shape[0])]
    try:
        for _ in range(max_tries):
            todo = [i for i, r in enumerate(results) if len(r) < n]
            for b in range(0, len(todo), batch_size):
                rows = todo[b:b + batch_size]
                cid, cam = ids[rows].to(dev), am[rows].to(dev)
                proc = SidConstrainedLogitsProcessor(trie, prompt_length=cid.shape[1])
                with clean_generation_config(model):
                    out = model.generate(input_ids=cid, attention_mask=cam, generation_config=cfg,
                                         logits_processor=[proc])
                gen = out.sequences[:, cid.shape[1]:]
                logps = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
                seq_lp = logps.masked_fill(~torch.isfinite(logps), 0.0).sum(-1).view(len(rows), n).tolist()
                item_idx = trie.items_from_sequences(gen).view(len(rows), n).cpu().tolist()
                for row, idxs, lps in zip(rows, item_idx, seq_lp):
                    for i, lp in zip(idxs, lps):
                        if i >= 0 and len(results[row]) < n:
                            results[row].setdefault(trie.item_ids[i], lp)
            if all(len(r) >= n for r in results):
                break
    finally:
        model.train(was_training)
    return [list(r.items()) for r in results]
