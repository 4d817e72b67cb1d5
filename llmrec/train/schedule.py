"""Learning-rate schedules laid over a wall-time budget (`train.schedule_by=time`), for any Trainer.

Why by hand: transformers' schedules count steps, and a run bound by wall time does not know its
step count (corpus size, sequence length, rollout cost and machine speed vary).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch


def time_schedule(kind: str, warmup_ratio: float, budget_s: float,
                  clock: Callable[[], float] = time.monotonic, total_steps: int | None = None) -> Callable[[int], float]:
    """LR factor from elapsed wall time (the clock starts at the first call, when the scheduler is
    built): linear warmup over `warmup_ratio` of the budget, then linear / cosine decay to 0 at
    `budget_s`, or constant. With `total_steps` (the run's planned steps: max_steps or its epochs)
    progress is whichever is further along, time or steps, so a run that reaches its planned steps
    before its budget still ends its schedule there instead of stopping at a high learning rate."""
    start: list[float] = []

    def factor(step: int) -> float:
        if not start:
            start.append(clock())
        frac = min(1.0, (clock() - start[0]) / budget_s)
        if total_steps:
            frac = max(frac, min(1.0, step / total_steps))
        if frac < warmup_ratio:
            return max(frac / warmup_ratio, 1e-3)
        if kind == "constant":
            return 1.0
        p = (frac - warmup_ratio) / max(1e-9, 1.0 - warmup_ratio)
        return 1.0 - p if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))

    return factor


class TimeBudgetSchedule:
    """Trainer mixin: when `time_budget` = (scheduler kind, warmup ratio, seconds) is set, the LR
    follows `time_schedule` (over the budget or the planned steps, whichever ends first) instead of
    the step-counted schedule (put it before the Trainer class)."""

    time_budget: tuple[str, float, float] | None = None

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.time_budget is None:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer or self.optimizer, time_schedule(*self.time_budget, total_steps=num_training_steps))
        return self.lr_scheduler


def time_budget(train_config) -> tuple[str, float, float] | None:
    """The `time_budget` of a TrainConfig with schedule_by=time, else None."""
    if train_config.schedule_by != "time":
        return None
    return (train_config.lr_scheduler, train_config.warmup_ratio, train_config.max_minutes * 60.0)
