"""`load_dataset`: a known short name or a path -> one canonical RecDataset.

The formats live in `llmrec.data.formats` (one module each, detect + load, behind DATA_FORMATS);
the cleaning shared by all of them in `llmrec.data.cleaning`. Every problem with the input is an
LlmrecError naming the file, the record and the fix; every record left out is counted in
`RecDataset.dropped`.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from llmrec.data import cleaning
from llmrec.data.formats import DATA_FORMATS, DataFormat
from llmrec.data.formats.common import file_record
from llmrec.data.records import RecDataset
from llmrec.io import LlmrecError, data_dir

log = logging.getLogger(__name__)

# short name -> (format, path relative to data_dir())
KNOWN_DATASETS: dict[str, tuple[str, str]] = {
    "amazon18_scientific": ("lcrec", "amazon18_scientific"),
    "movielens_100k": ("movielens", "movielens_100k"),
    "amazon18_instruments_notext": ("lcrec", "amazon18_instruments_notext"),
    "amazon18_games_notext": ("lcrec", "amazon18_games_notext"),
    "taobao_tail_10k": ("taobao", "taobao_userbehavior/tail_10k/UserBehavior.csv"),
    "taobao_timeslice_72k": ("taobao", "taobao_userbehavior/timeslice_72k/UserBehavior.csv"),
    "minionerec_industrial": ("minionerec", "minionerec_industrial"),
}
FORMATS = tuple(DATA_FORMATS.names())
COMMON_OPTIONS = cleaning.OPTIONS


def _formats_by_priority() -> list[DataFormat]:
    return sorted((DATA_FORMATS.get(n) for n in DATA_FORMATS.names()), key=lambda f: (f.priority, f.name))


def detect_format(path: Path) -> str:
    """Guess the format of a file or folder from its names and first line."""
    path = Path(path)
    for fmt in _formats_by_priority():
        if fmt.detect(path):
            return fmt.name
    what = "folder contents" if path.is_dir() else "file name and first line"
    raise LlmrecError(f"{path}: cannot tell the dataset format from the {what}; pass format= (--format) "
                      f"one of {', '.join(DATA_FORMATS.names())}.")


def resolve_dataset(name_or_path: str, format: str | None = None) -> tuple[str, Path, str]:
    """(dataset name, path, format) for a known short name or a path."""
    if name_or_path in KNOWN_DATASETS:
        fmt, rel = KNOWN_DATASETS[name_or_path]
        path = data_dir() / rel
        if not path.exists():
            raise LlmrecError(f"dataset {name_or_path!r} expected at {path}, which does not exist; set "
                              "LLMREC_DATA_DIR to the folder holding the datasets (or pass a path).")
        return name_or_path, path, format or fmt
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise LlmrecError(f"{name_or_path!r} is neither a known dataset ({', '.join(KNOWN_DATASETS)}) nor an "
                          "existing file or folder; check the spelling or the path.")
    fmt = format or detect_format(path)
    DATA_FORMATS.check(fmt)
    name = (path.parent.name if path.is_file() else path.name) or "dataset"
    return name, path, fmt


def _format(name: str) -> DataFormat:
    fmt = DATA_FORMATS.get(name)
    if not isinstance(fmt, DataFormat):
        raise LlmrecError(f"format {name!r} is a {type(fmt).__name__}, not a llmrec.data.formats.DataFormat.")
    return fmt


def load_dataset(name_or_path: str | Path, format: str | None = None, **options: Any) -> RecDataset:
    """Load a known dataset name or a path into a RecDataset.

    Options (all formats): min_user_interactions (0), min_item_interactions (0, iterated k-core with
    the user minimum), dedupe_consecutive (False), unknown_items ('error' | 'drop').
    MovieLens: rating_behavior (None | 'levels' -> rating_1..rating_5 | 'binary' -> liked/disliked),
    like_threshold (4.0).
    """
    name, path, fmt_name = resolve_dataset(str(name_or_path), format)
    fmt = _format(fmt_name)
    allowed = {**cleaning.OPTIONS, **fmt.options}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LlmrecError(f"unknown loader option(s) {', '.join(unknown)} for format {fmt_name!r}; valid options: "
                          f"{', '.join(sorted(allowed))}.")
    opts = {**allowed, **options}
    loaded = fmt.load(path, **{k: opts[k] for k in fmt.options})
    dropped: dict[str, int] = dict(loaded.dropped)
    inter = cleaning.check_unknown_items(loaded, opts["unknown_items"], dropped)
    if opts["dedupe_consecutive"]:
        inter = cleaning.dedupe_consecutive(inter, dropped)
    inter = cleaning.k_core(inter, int(opts["min_user_interactions"]), int(opts["min_item_interactions"]), dropped)
    items = loaded.items
    if int(opts["min_item_interactions"]) > 1:
        used = {x.item for x in inter}
        items = {k: v for k, v in items.items() if k in used}
    if not inter:
        raise LlmrecError(f"{path}: no interactions left after loading and filtering (dropped: {dropped}); "
                          "lower min_user_interactions / min_item_interactions.")
    if any(it.title for it in items.values()):
        cleaning.count(dropped, "items_with_empty_title_kept_id_as_name",
                       sum(1 for it in items.values() if not it.title))
    users = loaded.users
    if users:
        active = {x.user for x in inter}
        users = {u: a for u, a in users.items() if u in active}
    presplit = loaded.presplit
    if presplit and (dropped.get("users_below_min_interactions") or dropped.get("unknown_item_events")):
        keep_u, keep_i = {x.user for x in inter}, set(items)
        new = {}
        for s, exs in presplit.items():
            ok = [e for e in exs if e.user in keep_u and e.target in keep_i and all(h in keep_i for h in e.history)]
            cleaning.count(dropped, f"{s}_rows_filtered", len(exs) - len(ok))
            new[s] = ok
        presplit = new
    source = {"format": fmt_name, "name": name, "path": str(path.resolve()),
              "files": [file_record(p) for p in loaded.files], "options": opts}
    ds = RecDataset(name=name, items=items, interactions=inter, source=source, dropped=dropped,
                    users=users, presplit=presplit)
    if dropped:
        log.info("%s: dropped/reported %s", name, dropped)
    return ds


def dataset_summary(ds: RecDataset) -> dict[str, Any]:
    """Counts, sequence-length stats, behaviours and drops, for printing."""
    seqs = Counter(x.user for x in ds.interactions)
    lens = sorted(seqs.values())
    n = len(lens)
    return {**ds.counts(), "behaviors": dict(Counter(x.behavior for x in ds.interactions)),
            "seq_len": {"min": lens[0], "median": lens[n // 2], "mean": round(sum(lens) / n, 2), "max": lens[-1]}
            if n else {}, "dropped": ds.dropped}
