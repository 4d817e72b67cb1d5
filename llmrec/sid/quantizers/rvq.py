"""R-VQ: learned residual codebooks on the item vectors themselves (no encoder), as in GRID.

Gradient mode trains every codebook jointly on the final reconstruction ||x - sum_l q_l||^2 plus
the VQ codebook and commitment terms per level (the residual keeps its gradient, so a level's
commitment also moves the codebooks before it); EMA mode updates each codeword as the running
mean of the residuals assigned to it (online residual k-means). Both start from residual k-means
and restart dead codes. With collaborative vectors (`cf_weight > 0`, gradient mode) a LETTER-style
contrastive loss pulls each item's quantized vector toward its own collaborative vector and away
from the other items' in the batch; `diversity_weight` keeps the codes used. Without an encoder the
loss can only move codewords (items change codes only when a boundary crosses them): on a synthetic
case where text and behaviour disagree it changed no code (tests/test_sid_collab.py measures RQ-VAE,
whose encoder can move items), so prefer `rqvae` or fused input vectors to put behaviour into SIDs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from llmrec.config import option
from llmrec.io import LlmrecError
from llmrec.sid.quantizers.base import QUANTIZERS, BaseQuantizer, as_f32

MODES = ("ema", "grad")


@dataclass
class LearnedSettings:
    """Training settings shared by R-VQ and RQ-VAE."""

    mode: str = option("grad", help="how codewords learn: gradient (codebook + commitment losses) or EMA means",
                       choices=MODES)
    steps: int = option(1500, help="optimizer steps")
    batch_size: int = option(1024, help="rows per step")
    lr: float = option(1.0e-3, help="Adam learning rate")
    beta: float = option(0.25, help="commitment loss weight")
    decay: float = option(0.99, help="EMA decay (mode ema)")
    kmeans_init: bool = option(True, help="start the codebooks from residual k-means on a sample")
    restart_every: int = option(100, help="every N steps, restart codes unused since the last check (0: never)")
    sinkhorn_last: bool = option(False, help="Sinkhorn-balanced (near uniform) assignment on the last level")
    sinkhorn_eps: float = option(0.05, help="Sinkhorn temperature on standardised distances")
    max_train_rows: int = option(262144, help="train on a seeded sample of at most this many rows (all are encoded)")
    max_minutes: float | None = option(None, help="stop training after this many minutes")
    device: str | None = option(None, help="cpu or cuda (default: cuda when available)")
    cf_weight: float = option(0.0, help="LETTER-style contrastive loss between quantized and collaborative "
                                        "vectors (needs interactions); 0 = off")
    cf_temp: float = option(0.1, help="temperature of the collaborative contrastive loss")
    diversity_weight: float = option(0.0, help="weight of the code-usage diversity term (log K - entropy)")
    diversity_temp: float = option(1.0, help="softmax temperature of the diversity term's soft assignment")

    def check(self, name: str) -> None:
        if self.mode not in MODES:
            raise LlmrecError(f"{name}.mode {self.mode!r} unknown; choose one of {', '.join(MODES)}")
        if self.steps < 1 or self.batch_size < 2:
            raise LlmrecError(f"{name}: steps must be >= 1 and batch_size >= 2")
        for key in ("cf_weight", "diversity_weight"):
            if getattr(self, key) < 0:
                raise LlmrecError(f"{name}.{key} must be >= 0 (0 = off), got {getattr(self, key)}")
        for key in ("cf_temp", "diversity_temp"):
            if getattr(self, key) <= 0:
                raise LlmrecError(f"{name}.{key} must be > 0, got {getattr(self, key)}")


def collab_rows(name: str, weight: float, collab: np.ndarray | None, n: int, rows: np.ndarray) -> np.ndarray:
    """The training rows of the collaborative vectors (one per item, in item order), checked, for
    `{name}.cf_weight > 0`; a clear error says what is missing and how to fix it."""
    if collab is None:
        raise LlmrecError(
            f"{name}.cf_weight = {weight} needs collaborative vectors (one per item) but none were given. "
            f"Build from data with training interactions (`llmrec sid build --run RUN`, or build_sids() on a "
            f"PreparedData / RecDataset / interactions=), pass collab= to fit_encode(), or set {name}.cf_weight: 0")
    C = np.asarray(collab)
    if C.ndim != 2 or len(C) != n:
        raise LlmrecError(f"{name}.cf_weight: collaborative vectors have shape {C.shape} but there are {n} items; "
                          "give one row per item, in the same order as the item vectors")
    C = as_f32(C)
    if not np.isfinite(C).all():
        raise LlmrecError(f"{name}.cf_weight: collaborative vectors contain NaN/inf")
    return C[rows]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def train_rows(X: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Row indices used for training: all rows, or a seeded sorted sample of `limit`."""
    if len(X) <= limit:
        return np.arange(len(X))
    return np.sort(np.random.default_rng(seed).choice(len(X), limit, replace=False))


