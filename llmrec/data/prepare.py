"""`llmrec data prepare`: load a dataset, filter, split, and write runs/NAME/data/ atomically."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmrec.data.loaders import dataset_summary, load_dataset
from llmrec.data.pairing import stale_downstream
from llmrec.data.records import RecDataset
from llmrec.data.splits import make_split, split_summary
from llmrec.data.store import MANIFEST, fingerprint_of, load_prepared, save_prepared
from llmrec.io import LlmrecError, prepare_output, read_json

log = logging.getLogger(__name__)

DATA_CONFIG = "data_config.yaml"  # the DataConfig a data folder was prepared with (beside manifest.json)


def data_dir_of(run_or_data_dir: str | Path) -> Path:
    """runs/NAME -> runs/NAME/data; a folder that already holds a manifest is returned as is."""
    p = Path(run_or_data_dir)
    if (p / MANIFEST).exists() or p.name == "data":
        return p
    return p / "data"


def prepare_data(dataset: str | Path | RecDataset, out_dir: str | Path, split: str = "auto",
                 max_history: int | None = 20, short_users: str = "drop",
                 ratios: Sequence[float] = (8, 1, 1), tune_users: int = 0, seed: int = 0, force: bool = False,
                 **load_options: Any) -> Path:
    """Load (unless given a RecDataset), split, and save to `<out_dir>/data/`; returns that folder.

    See `prepare_and_summarize` for the arguments.
    """
    return prepare_and_summarize(dataset, out_dir, split=split, max_history=max_history,
                                 short_users=short_users, ratios=ratios, tune_users=tune_users, seed=seed,
                                 force=force, **load_options)[0]


def prepare_and_summarize(dataset: str | Path | RecDataset, out_dir: str | Path, split: str = "auto",
                          max_history: int | None = 20, short_users: str = "drop",
                          ratios: Sequence[float] = (8, 1, 1), tune_users: int = 0, seed: int = 0,
                          force: bool = False, **load_options: Any) -> tuple[Path, dict[str, Any]]:
    """Like prepare_data, also returning the summary `llmrec data stats` would print.

    `out_dir` is the run directory (runs/NAME); if it is already named `data` it is used as is.
    split: 'auto' (the source's own split when it ships one, e.g. MiniOneRec, else 'loo'), 'loo',
    'time' or 'native'. `tune_users` > 0 holds out a tune split for validation during training
    (`llmrec.data.splits.hold_out_tune`, users sampled with `seed`). Nothing is written unless every
    step succeeds: an existing data folder stays untouched on error.

    When the run already holds artifacts built from other data (sid/, corpus/, sft/, eval/, ...)
    they would go stale: that is refused unless `force` (the summary's 'stale' lists them).
    """
    t0 = time.perf_counter()
    target = data_dir_of(out_dir)
    protect = [Path(dataset)] if isinstance(dataset, (str, Path)) and Path(dataset).exists() else []
    prepare_output(target, "data", protect=protect)
    ds = dataset if isinstance(dataset, RecDataset) else load_dataset(str(dataset), **load_options)
    if isinstance(dataset, RecDataset) and load_options:
        raise LlmrecError(f"loader options {sorted(load_options)} given with an already loaded dataset; "
                          "pass the dataset name or path instead.")
    sp = make_split(ds, method=split, max_history=max_history, short_users=short_users, ratios=ratios,
                    tune_users=tune_users, seed=seed)
    if not sp.test:
        raise LlmrecError(f"dataset {ds.name!r}: the {sp.method} split produced no test examples "
                          f"(drops: {sp.options.get('dropped')}); lower the filters or use another split.")
    for k, v in (sp.options.get("dropped") or {}).items():
        ds.dropped[f"split:{k}"] = v
    old = fingerprint_of(target)[0] if (target / MANIFEST).exists() else None
    stale: list[str] = []

    def check_stale(fingerprint: str) -> None:
        found = stale_downstream(target.parent, fingerprint, old, data_name=target.name)
        stale.extend(s.describe(target.parent) for s in found)
        if found and not force:
            raise LlmrecError(f"{target.parent} already holds artifacts built from other data; preparing "
                              f"{ds.name} (fingerprint {fingerprint}) into it would make them stale:\n  "
                              + "\n  ".join(stale) + f"\nUse a new run folder (--out runs/{ds.name}), or pass "
                              "--force to replace the data anyway and rebuild those stages.")

    save_prepared(target, ds, sp, extra={"prepare_seconds": round(time.perf_counter() - t0, 3)},
                  before_commit=check_stale)
    if stale:
        log.warning("%s: now stale (rebuild them): %s", target.parent, "; ".join(stale))
    log.info("wrote %s", target)
    summary = {**dataset_summary(ds), "split": split_summary(sp), "name": ds.name,
               "fingerprint": read_json(target / MANIFEST)["fingerprint"], "stale": stale}
    return target, summary


def summarize(data_dir: str | Path) -> dict[str, Any]:
    """Stats of a prepared data folder (what `llmrec data stats` prints)."""
    prepared = load_prepared(data_dir_of(data_dir))
    out = dataset_summary(prepared.dataset)
    out["split"] = split_summary(prepared.split)
    out["fingerprint"] = prepared.fingerprint
    out["name"] = prepared.manifest.get("name")
    return out
