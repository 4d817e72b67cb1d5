"""`DemoConfig`: the demo's budgets and sizes (light: the CLI checks it before any stage is imported)."""

from __future__ import annotations

from dataclasses import dataclass

from llmrec.baselines.registry import baseline_config
from llmrec.config import option
from llmrec.io import LlmrecError

DEFAULT_DATASET = "amazon18_scientific"


@dataclass
class DemoConfig:
    """Budgets and sizes of the demo; the stages run the shipped recipes with these overrides."""

    out: str = option("runs/demo", help="run folder the demo writes")
    dataset: str = option(DEFAULT_DATASET, help="dataset name under LLMREC_DATA_DIR, or a path")
    recipes: str = option("tiny-cpu", help="recipe folder under recipes/ (corpus.yaml, sft.yaml, grpo.yaml)")
    sft_minutes: float = option(9.0, help="SFT wall-time budget (the lr schedule is laid over it)")
    grpo_minutes: float = option(2.0, help="GRPO wall-time budget")
    eval_users: int = option(1000, help="test users scored for the LLMs and baselines (all: `llmrec eval`)")
    translation_items: int = option(200, help="training items for the item2sid / sid2item check")
    sasrec_epochs: int | None = option(None, help="most SASRec epochs (default: `llmrec eval`'s, early stopping on "
                                       "validation); a lower cap makes the baseline weaker than the one "
                                       "bench_quality and `llmrec eval` report")
    seed: int = option(42, help="seed of every stage")

    def validate(self) -> None:
        for name in ("sft_minutes", "grpo_minutes"):
            if getattr(self, name) <= 0:
                raise LlmrecError(f"{name} must be positive, got {getattr(self, name)}")
        if self.sasrec_epochs is not None:  # checked by SASRec's own config, before any stage runs
            baseline_config("sasrec", values={"epochs": self.sasrec_epochs})
        if self.eval_users < 1:
            raise LlmrecError(f"eval_users must be at least 1, got {self.eval_users}")
