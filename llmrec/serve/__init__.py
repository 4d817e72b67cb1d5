"""Using a trained model: the `Recommender` Python API, title resolution, chat and the HTTP server
(`llmrec.serve.app` / `llmrec.serve.server`, imported on demand: FastAPI is not needed to recommend).

Names are resolved lazily (PEP 562), so `llmrec.serve.config` loads without torch."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Recommender": "recommender", "Match": "resolve", "Mentions": "resolve", "TitleResolver": "resolve",
            "normalize": "resolve", "ChatReply": "types", "Recommendation": "types", "RecRequest": "types",
            "ServeSettings": "config"}
__all__ = ["ChatReply", "Match", "Mentions", "RecRequest", "Recommendation", "Recommender", "ServeSettings",
           "TitleResolver", "normalize"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmrec.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(f"llmrec.serve.{_EXPORTS[name]}"), name)
