"""The one quantizer interface (GRID style: swappable parts chosen by config) and its persistence.

    q = QUANTIZERS.get("rvq")(levels=3, codebook_size=256, seed=42, **settings)
    codes = q.fit_encode(X)        # int64 [N, L]; variable-length methods pad with -1
    q.encode(X_new)                # same codes for the same rows, new rows for new items
    q.save(dir); load_quantizer(dir).encode(X) == codes

Every quantizer has `level_sizes`, `config` (JSON-able), `state()` -> tensors (saved as
safetensors) and `set_state(tensors, meta)`, `history` (loss rows for the loss plot, learned
methods only) and `reconstruction_mse` (None where it does not apply). Optional:
`last_level_costs(X, rows, codes)` for collision reassignment, `names` (word IDs),
`needs_text` (fit on item texts instead of vectors), `supports_reassign`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.io import LlmrecError, read_json, write_json
from llmrec.registry import Registry
from llmrec.sid.rkmeans import as_f32, level_sizes

__all__ = ["QUANTIZERS", "BaseQuantizer", "as_f32", "level_sizes", "load_quantizer", "plot_history"]

log = logging.getLogger(__name__)

#: SID construction methods: name -> BaseQuantizer subclass (or `package.module:Class` for user code).
QUANTIZERS: Registry[type] = Registry("sid method")

STATE_FILE = "quantizer.safetensors"
META_FILE = "quantizer.json"


class BaseQuantizer:
    """Shared plumbing; subclasses implement `_fit(X) -> codes` and `encode(X)`."""

    name = "base"
    needs_text = False  # fit/encode take item texts (word IDs) instead of vectors
    supports_reassign = True  # collision reassignment on the last level makes sense
    variable_length = False
    default_levels = 3  # used when the config leaves levels / codebook_size unset
    default_codebook = 256

    def __init__(self, levels: int = 3, codebook_size: int | Sequence[int] = 256, seed: int = 42):
        self.level_sizes = level_sizes(levels, codebook_size)
        self.seed = int(seed)
        self.history: list[dict[str, float]] = []
        self.reconstruction_mse: float | None = None
        self.names: list[list[str] | None] | None = None
        self.fitted = False

    # ---- interface ------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return {"type": self.name, "levels": len(self.level_sizes), "codebook_sizes": list(self.level_sizes),
                "seed": self.seed, **self.settings()}

    def settings(self) -> dict[str, Any]:
        """Method-specific constructor arguments (recorded in config, used to rebuild on load)."""
        return {}

    def fit(self, X: Any, collab: np.ndarray | None = None) -> BaseQuantizer:
        self._codes = self.fit_encode(X, collab=collab)
        return self

    def fit_encode(self, X: Any, collab: np.ndarray | None = None) -> np.ndarray:
        """Train on X (and optional collaborative vectors, one row per item) and return X's codes."""
        codes = self._fit(X, collab)
        self.fitted = True
        return np.asarray(codes, dtype=np.int64)

    def _fit(self, X: Any, collab: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def encode(self, X: Any) -> np.ndarray:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise LlmrecError(f"{self.name}: encode called before fit (or load_quantizer)")

    # ---- state ----------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Trained tensors (numpy) to save as safetensors."""
        return {}

    def state_meta(self) -> dict[str, Any]:
        """Trained non-tensor state (JSON), e.g. word vocabularies."""
        return {}

    def set_state(self, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore what state()/state_meta() returned."""

    def codebooks(self) -> dict[str, np.ndarray]:
        """Arrays for codebooks.npz (the same tensors as state())."""
        return self.state()

    def save(self, out_dir: str | Path) -> Path:
        """out_dir/quantizer.safetensors (tensors) + quantizer.json (config, JSON state)."""
        from safetensors.numpy import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: np.ascontiguousarray(v) for k, v in self.state().items()}
        save_file(tensors, str(out / STATE_FILE))
        write_json(out / META_FILE, {"config": self.config, "state": self.state_meta(),
                                     "reconstruction_mse": self.reconstruction_mse})
        return out


def load_quantizer(path: str | Path, registry: Any = None) -> BaseQuantizer:
    """A saved quantizer (a folder with quantizer.json + quantizer.safetensors), ready to encode."""
    from safetensors.numpy import load_file

    path = Path(path)
    if path.is_file():
        path = path.parent
    meta_path = path / META_FILE
    if not meta_path.exists():
        raise LlmrecError(f"{path}: no {META_FILE}; pass the quantizer folder written by `llmrec sid build` "
                          "(RUN/sid/quantizer)")
    meta = read_json(meta_path, "quantizer")
    cfg = dict(meta["config"])
    cls = (registry or QUANTIZERS).get(cfg.pop("type"))
    sizes = cfg.pop("codebook_sizes")
    cfg.pop("levels", None)
    q = cls(levels=len(sizes), codebook_size=sizes, **cfg)
    tensors = load_file(str(path / STATE_FILE)) if (path / STATE_FILE).exists() else {}
    q.set_state(tensors, meta.get("state") or {})
    q.reconstruction_mse = meta.get("reconstruction_mse")
    q.fitted = True
    return q


def plot_history(history: list[dict[str, float]], path: str | Path, title: str = "") -> Path | None:
    """loss.png: every loss column of `history` against its step (Agg backend); None if empty."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in history[0] if k not in ("step", "epoch")]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    steps = [h.get("step", i) for i, h in enumerate(history)]
    for ax, k in zip(axes[0], keys):
        ax.plot(steps, [h.get(k, float("nan")) for h in history])
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("step")
        if all(h.get(k, 0) > 0 for h in history):
            ax.set_yscale("log")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
