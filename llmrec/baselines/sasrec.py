"""SASRec: an ID-based self-attentive sequential recommender (Kang & McAuley, 2018), on CPU torch.

Item embeddings (one unique "hash ID" row per item, tied with the output layer) + learned positional
embeddings, pre-LN causal self-attention blocks, dropout. Trained with full softmax cross-entropy
over all catalogue items on every next-item target of the training sequences; early stopping on
validation NDCG@10 (never the test split); see llmrec.baselines.train_loop.
`SASRec.score_items(histories)` returns [B, n_items] logits in `item_ids` order (GRPO's
collaborative reward uses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmrec.baselines.cache import cached_model, data_fingerprint
from llmrec.baselines.configs import SASRecConfig
from llmrec.baselines.train_loop import (
    SequentialModel,
    SequentialRanker,
    TrainResult,
    read_meta,
    topk_indices,
    train_sequential,
    training_windows,
)
from llmrec.data.records import Example

FORMAT = "llmrec.sasrec/1"
__all__ = ["SASRec", "SASRecConfig", "SASRecRanker", "TrainResult", "cached_sasrec", "read_meta", "topk_indices",
           "train_sasrec", "training_windows"]


class SASRec(SequentialModel):
    """The network plus its item vocabulary (`item_ids[i]` is the item of score column i)."""

    FORMAT = FORMAT
    config_class = SASRecConfig

    def __init__(self, item_ids: Sequence[str], config: SASRecConfig | None = None):
        super().__init__(item_ids, config or SASRecConfig())
        self.item_emb = nn.Embedding(self.n_items + 1, self.config.hidden, padding_idx=0)  # row 0 = padding
        self._init_encoder()
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def embed(self, seq: torch.Tensor) -> torch.Tensor:
        return self.item_emb(seq)

    def item_matrix(self) -> torch.Tensor:
        return self.item_emb.weight[1:]


class SASRecRanker(SequentialRanker):
    """SequentialRanker named 'sasrec' by default (kept for existing callers)."""


def train_sasrec(train_sequences: Sequence[Sequence[str]], item_ids: Sequence[str],
                 valid_examples: Sequence[Example] = (), config: SASRecConfig | None = None,
                 progress: bool = True) -> tuple[SASRec, TrainResult]:
    """Train on next-item targets of `train_sequences`; keep the epoch with the best valid NDCG@k."""
    config = config or SASRecConfig()
    torch.manual_seed(config.seed)
    model = SASRec(item_ids, config)
    return model, train_sequential(model, train_sequences, valid_examples, progress)


def cached_sasrec(run: str | Path, prepared, *, epochs: int | None = None, seed: int = 42,
                  retrain: bool = False, any_config: bool = False,
                  config: SASRecConfig | None = None, progress: bool = True) -> tuple[SASRec, dict[str, Any]]:
    """RUN/baselines/sasrec when it was built from this run's training data and config (with
    `any_config`: from this run's data, whatever its config), else train it (early stopping on
    valid) and cache it there; returns (model, training info)."""
    cfg = config or SASRecConfig(seed=seed)
    if epochs is not None:
        cfg.epochs = epochs

    def train() -> tuple[SASRec, dict[str, Any]]:
        seqs = list(prepared.split.train_items().values())
        model, res = train_sasrec(seqs, list(prepared.items), prepared.split.valid, cfg, progress=progress)
        return model, res.info()

    return cached_model(Path(run) / "baselines" / "sasrec", SASRec, prepared, asdict(cfg), train,
                        data_fingerprint(prepared), retrain=retrain, any_config=any_config)
