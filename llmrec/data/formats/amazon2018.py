"""Raw Amazon Reviews 2018: a folder with `<Cat>_5.json.gz` (5-core reviews) and `meta_<Cat>.json.gz`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from llmrec.data.formats.base import DataFormat, Loaded, register_format
from llmrec.data.formats.common import literal, need, read_text
from llmrec.data.records import Interaction, Item
from llmrec.io import LlmrecError


def json_lines(path: Path) -> Iterable[tuple[int, dict]]:
    """One JSON object per line (older dumps: python dict literals)."""
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except RecursionError:
            raise LlmrecError(f"{where}: record nested too deeply to read; download the file again.") from None
        except json.JSONDecodeError:
            try:
                obj = literal(line, where)
            except LlmrecError as e:
                raise LlmrecError(f"{where}: malformed JSON line ({e}); download the file again.") from None
        if not isinstance(obj, dict):
            raise LlmrecError(f"{where}: expected an object per line; download the file again.")
        yield lineno, obj


def _catalogue(meta_p: Path) -> tuple[dict[str, Item], int]:
    items: dict[str, Item] = {}
    dup_meta = 0
    for lineno, d in json_lines(meta_p):
        asin = str(d.get("asin") or "").strip()
        if not asin:
            raise LlmrecError(f"{meta_p}:{lineno}: record has no 'asin'; download the file again.")
        if asin in items:
            dup_meta += 1  # the public meta dumps repeat some products; keep the first record
            continue
        desc = d.get("description") or ""
        if isinstance(desc, list):
            desc = " ".join(str(x) for x in desc)
        cats = d.get("category") or d.get("categories") or []
        if cats and isinstance(cats[0], list):
            cats = cats[0]
        items[asin] = Item(id=asin, title=str(d.get("title") or "").strip(), description=str(desc).strip(),
                           brand=str(d.get("brand") or "").strip(), categories=[str(c) for c in cats],
                           features={"asin": asin})
    return items, dup_meta


def load(path: Path) -> Loaded:
    reviews = sorted(p for p in path.glob("*_5.json*")) if path.is_dir() else [path]
    if len(reviews) != 1:
        raise LlmrecError(f"{path}: expected one '<Category>_5.json.gz' reviews file, found {len(reviews)}.")
    rev = reviews[0]
    cat = rev.name.split("_5.json")[0]
    meta_p = rev.parent / rev.name.replace(f"{cat}_5.json", f"meta_{cat}.json")
    need(meta_p, "Amazon 2018 meta file", f"download it with llmrec.data.download.download_amazon2018('{cat}')")
    items, dup_meta = _catalogue(meta_p)
    interactions = []
    for lineno, d in json_lines(rev):
        try:
            user, asin, ts = str(d["reviewerID"]), str(d["asin"]), float(d["unixReviewTime"])
        except (KeyError, TypeError, ValueError) as e:
            raise LlmrecError(f"{rev}:{lineno}: review lacks a valid {e}; download the file again.") from None
        rating = d.get("overall")
        interactions.append(Interaction(user=user, item=asin, timestamp=ts, position=lineno,
                                        rating=float(rating) if rating is not None else None))
    dropped = {"duplicate_meta_records": dup_meta} if dup_meta else {}
    return Loaded(items, interactions, [rev, meta_p], "amazon2018", dropped=dropped)


def detect(path: Path) -> bool:
    return any(path.glob("*_5.json*")) if path.is_dir() else "_5.json" in path.name


FORMAT = register_format(DataFormat("amazon2018", detect, load, priority=50,
                                    description="Amazon Reviews 2018 <Cat>_5.json.gz + meta_<Cat>.json.gz"))
