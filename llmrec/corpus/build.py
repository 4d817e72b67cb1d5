"""Build the LC-Rec style instruction corpus as a `datasets.DatasetDict` (train / valid / test).

train: every enabled task over the training split only (sliding windows from `Split.train_examples`
and the item catalogue). valid/test: the held-out next-item examples as seqrec prompts built by
`seqrec_messages` (the same function eval and serving use), optionally plus translation tasks
over a sample of items. Rows use TRL's conversational prompt-completion format
(`prompt` = messages incl. system, `completion` = [assistant]) plus `task`, `target`, `user`;
with a tokenizer that has no chat template they are plain strings instead.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import DatasetDict, load_from_disk

from llmrec.corpus.builder import TASK_BUILDERS, CorpusBuilder
from llmrec.corpus.config import CorpusConfig
from llmrec.corpus.render import has_chat_template
from llmrec.corpus.templates import PromptLibrary, load_templates
from llmrec.data.store import PreparedData
from llmrec.io import LlmrecError, atomic_path, prepare_output, read_json, sha256_json, write_json
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "llmrec.corpus/1"
TEXT_TASKS = {"item2sid_title", "item2sid_description", "item2sid_full", "sid2item_title",
              "sid2item_description", "fusion_sid2title", "fusion_title2sid"}


def task_counts(corpus: DatasetDict) -> dict[str, dict[str, int]]:
    """{split: {task: rows}}."""
    return {split: dict(sorted(Counter(ds["task"]).items())) for split, ds in corpus.items()}


def build_corpus_with_manifest(prepared: PreparedData, sid_map: SidMap, config: CorpusConfig | None = None,
                               tokenizer: Any = None) -> tuple[DatasetDict, dict[str, Any]]:
    """Build the corpus and the manifest describing it (counts, skips, config, fingerprints)."""
    config = config or CorpusConfig()
    tasks = config.resolved_tasks()
    library = load_templates(config.prompts_dir)
    conversational = tokenizer is None or has_chat_template(tokenizer)
    b = CorpusBuilder(prepared, sid_map, config, library, conversational)
    info: dict[str, Any] = {}
    for name in TASK_BUILDERS.names():
        build = TASK_BUILDERS.get(name)
        if set(build.tasks) & set(tasks):
            info.update(build(b, tasks) or {})
    behavior_info = info.get("behaviors", {})
    b.heldout(tasks)
    corpus = b.dataset_dict()
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "style": "conversational" if conversational else "plain",
        "tasks": tasks,
        "counts": task_counts(corpus),
        "skipped": {t: dict(c) for t, c in sorted(b.skipped.items())},
        "behaviors": behavior_info,
        "config": config.to_dict(),
        "sid_map_fingerprint": sid_map.fingerprint,
        "data_fingerprint": prepared.fingerprint,
        "data_name": prepared.manifest.get("name"),
        "prompts_fingerprint": library.fingerprint,
        "prompts_sources": library.sources,
        "tokenizer": None if tokenizer is None else {
            "name_or_path": getattr(tokenizer, "name_or_path", None),
            "chat_template_sha": sha256_json(tokenizer.chat_template)[:16] if conversational else None},
    }
    manifest["fingerprint"] = sha256_json({k: manifest[k] for k in ("counts", "config", "sid_map_fingerprint",
                                                                     "data_fingerprint", "prompts_fingerprint",
                                                                     "style")})[:16]
    return corpus, manifest


def build_corpus(prepared: PreparedData, sid_map: SidMap, config: CorpusConfig | None = None,
                 tokenizer: Any = None) -> DatasetDict:
    """train / valid / test DatasetDict (see module docstring for the row format)."""
    return build_corpus_with_manifest(prepared, sid_map, config, tokenizer)[0]


def save_corpus(out_dir: str | Path, corpus: DatasetDict, manifest: dict[str, Any]) -> Path:
    """`save_to_disk` + manifest.json into a temp folder, then rename onto `out_dir` (only a new or
    empty folder or an earlier corpus is replaced: llmrec.io.prepare_output)."""
    out_dir = prepare_output(out_dir, "corpus")
    with atomic_path(out_dir) as tmp:
        corpus.save_to_disk(str(tmp))
        write_json(tmp / MANIFEST, manifest)
    return out_dir


def load_corpus_manifest(corpus_dir: str | Path) -> dict[str, Any]:
    path = Path(corpus_dir) / MANIFEST
    if not path.exists():
        raise LlmrecError(f"{corpus_dir}: no {MANIFEST}; run `llmrec corpus build --run RUN` first.")
    return read_json(path, "corpus manifest")


def corpus_prompt_library(corpus_dir: str | Path, manifest: dict[str, Any] | None = None) -> PromptLibrary:
    """The prompt templates a corpus was built with (its config's `prompts_dir`), refused when they
    have changed since (the model would learn one wording and be prompted with another). `manifest`:
    the corpus manifest when the caller has it already."""
    manifest = manifest if manifest is not None else load_corpus_manifest(corpus_dir)
    library = load_templates(manifest.get("config", {}).get("prompts_dir"))
    built = manifest.get("prompts_fingerprint")
    if built and built != library.fingerprint:
        raise LlmrecError(f"{corpus_dir}: built with prompt templates {built}, but {library.sources} now give "
                          f"{library.fingerprint}; rebuild the corpus with `llmrec corpus build`.")
    return library


def load_corpus(corpus_dir: str | Path, sid_map: SidMap | None = None) -> DatasetDict:
    """Load a saved corpus; with `sid_map`, refuse a corpus built from a different SID map."""
    manifest = load_corpus_manifest(corpus_dir)
    if sid_map is not None and manifest.get("sid_map_fingerprint") != sid_map.fingerprint:
        raise LlmrecError(f"{corpus_dir}: built with SID map {manifest.get('sid_map_fingerprint')}, but the "
                          f"given SID map is {sid_map.fingerprint}; rebuild with `llmrec corpus build`.")
    return load_from_disk(str(corpus_dir))
