"""What a run folder contributes to a bundle: its newest model, catalogue, behaviours and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmrec.bundle.io import ITEMS_FILE, SID_MAP_FILE, bundle_config, is_adapter_dir
from llmrec.bundle.save import save_bundle
from llmrec.data.records import Item
from llmrec.io import LlmrecError, read_json, read_jsonl

STAGES = ("grpo", "sft_rec", "sft")


def is_model_dir(folder: str | Path) -> bool:
    p = Path(folder)
    return (p / SID_MAP_FILE).exists() and ((p / "config.json").exists() or is_adapter_dir(p))


def is_run_dir(folder: str | Path) -> bool:
    return (Path(folder) / "data" / "manifest.json").exists()


def find_run_model(run_dir: str | Path) -> Path:
    """The newest trained model of a run: RUN/grpo/model, else RUN/sft_rec/model, else RUN/sft/model."""
    run_dir = Path(run_dir)
    for stage in STAGES:
        for cand in (run_dir / stage / "model", run_dir / stage):
            if is_model_dir(cand):
                return cand
    raise LlmrecError(f"{run_dir}: no trained model in grpo/model, sft_rec/model or sft/model; run "
                      "`llmrec train sft` first.")


def model_ranker_name(model_dir: str | Path) -> str:
    """The name `llmrec eval` gives this model's ranker ('llm-grpo' for RUN/grpo/model)."""
    from llmrec.eval.runner import llm_ranker_name

    return llm_ranker_name(model_dir)


def run_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Per-ranker results under RUN/eval, one per (ranker, split), newest first wins; the combined
    metrics.json files are read for their `rankers` list, never counted as a ranker themselves."""
    ev = Path(run_dir) / "eval"
    if not ev.exists():
        return []
    found: dict[tuple[str, str], dict] = {}
    for p in sorted(ev.rglob("metrics.json")):
        try:
            m = read_json(p)
        except LlmrecError:
            continue
        rows = m.get("rankers", []) if isinstance(m, dict) and "rankers" in m else [m]
        for r in rows:
            if not isinstance(r, dict) or not isinstance(r.get("metrics"), dict) or not r.get("ranker"):
                continue
            key = (str(r["ranker"]), str(r.get("split", "test")))
            if key not in found or str(r.get("created", "")) > str(found[key].get("created", "")):
                found[key] = r
    return [{"ranker": r["ranker"], "split": r.get("split", "test"), "n_examples": r.get("n_examples"),
             "metrics": r["metrics"], "created": r.get("created")} for r in found.values()]


def run_behaviors(run_dir: str | Path) -> list[str]:
    """Target behaviours the run's corpora taught (behavior_item task), from RUN/corpus*/manifest.json."""
    out: set[str] = set()
    for p in sorted(Path(run_dir).glob("corpus*/manifest.json")):
        try:
            m = read_json(p)
        except LlmrecError:
            continue
        if "behavior_item" in (m.get("tasks") or []):
            out.update((m.get("behaviors") or {}).get("labels", {}) or [])
    return sorted(out)


def _run_of(model_dir: Path) -> Path | None:
    for cand in model_dir.resolve().parents[:3]:
        if is_run_dir(cand):
            return cand
    return None


def run_parts(path: str | Path) -> dict[str, Any]:
    """For a run folder or a model folder inside a run: model_dir, items, manifest, metrics, behaviours."""
    from llmrec.data.store import load_prepared

    path = Path(path)
    if is_run_dir(path):
        run_dir, model_dir = path, find_run_model(path)
    elif is_model_dir(path):
        run_dir, model_dir = _run_of(path), path
    else:
        raise LlmrecError(f"{path}: neither a run folder (RUN/data/manifest.json) nor a model folder "
                          "(config.json + sid_map.json).")
    if run_dir is not None:
        prepared = load_prepared(run_dir / "data")
        items, manifest = prepared.items, prepared.manifest
    elif (model_dir / ITEMS_FILE).exists():
        items = {str(d["id"]): Item.from_dict(d) for d in read_jsonl(model_dir / ITEMS_FILE)}
        manifest = {}
    else:
        raise LlmrecError(f"{model_dir}: the catalogue is missing (no run folder above it with data/, no "
                          f"{ITEMS_FILE}); bundle it with `llmrec bundle --run RUN --out FOLDER`.")
    return {"run_dir": run_dir, "model_dir": model_dir, "items": items, "manifest": manifest,
            "metrics": run_metrics(run_dir) if run_dir else [],
            "behaviors": run_behaviors(run_dir) if run_dir else [],
            "model_ranker": model_ranker_name(model_dir), "name": (run_dir or model_dir).name}


def run_config(parts: dict[str, Any], sid_map, weights: str = "full") -> dict[str, Any]:
    """The llmrec_config.json a bundle of these parts would carry (for loading a run without a bundle)."""
    return bundle_config(sid_map=sid_map, items=parts["items"], name=parts["name"], base=None, weights=weights,
                         metrics=parts["metrics"], data_manifest=parts["manifest"], behaviors=parts["behaviors"],
                         model_ranker=parts["model_ranker"])


def bundle_from_run(run_dir: str | Path, out_dir: str | Path, *, merge: bool | None = None,
                    repo_id: str | None = None, replace: bool = False, license: str | None = "apache-2.0") -> Path:
    """Bundle a run's newest model (or a model folder inside a run) with its catalogue, metrics and
    behaviours. Refuses an `out_dir` that is the run, holds it, or is a non-empty non-bundle folder;
    replaces an existing bundle only with `replace`."""
    parts = run_parts(run_dir)
    return save_bundle(out_dir, items=parts["items"], model_dir=parts["model_dir"], merge=merge,
                       metrics=parts["metrics"], data_manifest=parts["manifest"], name=parts["name"],
                       repo_id=repo_id, behaviors=parts["behaviors"], model_ranker=parts["model_ranker"],
                       replace=replace, license=license, sources=tuple(p for p in (parts["run_dir"],) if p))
