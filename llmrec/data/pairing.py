"""Pairing checks: every stage that reads an upstream artifact compares the fingerprint the
artifact recorded with the one it is about to be used with, and refuses a mismatch with a message
naming both sides and the command that fixes it.

Recorded fingerprints (JSON fields, so this module needs nothing above `data`):
  sid/sid_map.json        meta.input_fingerprint   the data the SIDs were built from
  corpus/manifest.json    data_fingerprint, sid_map_fingerprint
  MODEL/sid_map.json      fingerprint (+ meta.input_fingerprint); train_summary.json data_fingerprint
  eval/**/metrics.json    data_fingerprint
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrec.data.store import PreparedData
from llmrec.io import LlmrecError, artifact_kind, read_json


class PairingError(LlmrecError):
    """An artifact is used with inputs other than the ones it was built from."""


def _sid_info(sid_map: Any) -> tuple[str | None, dict[str, Any], set[str]]:
    """(fingerprint, meta, item ids) of a SidMap object, a sid_map.json dict, or a path to one."""
    if isinstance(sid_map, (str, Path)):
        sid_map = read_json(sid_map, "SID map")
    if isinstance(sid_map, Mapping):
        return sid_map.get("fingerprint"), dict(sid_map.get("meta") or {}), set(sid_map.get("items") or {})
    return sid_map.fingerprint, dict(getattr(sid_map, "meta", None) or {}), set(sid_map.codes)


def _data_name(prepared: PreparedData) -> str:
    return f"{prepared.fingerprint} ({prepared.manifest.get('name', '?')})"


def check_sid_for_data(sid_map: Any, prepared: PreparedData, *, run: str | Path = "RUN",
                       sid_where: str | None = None, data_where: str | None = None) -> None:
    """Refuse a SID map built from other data than `prepared`.

    A map that records no input fingerprint (imported index.json, hand-made) must at least cover
    some of the catalogue.
    """
    sid_where = sid_where or f"{run}/sid/sid_map.json"
    data_where = data_where or f"{run}/data"
    _, meta, ids = _sid_info(sid_map)
    recorded = meta.get("input_fingerprint")
    fix = f"rebuild them for this data: `llmrec sid build --run {run}`, then `llmrec corpus build --run {run}`"
    if recorded:
        if not prepared.matches(recorded):
            raise PairingError(f"{sid_where} was built from data {recorded}, but {data_where} is now "
                               f"{_data_name(prepared)}: the SIDs are stale; {fix}.")
        return
    if ids and not ids & set(prepared.items):
        raise PairingError(f"{sid_where} gives SIDs to none of the {len(prepared.items)} items in {data_where} "
                           f"({_data_name(prepared)}): it belongs to another catalogue; {fix}.")


def check_corpus_for_run(corpus_manifest: Mapping[str, Any] | str | Path, sid_map: Any,
                         prepared: PreparedData | None = None, *, run: str | Path = "RUN",
                         corpus_where: str | None = None) -> None:
    """Refuse a corpus built from another SID map or other data (training reads all three)."""
    if isinstance(corpus_manifest, (str, Path)):
        corpus_where = corpus_where or str(corpus_manifest)
        corpus_manifest = read_json(Path(corpus_manifest) / "manifest.json", "corpus manifest")
    corpus_where = corpus_where or f"{run}/corpus"
    fix = f"rebuild it: `llmrec corpus build --run {run}`"
    sid_fp = _sid_info(sid_map)[0]
    if corpus_manifest.get("sid_map_fingerprint") != sid_fp:
        raise PairingError(f"{corpus_where} was built with SID map {corpus_manifest.get('sid_map_fingerprint')}, "
                           f"but {run}/sid/sid_map.json is {sid_fp}; {fix}.")
    recorded = corpus_manifest.get("data_fingerprint")
    if prepared is not None and recorded and not prepared.matches(recorded):
        raise PairingError(f"{corpus_where} was built from data {recorded}, but {run}/data is now "
                           f"{_data_name(prepared)}; {fix}.")


def _model_records(model_dir: Path) -> tuple[str | None, str | None, set[str]]:
    """(SID map fingerprint, data fingerprint, item ids) a saved model records; None/empty where none."""
    sid_fp = data_fp = None
    ids: set[str] = set()
    if (model_dir / "sid_map.json").is_file():
        sid_fp, meta, ids = _sid_info(model_dir / "sid_map.json")
        data_fp = meta.get("input_fingerprint")
    for summary in (model_dir / "train_summary.json", model_dir.parent / "train_summary.json"):
        if summary.is_file() and (summary.parent == model_dir or model_dir.name == "model"):
            data_fp = read_json(summary, "train summary").get("data_fingerprint") or data_fp
            break
    return sid_fp, data_fp, ids


def check_model_for_run(model_dir: str | Path, *, sid_map: Any = None, prepared: PreparedData | None = None,
                        run: str | Path = "RUN") -> None:
    """Refuse to evaluate (or serve against a run) a model trained on other data, or (when `sid_map`,
    the run's SID map as object, sid_map.json dict or path, is given) with another SID map.

    A model ranks with its own sid_map.json, so evaluation needs the same data, not the same map:
    eval passes `prepared` only. A model recording no data fingerprint must cover the catalogue.
    """
    model_dir = Path(model_dir)
    model_sid, model_data, model_items = _model_records(model_dir)
    fix = (f"evaluate it on the run it was trained on, or train one on this run (`llmrec sid build`, "
           f"`llmrec corpus build`, `llmrec train sft --run {run}`)")
    if sid_map is not None and model_sid is not None:
        run_sid = _sid_info(sid_map)[0]
        if run_sid != model_sid:
            raise PairingError(f"model {model_dir} was trained with SID map {model_sid}, but {run}/sid/sid_map.json "
                               f"is {run_sid}: its SID tokens name other items; {fix}.")
    if prepared is not None and model_data and not prepared.matches(model_data):
        raise PairingError(f"model {model_dir} was trained on data {model_data}, but {run}/data is "
                           f"{_data_name(prepared)}; {fix}.")
    if prepared is not None and not model_data and model_items and not model_items & set(prepared.items):
        raise PairingError(f"model {model_dir} knows SIDs for none of the {len(prepared.items)} items of "
                           f"{run}/data ({_data_name(prepared)}): it was trained on another catalogue; {fix}.")


# ---- what a new `data prepare` makes stale --------------------------------------------------------
RECORD_FILES = {"sid_map.json": ("meta", "input_fingerprint"), "manifest.json": ("data_fingerprint",),
                "train_summary.json": ("data_fingerprint",), "metrics.json": ("data_fingerprint",)}
REBUILD = {"sid": "llmrec sid build --run {run}", "corpus": "llmrec corpus build --run {run}",
           "train": "llmrec train sft|grpo --run {run}", "model": "llmrec train sft --run {run}",
           "eval": "llmrec eval --run {run}", "bundle": "llmrec bundle --run {run}"}


@dataclass
class Stale:
    """A downstream artifact and the data fingerprints it records (empty: records none)."""

    path: Path
    kind: str
    recorded: set[str]

    def describe(self, run: Path) -> str:
        built = f"built from data {', '.join(sorted(self.recorded))}" if self.recorded else "records no data fingerprint"
        fix = REBUILD.get(self.kind, "").format(run=run)
        return f"{self.path.name}/ ({self.kind}, {built})" + (f": `{fix}`" if fix else "")


def _recorded(folder: Path, depth: int = 2) -> set[str]:
    out: set[str] = set()
    for name, keys in RECORD_FILES.items():
        for path in [folder / name, *folder.glob(f"*/{name}"), *(folder.glob(f"*/*/{name}") if depth > 1 else [])]:
            try:
                value: Any = json.loads(path.read_text(encoding="utf-8"))
                for k in keys:
                    value = value.get(k) if isinstance(value, dict) else None
            except (OSError, ValueError):
                continue
            if isinstance(value, str) and value:
                out.add(value)
    return out


def stale_downstream(run_dir: str | Path, new_fingerprint: str, old_fingerprint: str | None = None,
                     data_name: str = "data") -> list[Stale]:
    """Artifacts in `run_dir` that a data folder with `new_fingerprint` would make stale.

    Nothing is stale when the old data has the same content. Otherwise every llmrec artifact
    beside the data folder is, unless all it records is the new fingerprint. Folders llmrec did
    not write are ignored.
    """
    run_dir = Path(run_dir)
    accepted = {new_fingerprint}
    if old_fingerprint == new_fingerprint:
        return []
    out = []
    for child in sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if run_dir.is_dir() else []:
        if child.name == data_name:
            continue
        recorded = _recorded(child)
        kind = artifact_kind(child) or ("model" if (child / "model").is_dir() else None)
        if recorded and recorded <= accepted:
            continue
        if recorded or kind:
            out.append(Stale(child, kind or "artifact", recorded - accepted))
    return out
