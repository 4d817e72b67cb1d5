"""Product quantization (faiss): PQ and OPQ, unordered codes, long IDs (16-64 codebooks, as RPG).

The vector is cut into `levels` sub-vectors (zero-padded to a multiple of `levels` dims), each
quantized by its own codebook of `codebook_size` (a power of two) centroids; OPQ first learns a
rotation that spreads the variance over the sub-spaces (faiss OPQMatrix), so it reconstructs
better at the same code length. Codes are "unordered" (no level refines another), but still one
token per codebook, so the trie and the LLM see them as ordinary SIDs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from llmrec.config import option
from llmrec.io import LlmrecError
from llmrec.sid.quantizers.base import QUANTIZERS, BaseQuantizer, as_f32
from llmrec.sid.rkmeans import nearest, sq_distances


@dataclass
class PQSettings:
    niter: int = option(25, help="k-means iterations per sub-quantizer")
    opq_niter: int = option(25, help="rotation / codebook alternations (opq only)")
    max_train_rows: int = option(65536, help="train on a seeded sample of at most this many rows")


class _PQBase(BaseQuantizer):
    rotate = False
    default_levels = 16
    Settings = PQSettings

    def __init__(self, levels: int = 16, codebook_size: int | list[int] = 256, seed: int = 42, **kw: Any):
        super().__init__(levels, codebook_size, seed)
        if len(set(self.level_sizes)) != 1:
            raise LlmrecError(f"{self.name}: every codebook has the same size; got {self.level_sizes}")
        k = self.level_sizes[0]
        if k < 2 or k & (k - 1) or k > 1 << 16:
            raise LlmrecError(f"{self.name}.codebook_size must be a power of two in 2..65536, got {k}")
        self.nbits = k.bit_length() - 1
        self.s = PQSettings(**kw)
        self.dim = 0
        self.A: np.ndarray | None = None  # OPQ rotation [d, d]
        self.centroids: np.ndarray | None = None  # [M, ksub, dsub]

    def settings(self) -> dict[str, Any]:
        return asdict(self.s)

    def _prep(self, X: np.ndarray) -> np.ndarray:
        """Pad to a multiple of M dims, then rotate (OPQ)."""
        X = as_f32(X)
        if X.shape[1] != self.dim:
            raise LlmrecError(f"{self.name}: vectors have {X.shape[1]} dims, the quantizer was trained on {self.dim}")
        M = len(self.level_sizes)
        pad = (-X.shape[1]) % M
        if pad:
            X = np.pad(X, ((0, 0), (0, pad)))
        if self.A is not None:
            X = np.ascontiguousarray(X @ self.A.T, dtype=np.float32)
        return X

    def _fit(self, X: np.ndarray, collab: np.ndarray | None) -> np.ndarray:
        import faiss

        X = as_f32(X)
        self.dim = X.shape[1]
        M = len(self.level_sizes)
        if M > X.shape[1]:
            raise LlmrecError(f"{self.name}: {M} codebooks need at least {M} vector dims, got {X.shape[1]}")
        rng = np.random.default_rng(self.seed)
        sample = X if len(X) <= self.s.max_train_rows else X[np.sort(rng.choice(len(X), self.s.max_train_rows, replace=False))]
        P = self._prep(sample) if not self.rotate else np.pad(sample, ((0, 0), (0, (-X.shape[1]) % M)))
        d = P.shape[1]
        if self.rotate:
            opq = faiss.OPQMatrix(d, M)
            opq.niter = self.s.opq_niter
            opq.verbose = False
            inner = faiss.ProductQuantizer(d, M, self.nbits)  # OPQ's own PQ, with our code size
            inner.cp.seed = self.seed
            inner.cp.min_points_per_centroid = 1
            inner.cp.max_points_per_centroid = max(256, len(P) // inner.ksub + 1)
            opq.pq = inner
            opq.train(np.ascontiguousarray(P))
            self.A = faiss.vector_to_array(opq.A).reshape(d, d).astype(np.float32)
            P = np.ascontiguousarray(P @ self.A.T, dtype=np.float32)
        pq = faiss.ProductQuantizer(d, M, self.nbits)
        pq.cp.seed = self.seed
        pq.cp.niter = self.s.niter
        pq.cp.min_points_per_centroid = 1
        pq.train(np.ascontiguousarray(P))
        self.centroids = faiss.vector_to_array(pq.centroids).reshape(M, pq.ksub, pq.dsub).astype(np.float32)
        self.fitted = True
        codes = self.encode(X)
        self.reconstruction_mse = float(((X - self.decode(codes)) ** 2).sum(1).mean())
        return codes

    def encode(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        P = self._prep(X)
        M, _, dsub = self.centroids.shape
        codes = np.empty((len(P), M), dtype=np.int64)
        for m in range(M):
            codes[:, m] = nearest(np.ascontiguousarray(P[:, m * dsub:(m + 1) * dsub]), self.centroids[m])[1][:, 0]
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstructed vectors (rotated back, padding dropped)."""
        M = self.centroids.shape[0]
        Y = np.concatenate([self.centroids[m][codes[:, m]] for m in range(M)], axis=1)
        if self.A is not None:
            Y = Y @ self.A  # A is orthonormal: its transpose inverts it
        return Y[:, :self.dim].astype(np.float32)

    def last_level_costs(self, X: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        P = self._prep(X[rows])
        M, _, dsub = self.centroids.shape
        return sq_distances(np.ascontiguousarray(P[:, (M - 1) * dsub:]), self.centroids[-1])

    def state(self) -> dict[str, np.ndarray]:
        out = {"centroids": self.centroids, "dim": np.array([self.dim], dtype=np.int64)}
        if self.A is not None:
            out["rotation"] = self.A
        return out

    def set_state(self, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.centroids = np.asarray(tensors["centroids"], dtype=np.float32)
        self.dim = int(tensors["dim"][0])
        self.A = np.asarray(tensors["rotation"], dtype=np.float32) if "rotation" in tensors else None


@QUANTIZERS.register("pq")
class PQ(_PQBase):
    name = "pq"


@QUANTIZERS.register("opq")
class OPQ(_PQBase):
    name = "opq"
    rotate = True
