"""Settings of the baselines, as llmrec.config dataclasses (no torch here, so `llmrec eval` can
check them, and list the registered baselines, before anything heavy is imported)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmrec.config import load_config, option
from llmrec.io import LlmrecError


@dataclass
class SeqConfig:
    """Network and training settings shared by all sequential baselines."""

    hidden: int = option(64, help="width of item vectors and of the transformer")
    max_len: int = option(50, help="most recent history items the model reads")
    n_blocks: int = option(2, help="self-attention blocks")
    n_heads: int = option(1, help="attention heads per block (hidden must be divisible by it)")
    dropout: float = option(0.2, help="dropout on embeddings, attention and feed-forward")
    lr: float = option(1e-3, help="AdamW learning rate")
    weight_decay: float = option(0.0, help="AdamW weight decay")
    batch_size: int = option(128, help="training windows per step")
    epochs: int = option(50, help="most epochs (early stopping usually ends sooner)")
    patience: int = option(5, help="stop after this many epochs without a better validation NDCG@eval_k")
    seed: int = option(42, help="seed of initialisation, shuffling and dropout")
    eval_k: int = option(10, help="K of the validation NDCG used for early stopping")
    eval_batch_size: int = option(512, help="histories per validation scoring batch")

    def validate(self) -> None:
        if self.epochs < 1:
            raise LlmrecError(f"{type(self).__name__}: epochs must be at least 1, got {self.epochs}")
        if self.hidden % self.n_heads:
            raise LlmrecError(f"{type(self).__name__}: hidden={self.hidden} must be divisible by "
                              f"n_heads={self.n_heads}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Build from a plain dict (a saved model's config.json); unknown keys get did-you-mean."""
        return load_config(cls, values=dict(d))


@dataclass
class SASRecConfig(SeqConfig):
    """SASRec's settings (all shared with the other sequential baselines)."""


@dataclass
class SASRecSIDConfig(SeqConfig):
    """SASRec-SID's settings (the shared sequential-model fields)."""


@dataclass
class H2RecConfig(SeqConfig):
    """H2Rec's settings: the shared sequential-model fields plus the alignment and HID init."""

    item_align_weight: float = option(0.1, help="weight of the item-level HID<->SID InfoNCE loss (0 = off)")
    user_align_weight: float = option(0.1, help="weight of the user-level HID-branch<->SID-branch InfoNCE loss "
                                                "(0 = off)")
    temperature: float = option(0.2, help="InfoNCE temperature of both alignment losses")
    hid_init: str = option("random", choices=("random", "text"),
                           help="HID rows at start: random, or a PCA of RUN/sid/embeddings.npy (item text)")

    def validate(self) -> None:
        super().validate()
        if self.temperature <= 0 or self.item_align_weight < 0 or self.user_align_weight < 0:
            raise LlmrecError("H2RecConfig: temperature must be > 0 and the alignment weights >= 0 "
                              f"(got {self.temperature}, {self.item_align_weight}, {self.user_align_weight})")
