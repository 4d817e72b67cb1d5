"""MiniOneRec: train/ valid/ test/ csv files (user_id, history_item_id, item_id, ...), a catalogue
in index/*.item.json and/or info/*.txt (sid<TAB>title<TAB>item_id). Ships its own split."""

from __future__ import annotations

from pathlib import Path

from llmrec.data.formats.base import DataFormat, Loaded, register_format
from llmrec.data.formats.common import (
    csv_rows,
    expect_dict,
    first_line,
    literal,
    literal_list,
    read_json,
    read_text,
    split_categories,
)
from llmrec.data.records import Example, Interaction, Item
from llmrec.io import LlmrecError

COLUMNS = ["user_id", "history_item_title", "item_title", "history_item_id", "item_id", "history_item_sid",
           "item_sid"]
NEEDED = ("user_id", "history_item_id", "item_id")


def read_csv(path: Path) -> list[Example]:
    names, rows = csv_rows(path, header=True)
    missing = [c for c in NEEDED if c not in names]
    if missing:
        raise LlmrecError(f"{path}: missing column(s) {', '.join(missing)}; a MiniOneRec csv has the header "
                          f"{','.join(COLUMNS)}.")
    col = {c: names.index(c) for c in NEEDED}
    out = []
    for lineno, row in rows:
        if len(row) != len(names):
            raise LlmrecError(f"{path}:{lineno}: wrong number of fields ({len(row)}, header has {len(names)}); "
                              "fix the record.")
        hist = [str(int(x)) if isinstance(x, (int, float)) else str(x)
                for x in literal_list(row[col["history_item_id"]], f"{path}:{lineno} history_item_id")]
        out.append(Example(user=row[col["user_id"]].strip(), history=hist, target=row[col["item_id"]].strip()))
    return out


def files_of(path: Path) -> tuple[Path, dict[str, Path]]:
    """(root folder, {split: csv}) for a MiniOneRec folder or one of its csv files."""
    if path.is_file():
        root = path.parent.parent if path.parent.name in ("train", "valid", "test") else path.parent
    else:
        root = path
    csvs = {s: sorted((root / s).glob("*.csv")) for s in ("train", "valid", "test") if (root / s).is_dir()}
    if path.is_file() and not csvs:
        csvs = {"test": [path]}
    out = {}
    for s, found in csvs.items():
        if len(found) > 1:
            raise LlmrecError(f"{root / s}: several csv files ({', '.join(p.name for p in found)}); keep one.")
        if found:
            out[s] = found[0]
    if not out:
        raise LlmrecError(f"{root}: no MiniOneRec csv under train/ valid/ test/; check the path.")
    return root, out


def _catalogue(root: Path, files: list[Path]) -> dict[str, Item]:
    items: dict[str, Item] = {}
    item_json = sorted((root / "index").glob("*.item.json")) if (root / "index").is_dir() else []
    if item_json:
        files.append(item_json[0])
        meta = expect_dict(read_json(item_json[0], "MiniOneRec item file"), item_json[0], "{item_id: {...}}")
        for iid, d in meta.items():
            desc = d.get("description") or ""
            if isinstance(desc, str) and desc.startswith("["):
                try:
                    desc = " ".join(str(x) for x in literal(desc, f"{item_json[0]}: item {iid} description"))
                except LlmrecError:
                    pass  # a description that merely starts with '[' stays as written
            items[str(iid)] = Item(id=str(iid), title=str(d.get("title") or "").strip(),
                                   description=str(desc).strip(), brand=str(d.get("brand") or "").strip(),
                                   categories=split_categories(d.get("categories")))
    info = sorted((root / "info").glob("*.txt")) if (root / "info").is_dir() else []
    if info:
        files.append(info[0])
        seen: set[str] = set()
        for lineno, line in enumerate(read_text(info[0]).splitlines(), 1):
            if not line.strip():
                continue
            f = line.split("\t")
            if len(f) != 3:
                raise LlmrecError(f"{info[0]}:{lineno}: expected 'sid<TAB>title<TAB>item_id', got "
                                  f"{line[:80]!r}; fix the line.")
            sid, title, iid = f[0].strip(), f[1].strip(), f[2].strip()
            if iid in seen:
                raise LlmrecError(f"{info[0]}:{lineno}: duplicate item id {iid!r}; each id must appear once.")
            seen.add(iid)
            it = items.setdefault(iid, Item(id=iid, title=title))
            it.title = it.title or title
            it.features["minionerec_sid"] = sid
    if not items:
        raise LlmrecError(f"{root}: no catalogue found (index/*.item.json or info/*.txt); MiniOneRec data "
                          "needs one of them.")
    return items


def load(path: Path) -> Loaded:
    root, csvs = files_of(path)
    files = list(csvs.values())
    items = _catalogue(root, files)
    presplit = {s: read_csv(p) for s, p in csvs.items()}
    # Reconstruct each user's known sequence: histories overlap, so merge them in row order.
    seqs: dict[str, list[str]] = {}
    for s in ("train", "valid", "test"):
        for ex in presplit.get(s, []):
            seq = seqs.setdefault(ex.user, [])
            h = ex.history
            overlap = next((o for o in range(min(len(seq), len(h)), 0, -1) if seq[-o:] == h[:o]), 0)
            seq.extend(h[overlap:])
            seq.append(ex.target)
    interactions = [Interaction(user=u, item=i, position=p) for u, seq in seqs.items() for p, i in enumerate(seq)]
    return Loaded(items, interactions, files, "minionerec", presplit=presplit)


def detect(path: Path) -> bool:
    """A folder with valid/ test/ or info/, or a csv whose header has user_id and history_item_id."""
    if path.is_dir():
        return any((path / s).is_dir() for s in ("valid", "test")) or (path / "info").is_dir()
    if not path.name.endswith(".csv"):
        return False
    header = [c.strip() for c in first_line(path).strip().split(",")]
    return all(c in header for c in NEEDED)


FORMAT = register_format(DataFormat("minionerec", detect, load, priority=30,
                                    description="MiniOneRec train/valid/test csv + index/info catalogue"))
