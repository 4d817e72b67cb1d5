"""Shared builder for the serve / hub tests (no tests here): a tiny real Qwen2 model + BPE tokenizer
with SID tokens (llmrec.llm.load_base('tiny')) over 80 real Amazon Scientific items, as a Recommender."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

N_ITEMS = 80


def scientific_items(data_root: Path, n: int = N_ITEMS) -> dict:
    """The first `n` items (by numeric id) of amazon18_scientific with title, description, brand."""
    from llmrec.data.records import Item

    raw = json.loads((data_root / "amazon18_scientific" / "Scientific.item.json").read_text(encoding="utf-8"))
    ids = sorted(raw, key=int)[:n]
    return {i: Item.from_dict({"id": i, "title": raw[i].get("title"), "description": raw[i].get("description"),
                               "brand": raw[i].get("brand")}) for i in ids}


def build_recommender(data_root: Path, n: int = N_ITEMS):
    """An untrained tiny model paired with a deterministic 3-level SidMap, wrapped as a Recommender."""
    from llmrec.llm import load_base
    from llmrec.serve import Recommender
    from llmrec.sid.sidmap import SidMap

    items = scientific_items(data_root, n)
    sid_map = SidMap({i: (j // 16, (j // 4) % 4, j % 4) for j, i in enumerate(items)})
    model, tokenizer = load_base("tiny", sid_map=sid_map, items=items, init="semantic")
    return Recommender(model, tokenizer, sid_map, items, config={"generation": {"num_beams": 10}})
