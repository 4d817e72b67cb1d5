"""Learned residual codebooks in PyTorch, shared by R-VQ, RQ-VAE and hybrid `vq` levels.

`ResidualCodebooks` quantizes a batch level by level (nearest codeword of the residual, or a
Sinkhorn-balanced assignment on the last level as LC-Rec does), and returns the losses:
- codebook: ||sg(r_l) - q_l||^2 (gradient mode; EMA mode updates the codewords as running means
  of the residuals assigned to them instead),
- commitment: beta * ||r_l - sg(q_l)||^2,
- diversity (optional): log K - entropy of the batch's mean soft assignment per level, so that
  codes stay used when a collaborative loss pulls items together.
Codebooks start from residual k-means on a sample (faiss) and codes unused for a while are
restarted on random residuals of the current batch (dead-code restarts).
`fit_module` is the one training loop (seeded torch generator, tqdm, loss history).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


def sq_dist(r: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Squared L2 distances [B, K]."""
    return (r.pow(2).sum(1, keepdim=True) - 2 * r @ C.T + C.pow(2).sum(1)[None, :]).clamp_min_(0)


@torch.no_grad()
def sinkhorn_assign(d: torch.Tensor, eps: float = 0.05, iters: int = 30) -> torch.Tensor:
    """Codes from a Sinkhorn-Knopp balanced transport plan on distances d [B, K]: each code receives
    about B/K rows, each row goes to one code (its largest plan entry). One exp, then multiplicative
    row/column scalings (10x cheaper than log-domain updates; rows are shifted so none underflows)."""
    d = d.double()
    d = (d - d.min(dim=1, keepdim=True).values) / (d.std() + 1e-12)
    q = torch.exp(-d / eps)
    for _ in range(iters):
        q /= q.sum(dim=0, keepdim=True) + 1e-300  # every code gets the same mass
        q /= q.sum(dim=1, keepdim=True) + 1e-300  # every row sums to one
    return q.argmax(1)


