"""Residual k-means (faiss) and the array/faiss helpers the other methods share (level_sizes,
as_f32, nearest, sq_distances, capacity_assign).

The registry of every SID method (rkmeans, random, rvq, rqvae, pq, ...) is llmrec.sid.quantizers;
its `rkmeans` wraps ResidualKMeans below:

    q = ResidualKMeans(levels=3, codebook_size=256, balanced=True, seed=42)
    codes = q.fit(X).encode(X)          # int64 [N, L]
    q.config                            # JSON-able dict describing it
    q.level_sizes                       # codes per level
    q.last_level_costs(X, rows, codes)  # [len(rows), K_last] costs for collision reassignment
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmrec.io import LlmrecError
from llmrec.sid.sidmap import MAX_LEVELS

log = logging.getLogger(__name__)

CHUNK = 65536  # rows per distance block: 65536 x 256 float32 = 64 MiB


def level_sizes(levels: int, codebook_size: int | Sequence[int], max_levels: int = MAX_LEVELS - 1) -> list[int]:
    """One codebook size per level from an int or a list (which must list `levels` sizes)."""
    if isinstance(codebook_size, (int, np.integer)):
        sizes = [int(codebook_size)] * int(levels)
    else:
        sizes = [int(k) for k in codebook_size]
        if levels and len(sizes) != levels:
            raise LlmrecError(f"codebook sizes {sizes} list {len(sizes)} levels but levels={levels}; "
                              "give one size per level or a single int.")
    if not sizes or any(k < 1 for k in sizes):
        raise LlmrecError(f"codebook sizes must be >= 1 per level, got {sizes}")
    if len(sizes) > max_levels:
        raise LlmrecError(f"at most {max_levels} levels are supported (one kept for disambiguation), "
                          f"got {len(sizes)}")
    return sizes


def as_f32(X: np.ndarray, allow_empty: bool = False) -> np.ndarray:
    """A C-contiguous float32 [items, dim] view or copy, with a clear error for anything else."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise LlmrecError(f"vectors must be a 2-D array [items, dim], got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise LlmrecError(f"vectors must be floating point, got dtype {X.dtype}")
    if len(X) == 0 and not allow_empty:
        raise LlmrecError("no vectors to quantize")
    return np.ascontiguousarray(X, dtype=np.float32)


