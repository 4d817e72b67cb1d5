"""The early stages as reusable steps (data -> SIDs -> corpus), each reused when its folder was
built from the same inputs. Used by `llmrec demo` and the benchmark scripts; the CLI sub-commands
remain the way to run one stage with all its options."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import yaml

from llmrec.config import config_to_dict, load_config, save_config
from llmrec.corpus.build import build_corpus_with_manifest, load_corpus_manifest, save_corpus
from llmrec.corpus.config import CorpusConfig
from llmrec.data.config import DataConfig
from llmrec.data.prepare import DATA_CONFIG, prepare_data
from llmrec.data.store import PreparedData, load_prepared
from llmrec.io import LlmrecError
from llmrec.sid.build import SidConfig, build_sids
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)

DEFAULT_RECIPES = "tiny-cpu"


def recipes_dir() -> Path:
    """The shipped recipes: the checkout's recipes/, or the installed copy under share/llmrec/recipes."""
    for cand in (Path(__file__).resolve().parents[1] / "recipes", Path(sys.prefix) / "share" / "llmrec" / "recipes"):
        if (cand / DEFAULT_RECIPES).is_dir():
            return cand
    raise LlmrecError("the shipped recipes were not found (looked in the checkout's recipes/ and "
                      f"{Path(sys.prefix) / 'share' / 'llmrec' / 'recipes'}); reinstall llmrec.")


def default_corpus_config() -> CorpusConfig:
    """The corpus of the recommended CPU recipe (recipes/tiny-cpu/corpus.yaml)."""
    return load_config(CorpusConfig, recipes_dir() / DEFAULT_RECIPES / "corpus.yaml")


def ensure_data(dataset: str, run: Path, reuse: bool = True, config: DataConfig | None = None) -> PreparedData:
    """RUN/data prepared as `config` says (a recipe's data.yaml; default: `llmrec data prepare`'s defaults),
    which is kept beside it as data_config.yaml, as the command does; reused when `reuse` and that file
    matches."""
    cfg = dataclasses.replace(config or DataConfig(), dataset=str(dataset), out=str(run))
    saved = run / "data" / DATA_CONFIG
    if reuse and saved.exists() and yaml.safe_load(saved.read_text(encoding="utf-8")) == config_to_dict(cfg):
        return load_prepared(run / "data")
    prepare_data(dataset, run, split=cfg.split, max_history=cfg.max_history or None, short_users=cfg.short_users,
                 ratios=cfg.ratios, tune_users=cfg.tune_users, seed=cfg.seed, **cfg.load_options())
    save_config(cfg, saved)
    return load_prepared(run / "data")


def sid_config_for(prepared: PreparedData, recipe: SidConfig) -> SidConfig:
    """The recipe's SIDs; a recipe built from text switches to collaborative vectors (training
    interactions only) when fewer than half of the items have a title or description."""
    items = list(prepared.items.values())
    with_text = sum(bool((it.title or "").strip() or (it.description or "").strip()) for it in items)
    if recipe.source != "text" or (items and with_text >= len(items) / 2):
        return recipe
    log.info("%d of %d items have text: SIDs from collaborative vectors", with_text, len(items))
    return dataclasses.replace(recipe, source="collaborative")


def ensure_sids(prepared: PreparedData, run: Path, config: SidConfig | None = None, reuse: bool = True) -> SidMap:
    """RUN/sid, reused when it was built from the same data (and, when `config` is given, the same config)."""
    path = run / "sid" / "sid_map.json"
    if reuse and path.exists():
        sid_map = SidMap.load(path)
        same_config = config is None or sid_map.meta.get("config") == config.to_dict()
        if sid_map.meta.get("input_fingerprint") == prepared.fingerprint and same_config:
            return sid_map
    return build_sids(prepared, config or SidConfig(), out_dir=run / "sid")


def ensure_corpus(prepared: PreparedData, sid_map: SidMap, run: Path, config: CorpusConfig | None = None,
                  reuse: bool = True) -> dict:
    """Build RUN/corpus (or reuse one built from the same SidMap, data and config); returns its manifest."""
    config = config or default_corpus_config()
    if reuse and (run / "corpus" / "manifest.json").exists():
        manifest = load_corpus_manifest(run / "corpus")
        if (manifest.get("sid_map_fingerprint") == sid_map.fingerprint
                and manifest.get("data_fingerprint") == prepared.manifest.get("fingerprint")
                and manifest.get("config") == config.to_dict()):
            return manifest
    corpus, manifest = build_corpus_with_manifest(prepared, sid_map, config)
    save_corpus(run / "corpus", corpus, manifest)
    return manifest
