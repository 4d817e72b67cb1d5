"""Writing a bundle folder atomically, from model objects or a saved model folder."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmrec.bundle.card import model_card
from llmrec.bundle.io import (
    _SKIP,
    CARD_FILE,
    CONFIG_FILE,
    FORBIDDEN_SUFFIXES,
    ITEMS_FILE,
    SID_MAP_FILE,
    assert_safetensors_only,
    bundle_config,
    check_out_dir,
    is_adapter_dir,
)
from llmrec.bundle.model import load_model_dir, needs_merge
from llmrec.bundle.paths import looks_local, scrub_paths
from llmrec.data.records import Item
from llmrec.io import LlmrecError, atomic_path, read_json, write_json, write_jsonl
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)


def save_bundle(out_dir: str | Path, *, items: Mapping[str, Item], model=None, tokenizer=None,
                sid_map: SidMap | None = None, model_dir: str | Path | None = None, merge: bool | None = None,
                generation: Mapping[str, Any] | None = None, metrics: list[dict] | None = None,
                data_manifest: Mapping[str, Any] | None = None, name: str | None = None,
                base: str | None = None, repo_id: str | None = None, behaviors: list[str] | None = None,
                model_ranker: str | None = None, license: str | None = "apache-2.0",
                replace: bool = True, sources: tuple[str | Path, ...] = ()) -> Path:
    """Write a complete, reloadable bundle folder atomically; returns its path.

    Give either (model, tokenizer, sid_map) objects or `model_dir` (a `save_model` folder, copied
    as is unless `merge`). `merge=None` merges a PEFT adapter whose base is not a Hub id. An existing
    non-empty folder is replaced only when it is a bundle (and `replace`); see `check_out_dir`.
    """
    out_dir = check_out_dir(out_dir, sources=tuple(sources) + ((model_dir,) if model_dir else ()), replace=replace)
    if model is None and model_dir is None:
        raise LlmrecError("save_bundle needs a model (with tokenizer and sid_map) or model_dir.")
    with atomic_path(out_dir) as tmp:
        if model_dir is not None and not merge and not (merge is None and _adapter_needs_merge(model_dir)):
            model_dir = Path(model_dir)
            if not (model_dir / "config.json").exists() and not is_adapter_dir(model_dir):
                raise LlmrecError(f"{model_dir}: no config.json or adapter_config.json; not a saved model.")
            _copy_model_dir(model_dir, tmp)
            sid_map = SidMap.load(tmp / SID_MAP_FILE)
            from llmrec.llm.sid_tokens import check_sid_map

            check_sid_map(tmp, sid_map)
            weights = "adapter" if is_adapter_dir(tmp) else "full"
        else:
            if model is None:
                model, tokenizer, sid_map = load_model_dir(model_dir)
            if tokenizer is None or sid_map is None:
                raise LlmrecError("save_bundle(model=...) also needs tokenizer= and sid_map=.")
            from llmrec.llm import save_model

            weights = "adapter" if hasattr(model, "merge_and_unload") else "full"
            if needs_merge(model, merge):
                from llmrec.llm.loading import merge_adapter

                model = merge_adapter(model)
                weights = "full (adapter merged)"
            save_model(model, tokenizer, sid_map, tmp)
        assert_safetensors_only(tmp)
        _scrub_files(tmp)
        missing = [i for i in sid_map.item_ids if i not in items]
        if missing:
            raise LlmrecError(f"catalogue lacks {len(missing)} items of the SidMap (e.g. {missing[:3]}); pass the "
                              "items the SidMap was built from.")
        write_jsonl(tmp / ITEMS_FILE, (it.to_dict() for it in items.values()))
        rec = read_json(tmp / "llmrec_sid.json") if (tmp / "llmrec_sid.json").exists() else {}
        config = bundle_config(sid_map=sid_map, items=items, name=name or out_dir.name,
                               base=base or rec.get("base") or _model_base(tmp), weights=weights,
                               generation=generation, metrics=metrics, data_manifest=data_manifest,
                               behaviors=behaviors, model_ranker=model_ranker, license=license)
        write_json(tmp / CONFIG_FILE, config)
        model_card(config, repo_id=repo_id).save(tmp / CARD_FILE)
    log.info("bundle written: %s", out_dir)
    return out_dir


def _adapter_needs_merge(model_dir: str | Path) -> bool:
    """An adapter folder whose base is not a Hub id cannot be loaded elsewhere: merge it."""
    p = Path(model_dir)
    if not is_adapter_dir(p):
        return False
    base = read_json(p / "adapter_config.json").get("base_model_name_or_path") or ""
    return looks_local(base) or "/" not in base


def _model_base(folder: Path) -> str | None:
    if is_adapter_dir(folder):
        return read_json(folder / "adapter_config.json").get("base_model_name_or_path")
    cfg = read_json(folder / "config.json") if (folder / "config.json").exists() else {}
    sid = cfg.get("llmrec_sid") or {}
    return sid.get("base") or cfg.get("_name_or_path") or None


def _copy_model_dir(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.iterdir()):
        if p.is_dir() or p.name in _SKIP or p.name in (ITEMS_FILE, CONFIG_FILE, CARD_FILE):
            continue  # checkpoints/, training leftovers and TRL's own README stay behind
        if p.suffix in FORBIDDEN_SUFFIXES:
            raise LlmrecError(f"{p}: pickle-based weights cannot go into a bundle; re-save with safetensors.")
        shutil.copy2(p, dst / p.name)


# JSON files of a model folder that may hold local paths (_name_or_path, an init model's or a SidMap's
# source); the rest (tokenizer.json, items.jsonl) is data, never paths.
_SCRUB = ("config.json", "generation_config.json", "llmrec_sid.json", "adapter_config.json", SID_MAP_FILE)


def _scrub_files(folder: Path) -> None:
    """Cut absolute paths out of the bundle's JSON metadata (its fingerprints do not cover them)."""
    for name in _SCRUB:
        p = folder / name
        if not p.is_file():
            continue
        obj = read_json(p)
        clean = scrub_paths(obj)
        if clean != obj:
            write_json(p, clean)
    SidMap.load(folder / SID_MAP_FILE)  # still valid (the fingerprint covers codes and levels only)

