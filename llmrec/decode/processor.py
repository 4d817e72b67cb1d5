"""A transformers LogitsProcessor that keeps model.generate on the SID trie."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from transformers import LogitsProcessor

from llmrec.decode.trie import SidTrie
from llmrec.llm.sid_softmax import SidLevelGroups


class SidConstrainedLogitsProcessor(LogitsProcessor):
    """Mask every token that would leave the SID trie (greedy, sampling and beam search).

    The answer starts where the prompt ends. With left padding all prompts end at the same column,
    so the start is `prompt_length` when given, else the input width at the first call of a
    generate. A new generate is detected when the width does not grow by exactly one, the number of
    rows changes, or the prompt columns differ from the recorded ones; `reset()` forces it.
    Each call walks the generated suffix (at most max SID depth + 1 columns) for all rows at once,
    which stays correct when beam search reorders rows.

    `exclude` (one set of item ids per prompt) bans those items; rows map to prompts in order
    (row // (rows / prompts)), which matches beam search and num_return_sequences expansion.
    `groups` (a model trained with the level softmax, llmrec.llm.sid_softmax): scores become level
    log-probabilities before masking, so `generate` ranks such a model the way it was trained.
    """

    def __init__(self, trie: SidTrie, prompt_length: int | None = None,
                 exclude: Sequence[Iterable[str] | None] | None = None, groups: SidLevelGroups | None = None):
        self.trie = trie
        self.groups = groups
        self.prompt_length = prompt_length
        self.exclude = exclude
        self._banned: torch.Tensor | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the recorded prompt (the next call starts a new generate)."""
        self._start: int | None = None
        self._last_len = -1
        self._rows = -1
        self._prompt: torch.Tensor | None = None

    def _answer_start(self, input_ids: torch.Tensor) -> int:
        rows, width = input_ids.shape
        if self.prompt_length is not None:
            return self.prompt_length
        new = (self._start is None or width != self._last_len + 1 or rows != self._rows
               or width <= self._start or not torch.equal(input_ids[:, :self._start], self._prompt))
        if new:
            self._start = width
            self._prompt = input_ids.clone()
        self._last_len, self._rows = width, rows
        return self._start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.trie.device != scores.device:
            self.trie.to(scores.device)
        start = self._answer_start(input_ids)
        nodes = self.trie.walk(input_ids[:, start:])
        banned = None
        if self.exclude is not None:
            if self._banned is None or self._banned.device != scores.device:
                self._banned = self.trie.banned_nodes(self.exclude).to(scores.device)
            per = max(1, input_ids.shape[0] // self._banned.shape[0])
            rows = torch.arange(input_ids.shape[0], device=scores.device) // per
            banned = self._banned[rows]
        mask = self.trie.allowed_mask(nodes, scores.shape[-1], banned)
        if self.groups is not None:
            scores = self.groups.log_probs(scores)
        return scores.masked_fill(~mask, float("-inf"))
