"""Baseline recommenders used by the evaluator and by GRPO's collaborative reward: MostPopular and
the sequential models (SASRec with hash IDs, SASRec over SIDs, H2Rec with both), picked by name
from `BASELINES` (llmrec.baselines.registry).

Names are resolved lazily (PEP 562): the registry and configs load without torch, so `llmrec eval`
checks `--baselines` before anything heavy is imported."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BASELINES": "registry", "BaselineContext": "registry", "BaselineSpec": "registry", "BuiltBaseline": "registry",
    "baseline_config": "registry", "build_baseline": "registry", "parse_baselines": "registry",
    "SeqConfig": "configs", "SASRecConfig": "configs", "SASRecSIDConfig": "configs", "H2RecConfig": "configs",
    "MostPopular": "popular",
    "SASRec": "sasrec", "SASRecRanker": "sasrec", "cached_sasrec": "sasrec", "train_sasrec": "sasrec",
    "SASRecSID": "sasrec_sid", "cached_sasrec_sid": "sasrec_sid", "train_sasrec_sid": "sasrec_sid",
    "H2Rec": "h2rec", "cached_h2rec": "h2rec", "train_h2rec": "h2rec",
    "SequentialModel": "train_loop", "SequentialRanker": "train_loop", "TrainResult": "train_loop",
    "train_sequential": "train_loop",
}
__all__ = ["BASELINES", "BaselineContext", "BaselineSpec", "BuiltBaseline", "H2Rec", "H2RecConfig", "MostPopular",
    "SASRec", "SASRecConfig", "SASRecRanker", "SASRecSID", "SASRecSIDConfig", "SeqConfig", "SequentialModel",
    "SequentialRanker", "TrainResult", "baseline_config", "build_baseline", "cached_h2rec", "cached_sasrec",
    "cached_sasrec_sid", "parse_baselines", "train_h2rec", "train_sasrec", "train_sasrec_sid", "train_sequential"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmrec.baselines' has no attribute {name!r}")
    return getattr(importlib.import_module(f"llmrec.baselines.{_EXPORTS[name]}"), name)