@QUANTIZERS.register("rvq")
class RVQ(BaseQuantizer):
    name = "rvq"
    Settings = LearnedSettings

    def __init__(self, levels: int = 3, codebook_size: int | list[int] = 256, seed: int = 42, **kw: Any):
        super().__init__(levels, codebook_size, seed)
        self.s = LearnedSettings(**kw)
        self.s.check(self.name)
        if self.s.cf_weight > 0 and self.s.mode != "grad":
            raise LlmrecError("rvq.cf_weight > 0 needs rvq.mode: grad (EMA codebooks take no gradient)")
        self.device = self.s.device or ("cuda" if _cuda() else "cpu")
        self.rq: Any = None

    def settings(self) -> dict[str, Any]:
        return asdict(self.s)

    def _books(self, dim: int) -> Any:
        from llmrec.sid.quantizers.torch_vq import ResidualCodebooks

        return ResidualCodebooks(self.level_sizes, dim, mode=self.s.mode, decay=self.s.decay, beta=self.s.beta,
                                 sinkhorn_last=self.s.sinkhorn_last, sinkhorn_eps=self.s.sinkhorn_eps)

    def _fit(self, X: np.ndarray, collab: np.ndarray | None) -> np.ndarray:
        import torch

        from llmrec.sid.quantizers.torch_vq import LoopSettings, contrastive_loss, fit_module

        X = as_f32(X)
        torch.manual_seed(self.seed)
        rows = train_rows(X, self.s.max_train_rows, self.seed)
        Xt = X[rows] if len(rows) < len(X) else X
        self.rq = self._books(X.shape[1]).to(self.device)
        if self.s.kmeans_init:
            self.rq.kmeans_init(Xt[:65536], self.seed)
        head, C = None, None
        if self.s.cf_weight > 0:
            C = torch.from_numpy(collab_rows(self.name, self.s.cf_weight, collab, len(X), rows)).to(self.device)
            head = torch.nn.Linear(X.shape[1], C.shape[1]).to(self.device)
        mod = torch.nn.ModuleDict({"rq": self.rq, **({"head": head} if head is not None else {})})

        def loss_fn(x: torch.Tensor, idx: torch.Tensor) -> dict:
            out = self.rq(x, residual_grad=True, diversity_temp=self.s.diversity_temp if self.s.diversity_weight else 0)
            recon = (x - out["q"]).pow(2).sum(1).mean()
            loss = recon + out["codebook"] + out["commit"] + self.s.diversity_weight * out["diversity"]
            res = {"recon": recon, "commit": out["commit"]}
            if head is not None:
                cf = contrastive_loss(head(out["q"]), C[idx.to(self.device)], self.s.cf_temp)
                loss = loss + self.s.cf_weight * cf
                res["cf"] = cf
            if self.s.diversity_weight:
                res["diversity"] = out["diversity"]
            return {"loss": loss, **res}

        loop = LoopSettings(self.s.steps, self.s.batch_size, self.s.lr, self.s.restart_every,
                            max_minutes=self.s.max_minutes)
        self.history = fit_module(mod, Xt, loss_fn, loop, self.seed, self.device, "rvq",
                                  on_restart=lambda b, g: self.rq.restart_dead(b, g))
        self.fitted = True
        codes = self.encode(X)
        self.reconstruction_mse = self._mse(X, codes)
        return codes

    def encode(self, X: np.ndarray) -> np.ndarray:
        from llmrec.sid.quantizers.torch_vq import encode_batches

        self._check_fitted()
        X = as_f32(X)
        self.rq.eval()
        return encode_batches(lambda x: self.rq(x)["codes"], X, self.device)

    def quantized(self, X: np.ndarray) -> np.ndarray:
        """The quantized vectors (sum of each row's codewords) in the input space, float32 [N, dim]."""
        return self._decode(self.encode(X))

    def _decode(self, codes: np.ndarray, upto: int | None = None) -> np.ndarray:
        out = 0
        for lvl in range(codes.shape[1] if upto is None else upto):
            out = out + self.rq.codebook(lvl).detach().cpu().numpy()[codes[:, lvl]]
        return np.asarray(out, dtype=np.float32)

    def _mse(self, X: np.ndarray, codes: np.ndarray) -> float:
        total = 0.0
        for s in range(0, len(X), 65536):
            total += float(((X[s:s + 65536] - self._decode(codes[s:s + 65536])) ** 2).sum())
        return total / len(X)

    def last_level_costs(self, X: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        L = len(self.level_sizes)
        import torch

        from llmrec.sid.quantizers.torch_vq import sq_dist

        R = as_f32(X[rows]) - (self._decode(codes[rows], L - 1) if L > 1 else 0)
        with torch.no_grad():
            return sq_dist(torch.from_numpy(np.ascontiguousarray(R, dtype=np.float32)),
                           self.rq.codebook(L - 1).detach().cpu()).numpy()

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.rq.state_dict().items()}

    def set_state(self, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        import torch

        dim = int(tensors["cb0" if self.s.mode == "ema" else "books.0"].shape[1])
        self.rq = self._books(dim).to(self.device)
        self.rq.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
        self.rq.eval()
