"""Items as sums of their Semantic ID code embeddings, and reading a run's SID map for the models.

An item with SID (c_1, ..., c_L) gets the vector E_1[c_1] + ... + E_L[c_L]: items that share a
prefix share those rows, which is how a rarely seen item borrows what its neighbours learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from llmrec.io import LlmrecError, sha256_json
from llmrec.sid.sidmap import SidMap


class SidEmbedding(nn.Module):
    """[..] 1-based item indices (0 = padding) -> [.., H] sums of the items' code embeddings.

    Codes of level l live at rows 1 + offset_l + code of one table (row 0 = "no code": items with a
    shorter SID and the padding item). The code table is rebuilt from `codes`, not saved.
    """

    def __init__(self, codes: Sequence[Sequence[int]], level_sizes: Sequence[int], hidden: int):
        super().__init__()
        depth = len(level_sizes)
        offsets = np.concatenate([[0], np.cumsum(level_sizes)[:-1]]).astype(np.int64)
        table = torch.zeros(len(codes) + 1, depth, dtype=torch.long)
        for i, c in enumerate(codes, start=1):
            if len(c) > depth or any(not 0 <= int(x) < level_sizes[lvl] for lvl, x in enumerate(c)):
                raise LlmrecError(f"SID codes {list(c)} of item {i - 1} do not fit levels {list(level_sizes)}")
            for lvl, x in enumerate(c):
                table[i, lvl] = 1 + offsets[lvl] + int(x)
        self.register_buffer("codes", table, persistent=False)
        self.emb = nn.Embedding(1 + int(sum(level_sizes)), hidden, padding_idx=0)
        nn.init.normal_(self.emb.weight, std=0.02)
        with torch.no_grad():
            self.emb.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.emb(self.codes[seq]).sum(-2)

    def all_items(self) -> torch.Tensor:
        """[n_items, H] vectors of items 1..n (the output matrix)."""
        return self.emb(self.codes[1:]).sum(-2)


def sid_codes(item_ids: Sequence[str], sid_map: SidMap, source: str | Path = "SID map") -> list[list[int]]:
    """Codes of every catalogue item, in `item_ids` order; every item must have a SID."""
    missing = [x for x in item_ids if x not in sid_map.codes]
    if missing:
        raise LlmrecError(f"{source}: {len(missing)} catalogue items have no SID (e.g. {missing[:3]}); "
                          "rebuild it from this run's data with `llmrec sid build --run RUN`.")
    return [list(sid_map.codes[x]) for x in item_ids]


def codes_fingerprint(codes: Sequence[Sequence[int]], level_sizes: Sequence[int]) -> str:
    """What a cached SID model depends on: the catalogue's codes (in catalogue order) and levels."""
    return sha256_json({"codes": [list(c) for c in codes], "levels": list(level_sizes)})[:16]


def load_run_sids(run: str | Path, item_ids: Sequence[str]) -> tuple[list[list[int]], list[int], SidMap]:
    """(codes in `item_ids` order, level sizes, the map) from RUN/sid/sid_map.json."""
    path = Path(run) / "sid" / "sid_map.json"
    if not path.exists():
        raise LlmrecError(f"{path} not found: the SID baselines need the run's Semantic IDs; "
                          "run `llmrec sid build --run RUN` first.")
    sid_map = SidMap.load(path)
    return sid_codes(item_ids, sid_map, path), list(sid_map.level_sizes), sid_map


def load_run_text_vectors(run: str | Path, item_ids: Sequence[str], sid_map: SidMap) -> np.ndarray | None:
    """RUN/sid/embeddings.npy rows in `item_ids` order (None when absent or not one row per item)."""
    path = Path(run) / "sid" / "embeddings.npy"
    if not path.exists():
        return None
    vecs = np.load(path)
    order = sid_map.meta.get("item_order") or list(sid_map.codes)
    if len(order) != len(vecs):
        return None
    row = {x: i for i, x in enumerate(order)}
    if any(x not in row for x in item_ids):
        return None
    return vecs[[row[x] for x in item_ids]].astype(np.float32)
