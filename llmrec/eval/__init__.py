"""Evaluation: item-level metrics, the resumable evaluate() runner, run_eval, reports.

Names are resolved lazily (PEP 562), so `llmrec.eval.config` loads without torch and
`llmrec eval --help` stays fast."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_KS": "metrics", "compute_metrics": "metrics", "coverage_at_k": "metrics", "example_metrics": "metrics",
    "popularity_groups": "metrics", "ranking_metrics": "metrics", "translation_accuracy": "metrics",
    "valid_rate": "metrics", "LLMRanker": "runner", "Ranker": "runner", "compare_table": "runner",
    "evaluate": "runner", "EvalConfig": "config", "EvalReport": "run", "run_eval": "run",
}
__all__ = [
    "DEFAULT_KS", "EvalConfig", "EvalReport", "LLMRanker", "Ranker", "compare_table", "compute_metrics",
    "coverage_at_k", "evaluate", "example_metrics", "popularity_groups", "ranking_metrics", "run_eval",
    "translation_accuracy", "valid_rate",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmrec.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(f"llmrec.eval.{_EXPORTS[name]}"), name)
