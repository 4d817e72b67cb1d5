"""`DataConfig`: how `llmrec data prepare` loads, cleans and splits a dataset (light module: checked
before any file is read)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmrec.config import option
from llmrec.io import LlmrecError
from llmrec.registry import did_you_mean, is_dotted_path

FORMATS = ("lcrec", "movielens", "taobao", "minionerec", "amazon2018")


@dataclass
class DataConfig:
    """What to load and how to split it."""

    dataset: str | None = option(None, help="known name (amazon18_scientific, movielens_100k, ...) or a path")
    out: str | None = option(None, help="run directory; data goes to OUT/data/")
    format: str | None = option(None, help=f"force the input format ({', '.join(FORMATS)} or package.module:attr; "
                                "default: detect)")
    split: str = option("auto", help="auto: the source's own split when it ships one (MiniOneRec), else loo",
                        choices=("auto", "loo", "time", "native"))
    ratios: list[float] = option(default_factory=lambda: [8.0, 1.0, 1.0], help="train, valid, test ratios (split time)")
    max_history: int = option(20, help="items kept in valid/test histories (0: all)")
    tune_users: int = option(0, help="hold out the last two training events of this many users (seeded) as "
                             "the tune split that validation during training ranks (0: it ranks valid)")
    seed: int = option(0, help="seed of the tune users' sample")
    short_users: str = option("drop", help="loo: users with < 3 events are dropped (counted) or kept in train only",
                              choices=("drop", "train"))
    min_user_interactions: int = option(0, help="drop users with fewer events")
    min_item_interactions: int = option(0, help="drop items with fewer events (iterated k-core with the user minimum)")
    dedupe_consecutive: bool = option(False, help="drop immediate repeats of the same item")
    unknown_items: str = option("error", help="events whose item is not in the catalogue: error, or drop and count",
                                choices=("error", "drop"))
    rating_behavior: str = option("none", help="MovieLens: ratings as behaviors rating_1..5 (levels) or "
                                  "liked/disliked (binary)", choices=("none", "levels", "binary"))

    def validate(self) -> None:
        if not self.dataset:
            raise LlmrecError("dataset: give --dataset NAME or a path")
        if not self.out:
            raise LlmrecError("out: give --out RUN (data goes to RUN/data/)")
        if self.format is not None and self.format not in FORMATS and not is_dotted_path(self.format):
            raise LlmrecError(f"format: {self.format!r} is not one of {', '.join(FORMATS)}"
                              f"{did_you_mean(self.format, FORMATS)} (or package.module:attr)")
        if len(self.ratios) != 3 or min(self.ratios) < 0 or sum(self.ratios) <= 0:
            raise LlmrecError(f"ratios: expected three non-negative numbers train, valid, test, got {self.ratios}")
        for name in ("max_history", "min_user_interactions", "min_item_interactions", "tune_users"):
            if getattr(self, name) < 0:
                raise LlmrecError(f"{name} must be >= 0, got {getattr(self, name)}")

    def load_options(self) -> dict[str, Any]:
        """The loader/cleaning options prepare_data passes on."""
        opts: dict[str, Any] = {"min_user_interactions": self.min_user_interactions,
                                "min_item_interactions": self.min_item_interactions,
                                "dedupe_consecutive": self.dedupe_consecutive, "unknown_items": self.unknown_items}
        if self.rating_behavior != "none":
            opts["rating_behavior"] = self.rating_behavior
        if self.format:
            opts["format"] = self.format
        return opts
