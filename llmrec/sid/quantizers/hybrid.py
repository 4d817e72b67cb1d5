"""Per-level composition (MBGen; OneRec): each level is its own kind of quantizer on the residual.

`levels: [vq, kmeans, hash]` is MBGen's construction (a learned VQ level, k-means on its residuals,
then a random hash level); `[vq, bkmeans, bkmeans]` is RQ + balanced k-means (OneRec);
`[hash, hash]` is hash-only. Level kinds:
- `vq`: a learned codebook (gradient, k-means init, dead-code restarts) on the residual;
- `kmeans` / `bkmeans`: faiss k-means on the residual (bkmeans: capped at ceil(N/K) items per code);
- `hash`: a seeded hash of the item vector's bytes, uniform over the codes and carrying no meaning
  (residual unchanged), so it only separates items that share everything before it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from llmrec.config import option
from llmrec.io import LlmrecError
from llmrec.registry import did_you_mean
from llmrec.sid.quantizers.base import QUANTIZERS, BaseQuantizer, as_f32
from llmrec.sid.rkmeans import ResidualKMeans, sq_distances

LEVEL_KINDS = ("vq", "kmeans", "bkmeans", "hash")


def row_hash(X: np.ndarray, seed: int) -> np.ndarray:
    """uint64 per row from its float32 bytes and the seed (stable across runs and machines)."""
    import hashlib

    X = np.ascontiguousarray(X, dtype=np.float32)
    salt = int(seed).to_bytes(8, "little", signed=True)
    return np.array([int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8, key=salt).digest(), "little")
                     for row in X], dtype=np.uint64)


@dataclass
class HybridSettings:
    kinds: list[str] = option(help="one kind per level: vq (learned codebook), kmeans, bkmeans (balanced), hash",
                              choices=LEVEL_KINDS, default_factory=lambda: ["vq", "kmeans", "hash"])
    vq_steps: int = option(500, help="training steps of each vq level")
    vq_lr: float = option(1.0e-3, help="learning rate of the vq levels")
    batch_size: int = option(1024, help="rows per vq step")
    niter: int = option(20, help="k-means iterations of kmeans / bkmeans levels")
    device: str | None = option(None, help="cpu or cuda for vq levels (default: cuda when available)")


@QUANTIZERS.register("hybrid")
class Hybrid(BaseQuantizer):
    name = "hybrid"
    Settings = HybridSettings

    def __init__(self, levels: int = 3, codebook_size: int | list[int] = 256, seed: int = 42, **kw: Any):
        s = HybridSettings(**kw)
        s.kinds = [str(k) for k in s.kinds]
        if levels and len(s.kinds) != levels:  # the kinds list decides, unless codebook sizes disagree
            if isinstance(codebook_size, (list, tuple)) and len(codebook_size) != len(s.kinds):
                raise LlmrecError(f"hybrid.kinds lists {len(s.kinds)} levels but codebook_size lists "
                                  f"{len(codebook_size)}")
            levels = len(s.kinds)
        for k in s.kinds:
            if k not in LEVEL_KINDS:
                raise LlmrecError(f"hybrid.kinds: unknown level kind {k!r}{did_you_mean(k, LEVEL_KINDS)}; "
                                  f"choose from {', '.join(LEVEL_KINDS)}")
        super().__init__(len(s.kinds), codebook_size, seed)
        self.s = s
        self.centroids: list[np.ndarray | None] = [None] * len(s.kinds)

    def settings(self) -> dict[str, Any]:
        return asdict(self.s)

    def _train_level(self, kind: str, R: np.ndarray, K: int, lvl: int) -> np.ndarray | None:
        if kind == "hash":
            return None
        if kind in ("kmeans", "bkmeans"):
            rk = ResidualKMeans(levels=1, codebook_size=K, balanced=kind == "bkmeans", seed=self.seed + lvl,
                                niter=self.s.niter)
            rk.fit(R)
            return rk.centroids[0]
        from llmrec.sid.quantizers.rvq import RVQ

        vq = RVQ(levels=1, codebook_size=K, seed=self.seed + lvl, steps=self.s.vq_steps, lr=self.s.vq_lr,
                 batch_size=self.s.batch_size, device=self.s.device, mode="grad")
        vq.fit(R)
        self.history += [{"step": h["step"], f"vq{lvl}_recon": h["recon"]} for h in vq.history]
        return vq.rq.codebook(0).detach().cpu().numpy().astype(np.float32)

    def _assign(self, kind: str, R: np.ndarray, lvl: int, X: np.ndarray) -> np.ndarray:
        K = self.level_sizes[lvl]
        if kind == "hash":
            return (row_hash(X, self.seed + 7919 * lvl) % np.uint64(K)).astype(np.int64)
        C = self.centroids[lvl]
        if kind == "bkmeans" and len(C) > 1:
            from llmrec.sid.rkmeans import capacity_assign

            return capacity_assign(R, C)
        from llmrec.sid.rkmeans import nearest

        return nearest(R, C, k=1)[1][:, 0].astype(np.int64)

    def _run(self, X: np.ndarray, train: bool) -> np.ndarray:
        X = as_f32(X)
        R = X.copy()
        codes = np.empty((len(X), len(self.level_sizes)), dtype=np.int64)
        for lvl, kind in enumerate(self.s.kinds):
            if train:
                self.centroids[lvl] = self._train_level(kind, R, self.level_sizes[lvl], lvl)
            codes[:, lvl] = self._assign(kind, R, lvl, X)
            if self.centroids[lvl] is not None:
                R -= self.centroids[lvl][codes[:, lvl]]
        if train:
            self.reconstruction_mse = float(np.einsum("ij,ij->i", R, R).mean())
        return codes

    def _fit(self, X: np.ndarray, collab: np.ndarray | None) -> np.ndarray:
        self.history = []
        return self._run(X, train=True)

    def encode(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self._run(X, train=False)

    def last_level_costs(self, X: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        L = len(self.level_sizes)
        K = self.level_sizes[-1]
        if self.centroids[-1] is None:  # a hash level: every free code is as good
            return np.zeros((len(rows), K), dtype=np.float32)
        R = as_f32(X[rows]).copy()
        for lvl in range(L - 1):
            if self.centroids[lvl] is not None:
                R -= self.centroids[lvl][codes[rows, lvl]]
        d = sq_distances(R, self.centroids[-1])
        if d.shape[1] < K:
            d = np.concatenate([d, np.full((len(rows), K - d.shape[1]), 2 * float(d.max(initial=0)) + 1,
                                           dtype=np.float32)], axis=1)
        return d

    def state(self) -> dict[str, np.ndarray]:
        return {f"level_{i}": c for i, c in enumerate(self.centroids) if c is not None}

    def set_state(self, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.centroids = [np.asarray(tensors[f"level_{i}"], dtype=np.float32) if f"level_{i}" in tensors else None
                          for i in range(len(self.level_sizes))]
