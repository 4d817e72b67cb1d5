"""Hierarchical clustering: recursive k-means until a cluster holds at most `leaf_size` items.

An item's code is the path of cluster indices from the root to its leaf, so SIDs are ordered
(each level refines the one before) and of variable length: dense regions of the catalogue get
deeper paths. Items that share a leaf are told apart by collision handling, which appends their
position in the leaf (0, 1, ...; at most `leaf_size` values). No leaf path is a prefix of another,
so the SIDs stay prefix-free. `levels` caps the depth; `codebook_size` is the branching factor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from llmrec.config import option
from llmrec.io import LlmrecError
from llmrec.sid.quantizers.base import QUANTIZERS, BaseQuantizer, as_f32
from llmrec.sid.rkmeans import nearest


@dataclass
class HierarchicalSettings:
    leaf_size: int = option(16, help="split a cluster while it holds more items than this")
    niter: int = option(20, help="k-means iterations per split")


@QUANTIZERS.register("hierarchical")
class Hierarchical(BaseQuantizer):
    name = "hierarchical"
    Settings = HierarchicalSettings
    variable_length = True
    default_levels = 8  # maximum depth
    default_codebook = 16  # branching factor
    supports_reassign = False

    def __init__(self, levels: int = 8, codebook_size: int | list[int] = 16, seed: int = 42, **kw: Any):
        super().__init__(levels, codebook_size, seed)
        if len(set(self.level_sizes)) != 1 or self.level_sizes[0] < 2:
            raise LlmrecError(f"hierarchical: codebook_size is the branching factor, one int >= 2; got {self.level_sizes}")
        self.s = HierarchicalSettings(**kw)
        if self.s.leaf_size < 1:
            raise LlmrecError("hierarchical.leaf_size must be >= 1")
        self.max_depth = len(self.level_sizes)
        self.branching = self.level_sizes[0]
        # tree: children of node i are rows offset[i]:offset[i+1] of `centroids` / `child`
        self.offset = np.zeros(1, dtype=np.int64)
        self.child = np.zeros(0, dtype=np.int64)
        self.centroids = np.zeros((0, 0), dtype=np.float32)

    def settings(self) -> dict[str, Any]:
        return asdict(self.s)

    def _fit(self, X: np.ndarray, collab: np.ndarray | None) -> np.ndarray:
        import faiss

        X = as_f32(X)
        kids: dict[int, tuple[np.ndarray, list[int]]] = {}
        stack = [(0, np.arange(len(X)), 0)]  # (node, rows, depth)
        n_nodes = 1
        while stack:
            node, rows, depth = stack.pop()
            if len(rows) <= self.s.leaf_size or depth >= self.max_depth:
                continue
            k = min(self.branching, len(rows))
            km = faiss.Kmeans(X.shape[1], k, niter=self.s.niter, seed=self.seed + node, min_points_per_centroid=1,
                              max_points_per_centroid=max(256, len(rows)))
            km.train(X[rows])
            C = km.centroids.astype(np.float32)
            a = nearest(X[rows], C)[1][:, 0]
            used = np.unique(a)
            if len(used) < 2:  # identical vectors: nothing to split, leave it to collision handling
                continue
            C = C[used]  # drop empty clusters so every code leads somewhere
            a = np.searchsorted(used, a)
            ids = list(range(n_nodes, n_nodes + len(used)))
            n_nodes += len(used)
            kids[node] = (C, ids)
            for j, child in enumerate(ids):
                stack.append((child, rows[a == j], depth + 1))
        offset = np.zeros(n_nodes + 1, dtype=np.int64)
        for node, (C, _) in kids.items():
            offset[node + 1] = len(C)
        self.offset = np.cumsum(offset)
        self.child = np.full(self.offset[-1], -1, dtype=np.int64)
        self.centroids = np.zeros((self.offset[-1], X.shape[1]), dtype=np.float32)
        for node, (C, ids) in kids.items():
            self.centroids[self.offset[node]:self.offset[node + 1]] = C
            self.child[self.offset[node]:self.offset[node + 1]] = ids
        self.fitted = True
        codes = self.encode(X)
        depth = int((codes >= 0).sum(1).max())
        self.level_sizes = self.level_sizes[:max(depth, 1)]
        return codes

    def encode(self, X: np.ndarray) -> np.ndarray:
        """Leaf paths, -1 padded to the tree's depth."""
        self._check_fitted()
        X = as_f32(X)
        codes = np.full((len(X), self.max_depth), -1, dtype=np.int64)
        node = np.zeros(len(X), dtype=np.int64)
        for depth in range(self.max_depth):
            inner = np.flatnonzero(self.offset[node + 1] > self.offset[node])
            if not inner.size:
                break
            for nd in np.unique(node[inner]):
                rows = inner[node[inner] == nd]
                lo, hi = self.offset[nd], self.offset[nd + 1]
                j = nearest(X[rows], self.centroids[lo:hi])[1][:, 0]
                codes[rows, depth] = j
                node[rows] = self.child[lo + j]
        depth = int((codes >= 0).sum(1).max()) if len(codes) else 0
        return codes[:, :max(depth, 1)] if (codes[:, 0] >= 0).any() else np.zeros((len(X), 1), dtype=np.int64)

    def state(self) -> dict[str, np.ndarray]:
        return {"offset": self.offset, "child": self.child, "centroids": self.centroids}

    def set_state(self, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.offset = np.asarray(tensors["offset"], dtype=np.int64)
        self.child = np.asarray(tensors["child"], dtype=np.int64)
        self.centroids = np.asarray(tensors["centroids"], dtype=np.float32)
