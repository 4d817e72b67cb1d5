"""The early stages as reusable steps (data -> SIDs -> corpus), each skipped when its folder exists.

Used by `llmrec demo` and the benchmark scripts; the CLI sub-commands remain the way to run one
stage with all its options.
"""

from __future__ import annotations

import logging
from pathlib import Path

from llmrec.corpus import CorpusConfig, build_corpus_with_manifest, save_corpus
from llmrec.data.prepare import prepare_data
from llmrec.data.store import PreparedData, load_prepared
from llmrec.sid.build import SidConfig, build_sids
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)

# The corpus mix for small CPU budgets: short tasks, title <-> SID twice with different wording.
CPU_CORPUS = CorpusConfig(
    tasks=["seqrec", "item2sid_title", "sid2item_title", "fusion_sid2title", "fusion_title2sid"],
    caps={"fusion_sid2title": 3000, "fusion_title2sid": 1500},
    repeats={"item2sid_title": 2, "sid2item_title": 2},
    fusion_max_history=5,
)


def ensure_data(dataset: str, run: Path, reuse: bool = True) -> PreparedData:
    if not (reuse and (run / "data" / "manifest.json").exists()):
        prepare_data(dataset, run, split="loo", max_history=20)
    return load_prepared(run / "data")


def ensure_sids(prepared: PreparedData, run: Path, config: SidConfig | None = None, reuse: bool = True) -> SidMap:
    path = run / "sid" / "sid_map.json"
    if reuse and path.exists():
        sid_map = SidMap.load(path)
        if sid_map.meta.get("input_fingerprint") == prepared.fingerprint:
            return sid_map
    return build_sids(prepared, config or SidConfig(), out_dir=run / "sid")


def ensure_corpus(prepared: PreparedData, sid_map: SidMap, run: Path, config: CorpusConfig | None = None,
                  reuse: bool = True) -> dict:
    """Build RUN/corpus (or reuse one built from the same SidMap); returns its manifest."""
    from llmrec.corpus import load_corpus_manifest

    if reuse and (run / "corpus" / "manifest.json").exists():
        manifest = load_corpus_manifest(run / "corpus")
        if manifest.get("sid_map_fingerprint") == sid_map.fingerprint:
            return manifest
    corpus, manifest = build_corpus_with_manifest(prepared, sid_map, config or CPU_CORPUS)
    save_corpus(run / "corpus", corpus, manifest)
    return manifest
