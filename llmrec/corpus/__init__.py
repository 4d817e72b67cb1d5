"""LC-Rec style instruction corpus: prompt templates, task builders, rendering, datasets output.

Names are resolved lazily (PEP 562) so `llmrec.corpus.config` loads without `datasets` and the
command line checks a corpus config at once."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_corpus": "build", "build_corpus_with_manifest": "build", "corpus_prompt_library": "build",
    "load_corpus": "build",
    "load_corpus_manifest": "build", "save_corpus": "build", "task_counts": "build", "CorpusConfig": "config",
    "has_chat_template": "render", "plain_prompt": "render", "render_example": "render", "render_prompt": "render",
    "make_messages": "tasks", "seqrec_messages": "tasks", "ALL_TASKS": "templates", "TASK_FAMILIES": "templates",
    "PromptLibrary": "templates", "load_templates": "templates",
}
__all__ = [
    "ALL_TASKS", "TASK_FAMILIES", "CorpusConfig", "PromptLibrary", "build_corpus", "build_corpus_with_manifest",
    "corpus_prompt_library",
    "has_chat_template", "load_corpus", "load_corpus_manifest", "load_templates", "make_messages",
    "plain_prompt", "render_example", "render_prompt", "save_corpus", "seqrec_messages", "task_counts",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmrec.corpus' has no attribute {name!r}")
    return getattr(importlib.import_module(f"llmrec.corpus.{_EXPORTS[name]}"), name)
