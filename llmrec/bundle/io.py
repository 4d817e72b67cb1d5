"""Bundle folders: write one atomically (never over a folder that is not a bundle), read one back checked.

A bundle holds the model (full weights or a PEFT adapter, safetensors only), the tokenizer with its
SID tokens, `sid_map.json`, the catalogue (`items.jsonl`), `llmrec_config.json` (fingerprints that tie
the three together, generation settings, behaviours, provenance without local paths) and a model card
(`README.md`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmrec.bundle.paths import public_name, scrub_paths
from llmrec.data.records import Item
from llmrec.io import LlmrecError, read_json, read_jsonl, sha256_json
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "llmrec.bundle/1"
CONFIG_FILE = "llmrec_config.json"
ITEMS_FILE = "items.jsonl"
SID_MAP_FILE = "sid_map.json"
CARD_FILE = "README.md"
FORBIDDEN_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
DEFAULT_GENERATION = {"num_beams": 20, "max_history": 20, "template_index": 0}
# training leftovers never copied into a bundle (TRL's README.md says "fine-tuned version of [None]")
_SKIP = {"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"}


# ---- identity ----------------------------------------------------------------------------------
def catalogue_fingerprint(items: Mapping[str, Item]) -> str:
    """sha256 (16 hex) of the catalogue rows, independent of dict order."""
    return sha256_json(sorted((k, v.to_dict()) for k, v in items.items()))[:16]


def check_bundle_pairing(config: Mapping[str, Any], sid_map: SidMap, items: Mapping[str, Item],
                         where: str) -> None:
    """Raise unless the SidMap and catalogue are the ones recorded in llmrec_config.json."""
    want = config.get("sid_fingerprint")
    if want and want != sid_map.fingerprint:
        raise LlmrecError(f"{where}: {SID_MAP_FILE} has fingerprint {sid_map.fingerprint} but {CONFIG_FILE} "
                          f"records {want}; the bundle was edited or mixed up; re-save it with save_pretrained.")
    want = config.get("catalogue_fingerprint")
    got = catalogue_fingerprint(items)
    if want and want != got:
        raise LlmrecError(f"{where}: {ITEMS_FILE} has fingerprint {got} but {CONFIG_FILE} records {want}; "
                          "the catalogue does not belong to this model; re-save the bundle.")
    missing = [i for i in sid_map.item_ids if i not in items]
    if missing:
        raise LlmrecError(f"{where}: {len(missing)} items of {SID_MAP_FILE} are not in {ITEMS_FILE} "
                          f"(e.g. {missing[:3]}); the catalogue does not match the SidMap.")


def assert_safetensors_only(folder: str | Path) -> None:
    """Raise if a pickle-based weight file (.bin/.pt/...) is in the folder, or no .safetensors file is."""
    folder = Path(folder)
    bad = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in FORBIDDEN_SUFFIXES]
    if bad:
        raise LlmrecError(f"{folder}: pickle-based files {bad} are not allowed in a bundle (they can run code "
                          "when loaded); save with safetensors (save_pretrained(safe_serialization=True)).")
    if not any(folder.rglob("*.safetensors")):
        raise LlmrecError(f"{folder}: no .safetensors weights found.")


def is_adapter_dir(folder: str | Path) -> bool:
    return (Path(folder) / "adapter_config.json").exists()


def is_bundle_dir(folder: str | Path) -> bool:
    """A folder written by save_bundle (its llmrec_config.json says so)."""
    p = Path(folder) / CONFIG_FILE
    if not p.is_file():
        return False
    try:
        return str(read_json(p).get("format", "")).startswith("llmrec.bundle/")
    except (LlmrecError, AttributeError):
        return False


# ---- where a bundle may be written ---------------------------------------------------------------
def check_out_dir(out_dir: str | Path, *, sources: tuple[str | Path, ...] = (), replace: bool = True) -> Path:
    """Refuse an output folder that would destroy something: the current folder or one above it, a
    folder holding (or equal to) a source, a non-empty folder that is not a bundle, or (with
    `replace=False`) an existing bundle. Returns the path."""
    out = Path(out_dir).expanduser()
    real = out.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise LlmrecError(f"--out {out_dir}: that is the current folder (or above it); name a new folder, "
                          "e.g. --out bundle.")
    for src in sources:
        s = Path(src).expanduser().resolve()
        if real == s or real in s.parents:
            raise LlmrecError(f"--out {out_dir}: it holds the input {src}; writing there would delete it. "
                              f"Name a new folder, e.g. --out {Path(src) / 'bundle'}.")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise LlmrecError(f"--out {out_dir}: exists and is not a folder; name a new folder.")
    if out.is_dir() and any(out.iterdir()):
        if not is_bundle_dir(out):
            raise LlmrecError(f"--out {out_dir}: the folder exists, is not empty and is not an llmrec bundle; "
                              "it is left as it is. Name a new or empty folder.")
        if not replace:
            raise LlmrecError(f"--out {out_dir}: a bundle is already there; pass --force to replace it.")
    return out


# ---- writing ------------------------------------------------------------------------------------
def bundle_config(*, sid_map: SidMap, items: Mapping[str, Item], name: str | None, base: str | None,
                  weights: str, generation: Mapping[str, Any] | None = None, metrics: list[dict] | None = None,
                  data_manifest: Mapping[str, Any] | None = None, behaviors: list[str] | None = None,
                  model_ranker: str | None = None, license: str | None = None) -> dict[str, Any]:
    """The llmrec_config.json of a bundle (also used in memory for a run loaded without a bundle)."""
    manifest = dict(data_manifest or {})
    return scrub_paths({
        "format": BUNDLE_FORMAT,
        "name": public_name(name),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base": public_name(base),
        "weights": weights,
        "license": license,
        "sid_fingerprint": sid_map.fingerprint,
        "sid_levels": sid_map.level_sizes,
        "catalogue_fingerprint": catalogue_fingerprint(items),
        "num_items": len(items),
        "behaviors": sorted(behaviors or []),
        "generation": {**DEFAULT_GENERATION, **dict(generation or {})},
        "data": {k: manifest.get(k) for k in ("name", "fingerprint", "source", "counts", "split", "created")
                 if k in manifest},
        "model_ranker": model_ranker,
        "metrics": [{k: m.get(k) for k in ("ranker", "split", "n_examples", "metrics", "ks") if k in m}
                    for m in (metrics or []) if isinstance(m, Mapping) and isinstance(m.get("metrics"), Mapping)],
    })


# ---- reading ------------------------------------------------------------------------------------
def read_bundle(folder: str | Path) -> tuple[dict[str, Any], SidMap, dict[str, Item]]:
    """(config, sid_map, items) of a bundle, checked to belong together. A bare save_model folder
    (no llmrec_config.json) is accepted when items.jsonl is present."""
    folder = Path(folder)
    config = read_json(folder / CONFIG_FILE, "bundle config") if (folder / CONFIG_FILE).exists() else {}
    if not (folder / SID_MAP_FILE).exists():
        raise LlmrecError(f"{folder}: no {SID_MAP_FILE}; not an llmrec bundle. Write one with "
                          "`llmrec bundle --run RUN --out FOLDER` (or Recommender.save_pretrained).")
    if not (folder / ITEMS_FILE).exists():
        raise LlmrecError(f"{folder}: no {ITEMS_FILE} catalogue; write the bundle with `llmrec bundle --run RUN "
                          "--out FOLDER` so the catalogue travels with the model.")
    sid_map = SidMap.load(folder / SID_MAP_FILE)
    items = {str(d["id"]): Item.from_dict(d) for d in read_jsonl(folder / ITEMS_FILE)}
    check_bundle_pairing(config, sid_map, items, str(folder))
    return config, sid_map, items


def remove_bundle(folder: str | Path) -> None:
    """Delete a folder only if it is a bundle (used for temporary bundles)."""
    folder = Path(folder)
    if folder.is_dir() and is_bundle_dir(folder):
        shutil.rmtree(folder)
    elif folder.exists():
        raise LlmrecError(f"{folder}: not a bundle; not deleted.")

