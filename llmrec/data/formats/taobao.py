"""Taobao UserBehavior csv: user_id,item_id,category_id,behavior,timestamp (no header, or a header
line starting with user_id / user). The catalogue is derived from the events (no text)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from llmrec.data.formats.base import DataFormat, Loaded, register_format
from llmrec.data.formats.common import csv_rows, need
from llmrec.data.records import Interaction, Item
from llmrec.io import LlmrecError

BEHAVIORS = ("pv", "cart", "fav", "buy")
HEADER_FIRST = ("user_id", "user", "userid")


def load(path: Path) -> Loaded:
    if path.is_dir():
        path = path / "UserBehavior.csv"
    need(path, "Taobao UserBehavior csv")
    interactions = []
    item_cats: dict[str, set[str]] = defaultdict(set)
    _, rows = csv_rows(path)
    for k, (lineno, row) in enumerate(rows):
        if k == 0 and row[0].strip().lower() in HEADER_FIRST:
            continue  # tolerate a header line
        if len(row) != 5:
            raise LlmrecError(f"{path}:{lineno}: expected 5 fields user_id,item_id,category_id,behavior,"
                              f"timestamp, got {len(row)}; fix the record {','.join(row)[:80]!r}.")
        user, item, cat, beh, ts = (x.strip() for x in row)
        if beh not in BEHAVIORS:
            raise LlmrecError(f"{path}:{lineno}: behavior {beh!r} is not one of {', '.join(BEHAVIORS)}; "
                              "fix the record.")
        try:
            t = float(ts)
        except ValueError:
            raise LlmrecError(f"{path}:{lineno}: timestamp {ts!r} is not a unix time; fix the record.") from None
        item_cats[item].add(cat)
        interactions.append(Interaction(user=user, item=item, timestamp=t, position=lineno, behavior=beh))
    items = {iid: Item(id=iid, categories=sorted(cats),
                       features={"category_id": min(cats) if len(cats) == 1 else sorted(cats)})
             for iid, cats in item_cats.items()}
    return Loaded(items, interactions, [path], "taobao", checked_items=False)


def detect(path: Path) -> bool:
    """A folder with UserBehavior.csv, or any csv file (MiniOneRec's csv is detected first)."""
    if path.is_dir():
        return (path / "UserBehavior.csv").exists()
    return path.name.endswith(".csv")


FORMAT = register_format(DataFormat("taobao", detect, load, priority=40,
                                    description="Taobao UserBehavior.csv (user,item,category,behavior,time)"))
