"""Evaluation: item-level metrics, the resumable evaluate() runner, reports (MostPopular re-exported from llmrec.baselines)."""

from llmrec.baselines import MostPopular
from llmrec.eval.metrics import (
    DEFAULT_KS,
    compute_metrics,
    coverage_at_k,
    example_metrics,
    popularity_groups,
    ranking_metrics,
    translation_accuracy,
    valid_rate,
)
from llmrec.eval.runner import LLMRanker, Ranker, compare_table, evaluate

__all__ = [
    "DEFAULT_KS", "LLMRanker", "MostPopular", "Ranker", "compare_table", "compute_metrics", "coverage_at_k",
    "evaluate", "example_metrics", "popularity_groups", "ranking_metrics", "translation_accuracy", "valid_rate",
]
