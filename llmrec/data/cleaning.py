"""Cleaning shared by every format: events on unknown items, consecutive repeats, k-core filters.
Everything left out is counted in the `dropped` dict."""

from __future__ import annotations

from collections import Counter, defaultdict

from llmrec.data.formats.base import Loaded
from llmrec.data.records import Interaction
from llmrec.io import LlmrecError

OPTIONS = {"min_user_interactions": 0, "min_item_interactions": 0, "dedupe_consecutive": False,
           "unknown_items": "error"}


def count(dropped: dict[str, int], key: str, n: int) -> None:
    if n:
        dropped[key] = dropped.get(key, 0) + n


def check_unknown_items(loaded: Loaded, mode: str, dropped: dict[str, int]) -> list[Interaction]:
    """Events whose item is not in the catalogue: an error (mode 'error') or dropped and counted."""
    if mode not in ("error", "drop"):
        raise LlmrecError(f"unknown_items={mode!r}: use 'error' or 'drop'.")
    if not loaded.checked_items:
        return loaded.interactions
    bad = [x for x in loaded.interactions if x.item not in loaded.items]
    if not bad:
        return loaded.interactions
    if mode == "error":
        x = bad[0]
        raise LlmrecError(f"{loaded.files[0]}: user {x.user!r} refers to item {x.item!r}, which is not in the "
                          f"catalogue ({len(bad)} such events); fix the data or load with "
                          "unknown_items='drop' (--unknown-items drop) to drop and count them.")
    count(dropped, "unknown_item_events", len(bad))
    keep = set(loaded.items)
    return [x for x in loaded.interactions if x.item in keep]


def dedupe_consecutive(inter: list[Interaction], dropped: dict[str, int]) -> list[Interaction]:
    """Drop an event repeating the user's previous (item, behavior)."""
    by_user: dict[str, list[Interaction]] = defaultdict(list)
    for x in inter:
        by_user[x.user].append(x)
    out, n = [], 0
    for seq in by_user.values():
        seq.sort(key=lambda x: (x.timestamp if x.timestamp is not None else 0.0, x.position))
        prev = None
        for x in seq:
            if prev is not None and (x.item, x.behavior) == (prev.item, prev.behavior):
                n += 1
                continue
            out.append(x)
            prev = x
    count(dropped, "consecutive_repeat_events", n)
    return out


def k_core(inter: list[Interaction], min_user: int, min_item: int, dropped: dict[str, int]) -> list[Interaction]:
    """Drop users (and items) below the minimum count, repeating until stable when both are set."""
    while True:
        changed = False
        for field, minimum in (("user", min_user), ("item", min_item)):
            if minimum <= 1:
                continue
            counts = Counter(getattr(x, field) for x in inter)
            low = {k for k, c in counts.items() if c < minimum}
            if low:
                count(dropped, f"{field}s_below_min_interactions", len(low))
                before = len(inter)
                inter = [x for x in inter if getattr(x, field) not in low]
                count(dropped, f"events_of_{field}s_below_min_interactions", before - len(inter))
                changed = True
        if not changed or min_item <= 1:
            return inter