def sq_distances(X: np.ndarray, C: np.ndarray, c_norms: np.ndarray | None = None) -> np.ndarray:
    """Squared L2 distances [len(X), len(C)] in float32 (no float64 temporaries)."""
    if c_norms is None:
        c_norms = np.einsum("ij,ij->i", C, C)
    d = X @ C.T
    d *= -2.0
    d += np.einsum("ij,ij->i", X, X)[:, None]
    d += c_norms[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def nearest(X: np.ndarray, C: np.ndarray, k: int = 1, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Top-k nearest centroids per row via faiss (distances float32, ids int32), chunked."""
    import faiss

    index = faiss.IndexFlatL2(C.shape[1])
    index.add(np.ascontiguousarray(C, dtype=np.float32))
    k = min(k, C.shape[0])
    D = np.empty((len(X), k), dtype=np.float32)
    idx = np.empty((len(X), k), dtype=np.int32)
    for s in range(0, len(X), chunk):
        d, i = index.search(np.ascontiguousarray(X[s:s + chunk]), k)
        D[s:s + chunk], idx[s:s + chunk] = d, i
    return D, idx


def capacity_assign(X: np.ndarray, C: np.ndarray, cap: int | None = None, topk: int = 16,
                    chunk: int = CHUNK) -> np.ndarray:
    """Assign rows of X to centroids with at most `cap` rows each (default ceil(N/K)).

    Rounds of proposals: every unassigned row proposes to its nearest centroid that still has
    room; each centroid keeps the closest proposers up to its remaining capacity, the rest try
    again. Candidates come from one faiss top-k search; rows that exhaust their k candidates
    fall back to exact distances against all centroids that still have room. Memory stays
    O(N * topk) plus one chunk of distances.
    """
    N, K = len(X), len(C)
    if cap is None:
        cap = math.ceil(N / K)
    if cap * K < N:
        raise ValueError(f"capacity {cap} x {K} centroids < {N} rows")
    D, I = nearest(X, C, k=topk, chunk=chunk)
    topk = I.shape[1]
    remaining = np.full(K, cap, dtype=np.int64)
    assign = np.full(N, -1, dtype=np.int64)
    ptr = np.zeros(N, dtype=np.int64)
    pending = np.arange(N)
    c_norms = np.einsum("ij,ij->i", C, C)
    while pending.size:
        full = remaining == 0
        # advance each pending row past candidates that are already full
        p = pending
        while True:
            ok = ptr[p] < topk
            q = p[ok]
            bad = q[full[I[q, ptr[q]]]]
            if not bad.size:
                break
            ptr[bad] += 1
            p = bad
        has = ptr[pending] < topk
        prop = np.empty(pending.size, dtype=np.int64)
        dist = np.empty(pending.size, dtype=np.float32)
        hp = pending[has]
        prop[has] = I[hp, ptr[hp]]
        dist[has] = D[hp, ptr[hp]]
        ex = np.flatnonzero(~has)
        for s in range(0, ex.size, chunk):  # candidates exhausted: exact search over open centroids
            sel = ex[s:s + chunk]
            d = sq_distances(X[pending[sel]], C, c_norms)
            d[:, full] = np.inf
            j = d.argmin(axis=1)
            prop[sel] = j
            dist[sel] = d[np.arange(len(sel)), j]
        order = np.lexsort((dist, prop))
        sp = prop[order]
        starts = np.searchsorted(sp, sp, side="left")
        rank = np.arange(sp.size) - starts
        accept = rank < remaining[sp]
        won = order[accept]
        assign[pending[won]] = prop[won]
        np.subtract.at(remaining, prop[won], 1)
        lost = pending[order[~accept]]
        ptr[lost] += 1
        pending = np.sort(lost)
    return assign


class ResidualKMeans:
    """L levels of k-means on residuals (faiss), optionally balanced (each code <= ceil(N/K) items).

    Centroids are trained on at most `max_points_per_centroid * K` sampled rows per level
    (faiss subsamples with the seed); all rows are then assigned in chunks, float32 throughout.
    Balanced mode (OneRec style) refines the centroids with `balanced_iters` rounds of
    capacity-constrained assignment + mean update on the sample, then assigns every row with a
    cap of ceil(N/K) per code.
    """

    def __init__(self, levels: int = 3, codebook_size: int | Sequence[int] = 256, balanced: bool = True,
                 seed: int = 42, niter: int = 20, max_points_per_centroid: int = 256,
                 balanced_iters: int = 5, topk: int = 16, verbose: bool = False):
        self.level_sizes = level_sizes(levels, codebook_size)
        self.balanced = bool(balanced)
        self.seed = int(seed)
        self.niter = int(niter)
        self.max_points_per_centroid = int(max_points_per_centroid)
        self.balanced_iters = int(balanced_iters)
        self.topk = int(topk)
        self.verbose = verbose
        self.centroids: list[np.ndarray] = []
        self.level_mse: list[float] = []

    @property
    def config(self) -> dict[str, Any]:
        return {"type": "rkmeans", "levels": len(self.level_sizes), "codebook_sizes": self.level_sizes,
                "balanced": self.balanced, "seed": self.seed, "niter": self.niter,
                "max_points_per_centroid": self.max_points_per_centroid,
                "balanced_iters": self.balanced_iters}

    # ---- training ------------------------------------------------------------------------
    def _train_level(self, R: np.ndarray, K: int, level: int) -> np.ndarray:
        import faiss

        n, d = R.shape
        k = min(K, n)
        rng = np.random.default_rng(self.seed + 1000 * level)
        limit = self.max_points_per_centroid * k
        sample = R if n <= limit else R[np.sort(rng.choice(n, limit, replace=False))]
        km = faiss.Kmeans(d, k, niter=self.niter, seed=self.seed + level, verbose=self.verbose,
                          max_points_per_centroid=self.max_points_per_centroid, min_points_per_centroid=1)
        km.train(np.ascontiguousarray(sample))
        C = km.centroids.astype(np.float32, copy=True)
        if self.balanced and k > 1:
            for _ in range(self.balanced_iters):
                a = capacity_assign(sample, C, topk=self.topk)
                sums = np.zeros_like(C)
                np.add.at(sums, a, sample)
                cnt = np.bincount(a, minlength=k)
                nz = cnt > 0
                C[nz] = sums[nz] / cnt[nz, None]
        return C

    def _assign(self, R: np.ndarray, C: np.ndarray) -> np.ndarray:
        if self.balanced and len(C) > 1:
            return capacity_assign(R, C, topk=self.topk)
        return nearest(R, C, k=1)[1][:, 0].astype(np.int64)

    def fit(self, X: np.ndarray) -> ResidualKMeans:
        """Train the codebooks level by level (the training codes are kept for fit_encode)."""
        self._codes = self._run(X, train=True)
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        """Codes [N, L] (int64). In balanced mode the cap ceil(N/K) applies within this batch."""
        if not self.centroids:
            raise LlmrecError("ResidualKMeans.encode called before fit")
        return self._run(X, train=False)

    def fit_encode(self, X: np.ndarray) -> np.ndarray:
        self.fit(X)
        return self._codes

    def _run(self, X: np.ndarray, train: bool) -> np.ndarray:
        from tqdm.auto import tqdm

        R = as_f32(X).copy()
        N = len(R)
        codes = np.empty((N, len(self.level_sizes)), dtype=np.int64)
        if train:
            self.centroids, self.level_mse = [], []
        for lvl in tqdm(range(len(self.level_sizes)), desc="rkmeans levels", disable=N < 20000):
            if train:
                self.centroids.append(self._train_level(R, self.level_sizes[lvl], lvl))
            C = self.centroids[lvl]
            a = self._assign(R, C)
            codes[:, lvl] = a
            for s in range(0, N, CHUNK):  # residual update in place
                R[s:s + CHUNK] -= C[a[s:s + CHUNK]]
            if train:
                self.level_mse.append(float(np.einsum("ij,ij->i", R, R).mean()))
        return codes

    # ---- extras for collision handling and saving ----------------------------------------
    def last_level_costs(self, X: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Squared distance of each row's residual (before the last level) to every last-level centroid."""
        R = as_f32(X[rows], allow_empty=True).copy()
        for lvl in range(len(self.level_sizes) - 1):
            R -= self.centroids[lvl][codes[rows, lvl]]
        C = self.centroids[-1]
        d = sq_distances(R, C)
        K = self.level_sizes[-1]
        if len(C) < K:  # codes beyond the trained centroids are allowed but cost more than any real one
            pad = np.full((len(rows), K - len(C)), float(d.max(initial=0.0)) * 2 + 1, dtype=np.float32)
            d = np.concatenate([d, pad], axis=1)
        return d

    def codebooks(self) -> dict[str, np.ndarray]:
        return {f"level_{i}": c for i, c in enumerate(self.centroids)}


def utilization(codes: np.ndarray, level_sizes: Sequence[int]) -> list[float]:
    """Fraction of each level's codes used at least once."""
    return [float(np.unique(codes[:, i]).size / k) for i, k in enumerate(level_sizes)]
