"""The one place llmrec touches TRL trainer internals (TRL 1.16 has no public hook for these).

- `_metrics[mode][name]`: lists TRL averages into each logged row (SFTTrainer, GRPOTrainer); we add
  rollout statistics and the compact loss's token metrics there so they log like TRL's own.
- `_total_train_tokens`: SFTTrainer's running token count behind `num_tokens`; the compact loss
  path bypasses TRL's compute_loss, so it must advance the count itself.
Pinned TRL versions are tested (tests/test_train_sft.py, tests/test_train_grpo.py); on an upgrade,
check these two attributes first.
"""

from __future__ import annotations

from typing import Any


def log_metric(trainer: Any, name: str, value: float, mode: str | None = None) -> None:
    """Append `value` to TRL's per-step metric `name` (averaged into the next log row)."""
    mode = mode or ("train" if trainer.model.training else "eval")
    trainer._metrics[mode][name].append(float(value))


def set_metric(trainer: Any, name: str, value: float, mode: str = "train") -> None:
    """Replace TRL's per-step metric `name` with one value (for running totals)."""
    trainer._metrics[mode][name] = [float(value)]


def add_train_tokens(trainer: Any, n: int) -> int:
    """Advance SFTTrainer's running token count; returns the new total."""
    trainer._total_train_tokens += int(n)
    return trainer._total_train_tokens
