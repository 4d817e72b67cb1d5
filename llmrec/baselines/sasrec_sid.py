"""SASRec over Semantic IDs (`sasrec-sid`): the same network and training as SASRec, but an item's
vector, at the input and at the output, is the sum of its SID code embeddings; there is no unique
per-item row. Items that share SID prefixes share parameters (good for rarely seen items); items
are told apart only through their codes (the head-item cost H2Rec calls "collaborative
overwhelming")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmrec.baselines.cache import cached_model, data_fingerprint
from llmrec.baselines.configs import SASRecSIDConfig
from llmrec.baselines.sid_embed import SidEmbedding, codes_fingerprint, load_run_sids
from llmrec.baselines.train_loop import SequentialModel, TrainResult, train_sequential
from llmrec.data.records import Example

FORMAT = "llmrec.sasrec-sid/1"


class SASRecSID(SequentialModel):
    """Item i's vector = sum over levels of E_l[code_l(i)]; tied input and output."""

    FORMAT = FORMAT
    config_class = SASRecSIDConfig

    def __init__(self, item_ids: Sequence[str], codes: Sequence[Sequence[int]], level_sizes: Sequence[int],
                 config: SASRecSIDConfig | None = None):
        super().__init__(item_ids, config or SASRecSIDConfig())
        if len(codes) != self.n_items:
            raise ValueError(f"{len(codes)} SID code lists for {self.n_items} items")
        self.codes_list = [list(map(int, c)) for c in codes]
        self.level_sizes = [int(s) for s in level_sizes]
        self.sid_emb = SidEmbedding(self.codes_list, self.level_sizes, self.config.hidden)
        self._init_encoder()
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    def embed(self, seq: torch.Tensor) -> torch.Tensor:
        return self.sid_emb(seq)

    def item_matrix(self) -> torch.Tensor:
        return self.sid_emb.all_items()

    def meta(self) -> dict[str, Any]:
        return {"codes": self.codes_list, "level_sizes": self.level_sizes}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> SASRecSID:
        return cls(meta["item_ids"], meta["codes"], meta["level_sizes"], cls.config_class.from_dict(meta["config"]))


def train_sasrec_sid(train_sequences: Sequence[Sequence[str]], item_ids: Sequence[str],
                     codes: Sequence[Sequence[int]], level_sizes: Sequence[int],
                     valid_examples: Sequence[Example] = (), config: SASRecSIDConfig | None = None,
                     progress: bool = True) -> tuple[SASRecSID, TrainResult]:
    config = config or SASRecSIDConfig()
    torch.manual_seed(config.seed)
    model = SASRecSID(item_ids, codes, level_sizes, config)
    return model, train_sequential(model, train_sequences, valid_examples, progress)


def cached_sasrec_sid(run: str | Path, prepared, config: SASRecSIDConfig | None = None, *,
                      retrain: bool = False, progress: bool = True) -> tuple[SASRecSID, dict[str, Any]]:
    """RUN/baselines/sasrec-sid, trained on the run's training split with RUN/sid/sid_map.json."""
    cfg = config or SASRecSIDConfig()
    catalogue = list(prepared.items)
    codes, levels, _ = load_run_sids(run, catalogue)

    def train() -> tuple[SASRecSID, dict[str, Any]]:
        seqs = list(prepared.split.train_items().values())
        model, res = train_sasrec_sid(seqs, catalogue, codes, levels, prepared.split.valid, cfg, progress)
        return model, res.info()

    return cached_model(Path(run) / "baselines" / "sasrec-sid", SASRecSID, prepared, asdict(cfg), train,
                        data_fingerprint(prepared), retrain=retrain,
                        inputs={"sid": codes_fingerprint(codes, levels)})
