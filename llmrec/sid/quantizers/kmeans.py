"""Residual k-means (faiss; optionally balanced, OneRec style) and the random-code baseline."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from llmrec.config import option
from llmrec.sid.quantizers.base import QUANTIZERS, BaseQuantizer, as_f32
from llmrec.sid.rkmeans import ResidualKMeans


@dataclass
class RKMeansSettings:
    balanced: bool = option(True, help="cap each code at ceil(N/K) items (OneRec-style balanced k-means)")
    niter: int = option(20, help="k-means iterations per level")
    max_points_per_centroid: int = option(256, help="train each level on at most this many rows per centroid")
    balanced_iters: int = option(5, help="capacity-constrained refinement rounds (balanced only)")


@QUANTIZERS.register("rkmeans")
class RKMeans(BaseQuantizer):
    """Residual k-means (faiss), balanced by default; wraps llmrec.sid.rkmeans.ResidualKMeans."""

    name = "rkmeans"
    Settings = RKMeansSettings

    def __init__(self, levels: int = 3, codebook_size: int | list[int] = 256, seed: int = 42, **kw: Any):
        super().__init__(levels, codebook_size, seed)
        self.s = RKMeansSettings(**kw)
        self.inner = ResidualKMeans(levels=len(self.level_sizes), codebook_size=self.level_sizes, seed=self.seed,
                                    **asdict(self.s))

    def settings(self) -> dict[str, Any]:
        return asdict(self.s)

    def _fit(self, X: np.ndarray, collab: np.ndarray | None) -> np.ndarray:
        codes = self.inner.fit_encode(as_f32(X))
        self.reconstruction_mse = self.inner.level_mse[-1]
        self.level_mse = list(self.inner.level_mse)
        return codes

    def encode(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.inner.encode(as_f32(X))

    def last_level_costs(self, X: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return self.inner.last_level_costs(X, rows, codes)

    def state(self) -> dict[str, np.ndarray]:
        return {f"level_{i}": c for i, c in enumerate(self.inner.centroids)}

    def set_state(self, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.inner.centroids = [np.asarray(tensors[f"level_{i}"], dtype=np.float32)
                                for i in range(len(self.level_sizes))]


@QUANTIZERS.register("random")
class RandomCodes(BaseQuantizer):
    """Baseline: random codes per level, hashed from the vector's bytes and the seed (re-encoding an
    item gives its code again); ignores what the vectors mean."""

    name = "random"

    def _fit(self, X: np.ndarray, collab: np.ndarray | None) -> np.ndarray:
        self.fitted = True
        return self.encode(X)

    def encode(self, X: np.ndarray) -> np.ndarray:
        from llmrec.sid.quantizers.hybrid import row_hash

        X = as_f32(X)
        return np.stack([row_hash(X, self.seed + 7919 * lvl) % np.uint64(k) for lvl, k in enumerate(self.level_sizes)],
                        axis=1).astype(np.int64)
