"""Baseline recommenders used by the evaluator and by GRPO's collaborative reward: MostPopular and
the sequential models (SASRec with hash IDs, SASRec over SIDs, H2Rec with both)."""

from llmrec.baselines.popular import MostPopular
from llmrec.baselines.sasrec import SASRec, SASRecConfig, SASRecRanker, cached_sasrec, train_sasrec

__all__ = ["MostPopular", "SASRec", "SASRecConfig", "SASRecRanker", "cached_sasrec", "train_sasrec"]
