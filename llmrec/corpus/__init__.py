"""LC-Rec style instruction corpus: prompt templates, task builders, rendering, datasets output."""

from llmrec.corpus.build import (
    CorpusConfig,
    build_corpus,
    build_corpus_with_manifest,
    load_corpus,
    load_corpus_manifest,
    save_corpus,
    task_counts,
)
from llmrec.corpus.render import has_chat_template, plain_prompt, render_example, render_prompt
from llmrec.corpus.tasks import make_messages, seqrec_messages
from llmrec.corpus.templates import ALL_TASKS, TASK_FAMILIES, PromptLibrary, load_templates

__all__ = [
    "ALL_TASKS", "TASK_FAMILIES", "CorpusConfig", "PromptLibrary", "build_corpus", "build_corpus_with_manifest",
    "has_chat_template", "load_corpus", "load_corpus_manifest", "load_templates", "make_messages",
    "plain_prompt", "render_example", "render_prompt", "save_corpus", "seqrec_messages", "task_counts",
]