class ResidualCodebooks(nn.Module):
    """L codebooks [K_l, dim]; gradient-trained parameters or EMA buffers."""

    def __init__(self, sizes: Sequence[int], dim: int, mode: str = "ema", decay: float = 0.99,
                 beta: float = 0.25, sinkhorn_last: bool = False, sinkhorn_eps: float = 0.05,
                 sinkhorn_iters: int = 30):
        super().__init__()
        self.sizes, self.dim, self.mode = list(sizes), int(dim), mode
        self.decay, self.beta = float(decay), float(beta)
        self.sinkhorn_last, self.sinkhorn_eps, self.sinkhorn_iters = sinkhorn_last, sinkhorn_eps, sinkhorn_iters
        init = [torch.randn(k, dim) * 0.01 for k in self.sizes]
        if mode == "ema":
            for lvl, c in enumerate(init):
                self.register_buffer(f"cb{lvl}", c)
                self.register_buffer(f"ema_n{lvl}", torch.zeros(len(c)))
                self.register_buffer(f"ema_s{lvl}", c.clone())
        else:
            self.books = nn.ParameterList([nn.Parameter(c) for c in init])
        self.usage = [torch.zeros(k) for k in self.sizes]  # assignments since the last restart check

    def codebook(self, lvl: int) -> torch.Tensor:
        return getattr(self, f"cb{lvl}") if self.mode == "ema" else self.books[lvl]

    @torch.no_grad()
    def set_codebook(self, lvl: int, C: torch.Tensor) -> None:
        C = C.to(self.codebook(lvl))
        if self.mode == "ema":
            getattr(self, f"cb{lvl}").copy_(C)
            getattr(self, f"ema_s{lvl}").copy_(C)
            getattr(self, f"ema_n{lvl}").fill_(1.0)
        else:
            self.books[lvl].copy_(C)

    def assign(self, r: torch.Tensor, lvl: int, d: torch.Tensor | None = None) -> torch.Tensor:
        if d is None:
            d = sq_dist(r, self.codebook(lvl))
        if self.sinkhorn_last and lvl == len(self.sizes) - 1 and len(r) > 1:
            return sinkhorn_assign(d.detach(), self.sinkhorn_eps, self.sinkhorn_iters)
        return d.argmin(1)

    def forward(self, z: torch.Tensor, residual_grad: bool = False, diversity_temp: float = 0.0) -> dict:
        """Quantize z [B, dim]: codes [B, L], q (sum of codewords, differentiable w.r.t. the
        codebooks), zq (straight-through: value q, gradient to z), and the losses."""
        r = z
        q_sum = torch.zeros_like(z)
        codes, commit, cbl, div = [], z.new_zeros(()), z.new_zeros(()), z.new_zeros(())
        for lvl in range(len(self.sizes)):
            C = self.codebook(lvl)
            d = sq_dist(r, C)
            idx = self.assign(r, lvl, d)
            q = C[idx]
            codes.append(idx)
            commit = commit + (r - q.detach()).pow(2).sum(1).mean()
            if self.mode != "ema":
                cbl = cbl + (r.detach() - q).pow(2).sum(1).mean()
            if diversity_temp > 0:
                p = torch.softmax(-d / diversity_temp, dim=1).mean(0)
                div = div + math.log(len(C)) + (p * torch.log(p + 1e-12)).sum()
            if self.training:
                self._update(lvl, r.detach(), idx)
            q_sum = q_sum + q
            r = r - (q if residual_grad else q.detach())
        zq = z + (q_sum - z).detach()
        return {"codes": torch.stack(codes, 1), "q": q_sum, "zq": zq, "commit": self.beta * commit,
                "codebook": cbl, "diversity": div, "residual": r}

    @torch.no_grad()
    def _update(self, lvl: int, r: torch.Tensor, idx: torch.Tensor) -> None:
        K = self.sizes[lvl]
        counts = torch.bincount(idx, minlength=K).to(r.dtype)
        self.usage[lvl] += counts.cpu()
        if self.mode != "ema":
            return
        sums = torch.zeros(K, r.shape[1], dtype=r.dtype, device=r.device).index_add_(0, idx, r)
        n, s = getattr(self, f"ema_n{lvl}"), getattr(self, f"ema_s{lvl}")
        n.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        s.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = n.sum()
        smoothed = (n + 1e-5) / (total + K * 1e-5) * total  # Laplace smoothing
        getattr(self, f"cb{lvl}").copy_(s / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor, gen: torch.Generator, min_usage: float = 1.0) -> int:
        """Codes used fewer than `min_usage` times since the last call get random residuals of z."""
        restarted = 0
        r = z.detach()
        for lvl in range(len(self.sizes)):
            C = self.codebook(lvl)
            dead = torch.nonzero(self.usage[lvl] < min_usage).flatten()
            if len(dead):
                pick = torch.randint(len(r), (len(dead),), generator=gen)
                new = r[pick.to(r.device)] + 0.01 * r.std() * torch.randn(len(dead), r.shape[1], generator=gen).to(r)
                C.data[dead.to(C.device)] = new
                if self.mode == "ema":
                    getattr(self, f"ema_s{lvl}")[dead.to(C.device)] = new
                    getattr(self, f"ema_n{lvl}")[dead.to(C.device)] = 1.0
                restarted += len(dead)
            self.usage[lvl].zero_()
            r = r - C[sq_dist(r, C).argmin(1)]
        return restarted

    @torch.no_grad()
    def kmeans_init(self, z: np.ndarray, seed: int, niter: int = 20) -> None:
        """Codebooks from residual k-means (faiss) on a sample of inputs."""
        from llmrec.sid.rkmeans import ResidualKMeans

        rk = ResidualKMeans(levels=len(self.sizes), codebook_size=self.sizes, balanced=False, seed=seed,
                            niter=niter, max_points_per_centroid=64)
        rk.fit(np.ascontiguousarray(z, dtype=np.float32))
        for lvl, C in enumerate(rk.centroids):
            full = torch.as_tensor(C)
            if len(full) < self.sizes[lvl]:  # fewer points than codes: pad with jittered copies
                extra = full[torch.arange(self.sizes[lvl] - len(full)) % len(full)]
                full = torch.cat([full, extra + 1e-3 * torch.randn_like(extra)])
            self.set_codebook(lvl, full)


def mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class RQVAEModel(nn.Module):
    """RQ-VAE: encoder MLP -> ResidualCodebooks on the latent -> decoder MLP."""

    def __init__(self, dim: int, s: Any, sizes: list[int]):
        """s: RQVAESettings (hidden, latent_dim, dropout, mode, decay, beta, sinkhorn_*)."""
        super().__init__()
        self.enc = mlp([dim, *s.hidden, s.latent_dim], s.dropout)
        self.dec = mlp([s.latent_dim, *reversed(s.hidden), dim], s.dropout)
        self.rq = ResidualCodebooks(sizes, s.latent_dim, mode=s.mode, decay=s.decay, beta=s.beta,
                                    sinkhorn_last=s.sinkhorn_last, sinkhorn_eps=s.sinkhorn_eps)


@dataclass
class LoopSettings:
    steps: int
    batch_size: int
    lr: float
    restart_every: int
    log_every: int = 25
    max_minutes: float | None = None
    weight_decay: float = 0.0


def fit_module(module: nn.Module, X: np.ndarray, loss_fn: Callable[[torch.Tensor, torch.Tensor], dict],
               s: LoopSettings, seed: int, device: str, desc: str,
               on_restart: Callable[[torch.Tensor, torch.Generator], int] | None = None) -> list[dict[str, float]]:
    """Adam over random batches of X (row indices passed to loss_fn too); returns the loss history.

    `loss_fn(batch, idx)` returns a dict with 'loss' (to minimise) and other scalars to log.
    Deterministic algorithms are on while it runs: with 2+ CPU threads the scatter-add behind a
    codebook lookup's gradient otherwise differs from run to run (same seed, different codes).
    """
    prev = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _fit_loop(module, X, loss_fn, s, seed, device, desc, on_restart)
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])


def _fit_loop(module: nn.Module, X: np.ndarray, loss_fn: Callable[[torch.Tensor, torch.Tensor], dict],
              s: LoopSettings, seed: int, device: str, desc: str,
              on_restart: Callable[[torch.Tensor, torch.Generator], int] | None) -> list[dict[str, float]]:
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay) if params else None
    history: list[dict[str, float]] = []
    n = len(X)
    bs = min(s.batch_size, n)
    perm, pos = torch.randperm(n, generator=gen), 0
    acc: dict[str, float] = {}
    seen = 0
    t0 = time.perf_counter()
    module.train()
    bar = tqdm(range(1, s.steps + 1), desc=desc, leave=False, mininterval=1.0)
    for step in bar:
        if pos + bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + bs]
        pos += bs
        batch = torch.from_numpy(X[idx.numpy()]).to(device)
        out = loss_fn(batch, idx)
        if opt is not None and out["loss"].requires_grad:
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
        for k, v in out.items():
            if k != "loss" and torch.is_tensor(v) and v.dim() == 0:
                acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc["loss"] = acc.get("loss", 0.0) + float(out["loss"].detach())
        seen += 1
        if on_restart is not None and s.restart_every and step % s.restart_every == 0 and step < s.steps:
            acc["restarts"] = acc.get("restarts", 0.0) + on_restart(batch, gen)
        if step % s.log_every == 0 or step == s.steps:
            row = {"step": float(step), **{k: v / seen for k, v in acc.items() if k != "restarts"}}
            if "restarts" in acc:
                row["restarts"] = acc["restarts"]
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
            acc, seen = {}, 0
        if s.max_minutes and time.perf_counter() - t0 > 60 * s.max_minutes:
            break
    bar.close()
    module.eval()
    return history


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, temp: float) -> torch.Tensor:
    """InfoNCE between matching rows of a and b (both directions), cosine similarity / temp."""
    a = nn.functional.normalize(a, dim=1)
    b = nn.functional.normalize(b, dim=1)
    logits = a @ b.T / temp
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))


def pick_device(device: str | None) -> str:
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def encode_batches(fn: Callable[[torch.Tensor], torch.Tensor], X: np.ndarray, device: str,
                   batch: int = 65536, dtype: type = np.int64) -> np.ndarray:
    """fn over row blocks of X (no gradients), concatenated: codes [N, L] by default, or any
    per-row output (e.g. quantized vectors with dtype=np.float32)."""
    out = []
    with torch.no_grad():
        for s in range(0, len(X), batch):
            out.append(fn(torch.from_numpy(X[s:s + batch]).to(device)).cpu().numpy())
    return np.concatenate(out).astype(dtype)
