"""`EvalConfig`: what `llmrec eval` evaluates and how (light: no torch, so the CLI checks it at once)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from llmrec.baselines.registry import BASELINES, baseline_config, get_spec
from llmrec.config import option
from llmrec.io import LlmrecError


@dataclass
class EvalConfig:
    """What `llmrec eval` evaluates and how."""

    run: str | None = option(None, help="run folder (reads RUN/data, writes RUN/eval)")
    models: list[str] = option(default_factory=list, help="fine-tuned model folders (e.g. RUN/sft/model)")
    split: str = option("test", help="held-out split (tune: the examples `data prepare --tune-users` held out "
                        "of training for validation during training)", choices=("test", "valid", "tune"))
    baselines: list[str] = option(default_factory=lambda: ["popular", "sasrec"],
                                  help="baselines to rank beside the models ([] for none): popular, sasrec, "
                                       "sasrec-sid, h2rec or package.module:attr", choices=BASELINES)
    ks: list[int] = option(default_factory=lambda: [1, 3, 5, 10, 20], help="cutoffs for HR@K / NDCG@K")
    num_beams: int = option(20, help="beams for the LLM ranker (>= max K)")
    limit: int | None = option(None, help="evaluate only the first N examples (written under limit-N/)")
    batch_size: int | None = option(None, help="examples per ranking chunk (default per ranker)")
    exclude_history: bool = option(False, help="never recommend items already in the history")
    head_frac: float = option(0.2, help="top fraction of items (by training count) that are 'head'")
    tail_frac: float = option(0.5, help="bottom fraction of items that are 'tail'")
    resume: bool = option(True, help="reuse predictions of the same ranker, weights and examples")
    retrain_baselines: bool = option(False, help="retrain cached baselines even if they fit")
    baseline_settings: dict[str, dict[str, Any]] = option(
        default_factory=dict, help="per-baseline settings, e.g. --set baseline_settings.h2rec.hidden=128 "
                                   "(fields: `llmrec eval --list-baselines`)")
    sasrec_epochs: int | None = option(None, help="max SASRec epochs (default 50; short for "
                                                  "baseline_settings.sasrec.epochs)")
    translation: int = option(0, help="also score item2sid / sid2item greedy accuracy on N training items")
    seed: int = option(42, help="random seed (baselines, bootstrap, translation sample)")
    threads: int | None = option(None, help="torch CPU threads (1 can be faster on a busy machine)")

    def validate(self) -> None:
        if not self.run:
            raise LlmrecError("no run folder: pass --run RUN")
        if not self.ks or min(self.ks) < 1:
            raise LlmrecError(f"ks {self.ks}: expected positive integers, e.g. [1, 5, 10]")
        if not self.baselines and not self.models:
            raise LlmrecError("nothing to evaluate: give --model and/or --baselines")
        if self.limit is not None and self.limit < 1:
            raise LlmrecError(f"limit must be at least 1, got {self.limit}")
        if not 0 < self.head_frac < 1 or not 0 < self.tail_frac < 1 or self.head_frac + self.tail_frac > 1:
            raise LlmrecError("head_frac and tail_frac must be in (0, 1) and sum to at most 1")
        for name in self.baseline_settings:
            if name not in self.baselines:
                raise LlmrecError(f"baseline_settings.{name}: {name!r} is not among the baselines evaluated "
                                  f"({', '.join(self.baselines) or 'none'}); add it to --baselines or drop the setting")
        for name in self.baselines:  # every value typed and named now, before any baseline trains
            self.settings_for(name)

    def settings_for(self, name: str) -> Any:
        """The baseline's validated config: its defaults, then `baseline_settings[name]` (and `sasrec_epochs`,
        `seed`)."""
        values = dict(self.baseline_settings.get(name) or {})
        if name == "sasrec" and self.sasrec_epochs is not None:  # 0 is refused by the config, not ignored
            values.setdefault("epochs", self.sasrec_epochs)
        config_class = get_spec(name).config_class
        if config_class is not None and "seed" in {f.name for f in fields(config_class)}:
            values.setdefault("seed", self.seed)  # --seed seeds the baselines too, unless set for one
        try:
            return baseline_config(name, values=values or None)
        except LlmrecError as e:
            raise LlmrecError(f"baseline_settings.{name}: {e}") from None
