"""Level softmax: a Semantic ID token's probability normalised over the tokens of its own level.

A position whose next token is a SID token of level l only ever holds a level-l token at decoding
time (the trie allows nothing else), so its softmax can run over level l's codes instead of the
whole vocabulary: the same ranking information at a fraction of the LM-head work when SID tokens
are a small share of the vocabulary rows they would otherwise compete with (a from-scratch model's
text vocabulary, or a pretrained model's 50k+ rows). Every other position (text, separators, the
end token) keeps the full-vocabulary softmax.

A model trained this way records `llmrec_sid_softmax: level` in its config.json; training (SFT's
loss, GRPO's token log-probabilities) and decoding (beam scores) all read it through
`model_sid_softmax`, so a model is always scored the way it was trained. Written by hand: neither
transformers nor TRL has a grouped (per-level) softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmrec.io import LlmrecError
from llmrec.llm.sid_tokens import sid_token_id_table
from llmrec.sid.sidmap import SidMap

SID_SOFTMAX_MODES = ("vocab", "level")
CONFIG_KEY = "llmrec_sid_softmax"


def model_sid_softmax(model) -> str:
    """'level' for a model trained with the level softmax (recorded in its config), else 'vocab'."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(getattr(base, "config", None), CONFIG_KEY, None) or "vocab"


class SidLevelGroups:
    """Which vocabulary rows each SID level normalises over.

    `group[t]`: the level of token id t, or -1 (not a SID token: full-vocabulary softmax);
    `rows[l]`: the token ids of level l; `index[t]`: t's position inside its level's rows.
    """

    def __init__(self, level_token_ids: list[list[int]], vocab_size: int):
        self.vocab_size = int(vocab_size)
        self.group = torch.full((self.vocab_size,), -1, dtype=torch.long)
        self.index = torch.full((self.vocab_size,), -1, dtype=torch.long)
        self.rows: list[torch.Tensor] = []
        for level, ids in enumerate(level_token_ids):
            t = torch.as_tensor(sorted({int(i) for i in ids}), dtype=torch.long)
            if len(t) and (int(t.max()) >= self.vocab_size or int(t.min()) < 0):
                raise LlmrecError(f"SID level {level} uses token id {int(t.max())} outside the model's "
                                  f"{self.vocab_size} vocabulary rows; resize the embeddings first.")
            if bool((self.group[t] >= 0).any()):
                raise LlmrecError(f"SID level {level} shares token ids with an earlier level; the level "
                                  "softmax needs one level per SID token.")
            self.group[t] = level
            self.index[t] = torch.arange(len(t))
            self.rows.append(t)

    @classmethod
    def for_model(cls, tokenizer, sid_map: SidMap, vocab_size: int) -> SidLevelGroups:
        """Groups from a tokenizer that holds `sid_map`'s tokens (every code of every level)."""
        table = sid_token_id_table(tokenizer, sid_map)  # raises, naming the fix, when tokens are missing
        return cls([row[row >= 0].tolist() for row in table], vocab_size)

    def to(self, device: torch.device | str) -> SidLevelGroups:
        self.group, self.index = self.group.to(device), self.index.to(device)
        self.rows = [r.to(device) for r in self.rows]
        return self

    def _on(self, device: torch.device) -> None:
        if self.group.device != device:
            self.to(device)

    def nll_sum(self, hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Summed NLL of `targets` (N,) from final hidden states (N, H), projecting each position only
        onto its group's rows (the whole vocabulary for non-SID targets). Returns (loss, parts) with
        parts[g] = (logits over group g's rows, targets inside them) for diagnostics."""
        self._on(targets.device)
        weight, bias = head.weight, getattr(head, "bias", None)
        groups = self.group[targets]
        total = hidden.new_zeros((), dtype=torch.float32)
        parts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for g in [-1, *range(len(self.rows))]:
            sel = (groups == g).nonzero(as_tuple=True)[0]
            if sel.numel() == 0:
                continue
            if g < 0:
                logits = head(hidden[sel]).float()
                tgt = targets[sel]
            else:
                rows = self.rows[g]
                logits = F.linear(hidden[sel], weight[rows], bias[rows] if bias is not None else None).float()
                tgt = self.index[targets[sel]]
            total = total + F.cross_entropy(logits, tgt, reduction="sum")
            parts[g] = (logits.detach(), tgt)
        return total, parts

    def mask_logits(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary logits (..., V) with every row outside each target's group at -inf
        (positions whose target is not a SID token, or is -100, are left whole)."""
        self._on(targets.device)
        V = logits.shape[-1]
        safe = targets.clamp(min=0)
        groups = torch.where(targets >= 0, self.group[safe], -1)
        row_group = self.group[:V] if V <= self.vocab_size else F.pad(self.group, (0, V - self.vocab_size), value=-1)
        outside = (groups.unsqueeze(-1) >= 0) & (row_group != groups.unsqueeze(-1))
        return logits.masked_fill(outside, float("-inf"))

    def log_normalizers(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., levels + 1): log-sum-exp of the logits over each level's rows, then over the whole
        vocabulary (last column: the normaliser of non-SID tokens)."""
        self._on(logits.device)
        cols = [logits.index_select(-1, r).logsumexp(-1) for r in self.rows]
        cols.append(logits.logsumexp(-1))
        return torch.stack(cols, -1)

    def column(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each token's column in `log_normalizers` (its level; the last column for non-SID tokens)."""
        self._on(tokens.device)
        g = self.group[tokens.clamp(min=0, max=self.vocab_size - 1)]
        return torch.where((g < 0) | (tokens >= self.vocab_size), len(self.rows), g)

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Every token's log-probability (..., V) under the level softmax of logits (..., V): a SID
        token's within its level, any other token's within the whole vocabulary. Works the same on
        full-vocabulary log-probabilities (what `generate`'s beam search hands its logits processors)."""
        logits = logits.float()
        columns = self.column(torch.arange(logits.shape[-1], device=logits.device))
        return logits - self.log_normalizers(logits).index_select(-1, columns)

    def token_log_probs(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of `tokens` (..., K) under the level softmax of logits (..., V); works
        the same on full-vocabulary log-probabilities (their normaliser is 0)."""
        logits = logits.float()
        norms = self.log_normalizers(logits)
        return logits.gather(-1, tokens.clamp(min=0)) - norms.gather(-1, self.column(tokens))
