"""`CorpusConfig`: what goes into the instruction corpus (light: no datasets/torch imports)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmrec.config import load_config, option
from llmrec.corpus.tasks import SEQREC_FORMATS
from llmrec.corpus.templates import ALL_TASKS, TASK_FAMILIES, resolve_prompts_dir
from llmrec.io import LlmrecError
from llmrec.registry import did_you_mean


def _task_names() -> list[str]:
    return list(dict.fromkeys([*TASK_FAMILIES, *ALL_TASKS]))


@dataclass
class CorpusConfig:
    """What goes into the corpus. `tasks` takes family names (seqrec, item2sid, sid2item, fusion,
    behavior) or single task names (item2sid_title, ...)."""

    tasks: list[str] = option(default_factory=lambda: list(TASK_FAMILIES), choices=_task_names,
                              help="task families or single tasks to include")
    caps: dict[str, int] = option(default_factory=dict, help="at most this many training rows per task")
    repeats: dict[str, int] = option(default_factory=dict,
                                     help="item tasks: copies per item, each with its own paraphrase; seqrec "
                                     "(session, stream): copies per sequence chunk, so a budget-bound run "
                                     "weighs next-item steps against the translation rows")
    seqrec_format: str = option("window", choices=SEQREC_FORMATS,
                                help="next-item rows: window = one row per target (its history in one user "
                                "turn); session = one conversation per training sequence (chunks of "
                                "max_history + 1 items), an assistant turn per item after the first, all "
                                "trained in one pass (TRL assistant_only_loss); stream = one row per chunk "
                                "too, the first item in the user turn and every later SID in one assistant "
                                "turn (a SID's tokens per step, nothing else); eval and serving prompt the "
                                "model in the format it was trained on")
    max_history: int = option(20, help="most recent items in a sliding window's history (session, stream: items per "
                              "prompt, so a training chunk holds max_history + 1 items)")
    fusion_max_history: int = option(10, help="history length of the fusion tasks")
    min_history: int = option(1, help="shortest history that makes a training window")
    seqrec_crops: int = option(0, help="window: extra copies of each training window whose history is cut to its "
                               "most recent 1..len-1 items; session/stream: extra rows per chunk starting at a later "
                               "item (seeded): learns the next item from recent items alone")
    seed: int = option(42, help="seed for paraphrase choice, crops and sampling")
    paraphrases: bool = option(True, help="vary the prompt wording (off: always the first template)")
    title_field: str = option("title", help="item field used as the title")
    description_field: str = option("description", help="item field used as the description")
    max_title_chars: int = option(120, help="titles are clipped to this many characters")
    max_description_chars: int = option(400, help="descriptions are clipped to this many characters")
    include_valid_in_train: bool = option(False, help="also train on the validation targets (final models only)")
    eval_template_index: int | None = option(0, help="paraphrase of held-out prompts (null: seeded choice)")
    eval_max_examples: int | None = option(None, help="at most this many held-out rows per split")
    eval_translation_items: int = option(0, help="held-out item2sid / sid2item rows over this many items")
    target_behaviors: list[str] | None = option(None, help="behaviors the behavior_target task predicts "
                                                "(default: the strongest present)")
    rating_as_behavior: bool = option(True, help="use ratings as behaviors on single-behavior rated data")
    prompts_dir: str | None = option(None, help="folder of *.yaml templates overriding the shipped ones, or the "
                                     "name of a shipped set (compact: one short prompt per task, for "
                                     "from-scratch models)")

    def validate(self) -> None:
        if self.prompts_dir:
            resolve_prompts_dir(self.prompts_dir)  # a clear error now, not after the data is loaded
        tasks = self.resolved_tasks()
        for name in ("caps", "repeats"):
            for task, n in getattr(self, name).items():
                if task not in ALL_TASKS:
                    raise LlmrecError(f"{name}: unknown task {task!r}{did_you_mean(task, ALL_TASKS)}")
                if task not in tasks:
                    raise LlmrecError(f"{name}: task {task!r} is not among `tasks` {self.tasks}")
                if n < (0 if name == "caps" else 1):
                    raise LlmrecError(f"{name}.{task} must be at least {0 if name == 'caps' else 1}, got {n}")
        if self.seqrec_format == "window" and "seqrec" in self.repeats:
            raise LlmrecError("repeats.seqrec applies to seqrec_format session or stream (copies per sequence); "
                              "window rows take seqrec_crops instead")
        for name in ("max_history", "fusion_max_history", "min_history"):
            if getattr(self, name) < 1:
                raise LlmrecError(f"{name} must be at least 1, got {getattr(self, name)}")

    def resolved_tasks(self) -> list[str]:
        """Task names in canonical order (families expanded); errors name the unknown entry."""
        wanted: set[str] = set()
        for t in self.tasks:
            if t in TASK_FAMILIES:
                wanted.update(TASK_FAMILIES[t])
            elif t in ALL_TASKS:
                wanted.add(t)
            else:
                raise LlmrecError(f"tasks: unknown task {t!r}{did_you_mean(t, _task_names())}; use one of "
                                  f"{list(TASK_FAMILIES)} or {ALL_TASKS}")
        return [t for t in ALL_TASKS if t in wanted]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> CorpusConfig:
        return load_config(cls, path, overrides)
