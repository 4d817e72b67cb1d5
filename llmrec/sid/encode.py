"""SIDs for items added after a build: the saved quantizer encodes them, existing SIDs never move.

    sm, report = encode_new_items("runs/x/sid", new_items)   # dict[str, Item] or RecDataset

A new item keeps its quantizer code when that SID is free (not taken, not a prefix of a taken SID
and no taken SID a prefix of it). Otherwise it moves to the nearest free last-level code under
the same prefix (cost from the quantizer when it has one), or appends the lowest free
disambiguation code; items no free code can hold are listed in the report, not guessed. Level
sizes never grow, so a model trained on the old map already has every token of the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.config import load_config
from llmrec.data.records import Item, RecDataset
from llmrec.io import LlmrecError
from llmrec.sid.config import SidConfig
from llmrec.sid.quantizers import load_quantizer
from llmrec.sid.sidmap import SidMap

ENCODABLE_SOURCES = ("text", "npy")  # sources whose vectors mean the same for a new item


def load_item_json(path: str | Path) -> dict[str, Item]:
    """Items of an LC-Rec style X.item.json ({item_id: {title, description, brand, categories}})."""
    from llmrec.data.formats.lcrec import _items_from_json

    return _items_from_json(Path(path))


def _free(code: tuple[int, ...], taken: set[tuple[int, ...]], prefixes: set[tuple[int, ...]]) -> bool:
    return code not in prefixes and not any(code[:k] in taken for k in range(1, len(code) + 1))


def _place(code: tuple[int, ...], sizes: list[int], taken: set, prefixes: set,
           costs: np.ndarray | None) -> tuple[int, ...] | None:
    if _free(code, taken, prefixes):
        return code
    if len(code) < len(sizes) and code in prefixes:  # taken SIDs go on from here: disambiguate
        for c in range(sizes[len(code)]):
            cand = code + (c,)
            if _free(cand, taken, prefixes):
                return cand
    last = len(code) - 1
    order = np.argsort(costs, kind="stable") if costs is not None else range(sizes[last])
    for c in order:  # another code at the same level, nearest first
        cand = code[:-1] + (int(c),)
        if _free(cand, taken, prefixes):
            return cand
    return None


def encode_new_items(sid_dir: str | Path, items: Mapping[str, Item] | RecDataset,
                     ) -> tuple[SidMap, dict[str, Any]]:
    """The map of `sid_dir` plus SIDs for the items of `items` it does not hold yet."""
    sid_dir = Path(sid_dir)
    sm = SidMap.load(sid_dir / "sid_map.json")
    cfg_path = sid_dir / "config.yaml"
    if not cfg_path.exists():
        raise LlmrecError(f"{sid_dir}: no config.yaml; rebuild the SIDs with this llmrec version")
    config = load_config(SidConfig, cfg_path)
    if config.identity == "unique":
        raise LlmrecError(f"{sid_dir}: built with identity: unique (one token per item); new items would need new "
                          "tokens. Rebuild, or use identity: buckets")
    q = load_quantizer(sid_dir / "quantizer")
    item_map = dict(items.items) if isinstance(items, RecDataset) else dict(items)
    new = {k: v for k, v in item_map.items() if str(k) not in sm}
    report: dict[str, Any] = {"items_new": len(new), "kept": 0, "moved": 0, "unplaced": []}
    if not new:
        return sm, report
    if q.needs_text:
        from llmrec.sid.build import plain_texts

        codes = q.encode(plain_texts(new, config.common_category_share))
        X = None
    else:
        if config.source not in ENCODABLE_SOURCES:
            raise LlmrecError(f"{sid_dir}: built from source {config.source!r}, whose vectors are fitted to the old "
                              f"catalogue; new items can be encoded from {', '.join(ENCODABLE_SOURCES)} only")
        from llmrec.sid.build import item_vectors

        X = item_vectors(config, new, None)
        codes = q.encode(X)
    if config.identity == "buckets":
        from llmrec.sid.build import add_identity

        codes, _ = add_identity(codes, list(new), "buckets", config.identity_buckets, config.seed)
    taken = set(sm.codes.values())
    prefixes = {c[:k] for c in taken for k in range(1, len(c))}
    cost_all = None
    if X is not None and hasattr(q, "last_level_costs") and not q.variable_length and config.identity == "none":
        cost_all = q.last_level_costs(X, np.arange(len(X)), codes)
    out = dict(sm.codes)
    for r, item in enumerate(new):
        code = tuple(int(c) for c in codes[r] if c >= 0)
        if any(c >= sm.level_sizes[lvl] for lvl, c in enumerate(code)) or len(code) > len(sm.level_sizes):
            report["unplaced"].append(item)
            continue
        costs = cost_all[r] if cost_all is not None and len(cost_all[r]) == sm.level_sizes[len(code) - 1] else None
        placed = _place(code, sm.level_sizes, taken, prefixes, costs)
        if placed is None:
            report["unplaced"].append(item)
            continue
        report["kept" if placed == code else "moved"] += 1
        out[str(item)] = placed
        taken.add(placed)
        prefixes.update(placed[:k] for k in range(1, len(placed)))
    new_map = SidMap(out, level_sizes=sm.level_sizes, names=sm.names,
                     meta={**sm.meta, "encoded_after_build": report["kept"] + report["moved"]})
    new_map.validate()
    return new_map, report
