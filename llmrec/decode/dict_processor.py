"""Baseline for the decode benchmark only: a dict-of-prefixes constraint, looping per beam in Python.

This mirrors how MiniOneRec-style code constrains generation (a `prefix_allowed_tokens`-style
function over a Python dict from generated-prefix tuple to allowed next token ids, one lookup per
beam per step, each prefix copied to the host). Use SidConstrainedLogitsProcessor instead.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from llmrec.decode.trie import SidTrie


def build_prefix_dict(trie: SidTrie) -> dict[tuple[int, ...], list[int]]:
    """{generated prefix (token ids) -> allowed next token ids}; complete SIDs map to the end ids."""
    allowed: dict[tuple[int, ...], set[int]] = {}
    for toks in trie.sid_token_ids.values():
        for d in range(len(toks)):
            allowed.setdefault(tuple(toks[:d]), set()).add(toks[d])
        allowed[tuple(toks)] = set(trie.end_ids)
    return {k: sorted(v) for k, v in allowed.items()}


class DictPrefixLogitsProcessor(LogitsProcessor):
    """Loops over every row each step: prefix -> host tuple -> dict lookup -> mask row."""

    def __init__(self, trie: SidTrie, prompt_length: int):
        self.allowed = build_prefix_dict(trie)
        self.prompt_length = prompt_length
        self.fallback = sorted(set(trie.end_ids) | {trie.pad_id})

    def prefix_allowed_tokens(self, batch_id: int, sent: torch.Tensor) -> list[int]:
        return self.allowed.get(tuple(sent[self.prompt_length:].tolist()), self.fallback)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row in range(input_ids.shape[0]):
            mask[row, self.prefix_allowed_tokens(row, input_ids[row])] = 0.0
        return scores + mask
