"""LC-Rec json: `X.inter.json` ({user: [item, ...]}) plus `X.item.json` ({item: {title, ...}}), or
`X.item2id` (ASIN<TAB>id lines) for sequence-only data."""

from __future__ import annotations

from pathlib import Path

from llmrec.data.formats.base import DataFormat, Loaded, register_format
from llmrec.data.formats.common import expect_dict, need, read_json, read_text, split_categories
from llmrec.data.records import Interaction, Item
from llmrec.io import LlmrecError


def _stem(folder: Path) -> str:
    stems = sorted(p.name[: -len(".inter.json")] for p in folder.glob("*.inter.json"))
    if not stems:
        raise LlmrecError(f"{folder}: no *.inter.json file; an LC-Rec folder holds X.inter.json plus "
                          "X.item.json (or X.item2id for sequence-only data).")
    if len(stems) > 1:
        raise LlmrecError(f"{folder}: several *.inter.json files ({', '.join(stems)}); pass the file path.")
    return stems[0]


def _items_from_json(item_path: Path) -> dict[str, Item]:
    items = {}
    meta = expect_dict(read_json(item_path, "LC-Rec item file"), item_path, "{item_id: {title, ...}}")
    for iid, d in meta.items():
        if not isinstance(d, dict):
            raise LlmrecError(f"{item_path}: item {iid!r} is {type(d).__name__}, expected an object "
                              "with title/description/brand/categories.")
        extra = {k: v for k, v in d.items() if k not in ("title", "description", "brand", "categories")}
        items[str(iid)] = Item(id=str(iid), title=str(d.get("title") or "").strip(),
                               description=str(d.get("description") or "").strip(),
                               brand=str(d.get("brand") or "").strip(),
                               categories=split_categories(d.get("categories")), features=extra)
    return items


def _items_from_map(map_path: Path) -> dict[str, Item]:
    items: dict[str, Item] = {}
    seen_asin: dict[str, str] = {}
    for lineno, line in enumerate(read_text(map_path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1].strip():
            raise LlmrecError(f"{map_path}:{lineno}: expected 'ASIN<TAB>item_id', got {line[:80]!r}; fix the line.")
        asin, iid = parts[0].strip(), parts[1].strip()
        if iid in items:
            raise LlmrecError(f"{map_path}:{lineno}: duplicate item id {iid!r}; each id must appear once.")
        if asin in seen_asin:
            raise LlmrecError(f"{map_path}:{lineno}: duplicate ASIN {asin!r} (ids {seen_asin[asin]} and "
                              f"{iid}); each ASIN must map to one id.")
        seen_asin[asin] = iid
        items[iid] = Item(id=iid, features={"asin": asin})
    return items


def load(path: Path) -> Loaded:
    folder, stem = (path.parent, path.name.split(".")[0]) if path.is_file() else (path, _stem(path))
    inter_path = need(folder / f"{stem}.inter.json", "LC-Rec interactions file")
    item_path, map_path = folder / f"{stem}.item.json", folder / f"{stem}.item2id"
    if item_path.exists():
        items, files = _items_from_json(item_path), [inter_path, item_path]
    elif map_path.exists():
        items, files = _items_from_map(map_path), [inter_path, map_path]
    else:
        raise LlmrecError(f"{folder}: neither {item_path.name} nor {map_path.name} exists; LC-Rec data needs "
                          "one of them to define the catalogue.")
    seqs = expect_dict(read_json(inter_path, "LC-Rec interactions file"), inter_path, "{user_id: [item_id, ...]}")
    interactions = []
    for user, seq in seqs.items():
        if not isinstance(seq, list):
            raise LlmrecError(f"{inter_path}: user {user!r}: expected a list of item ids, got "
                              f"{type(seq).__name__}; fix the record.")
        interactions.extend(Interaction(user=str(user), item=str(iid), position=pos) for pos, iid in enumerate(seq))
    return Loaded(items, interactions, files, "lcrec")


def detect(path: Path) -> bool:
    if path.is_dir():
        return any(path.glob("*.inter.json"))
    return path.name.endswith((".inter.json", ".item.json"))


FORMAT = register_format(DataFormat("lcrec", detect, load, priority=20,
                                    description="LC-Rec X.inter.json + X.item.json (or X.item2id)"))
