"""RQ-VAE (TIGER): encoder MLP -> residual quantizer -> decoder MLP.

Loss: reconstruction ||x - dec(zq)||^2 + codebook + commitment (+ optional LETTER-style
collaborative contrastive loss on the quantized latent and a code-usage diversity term). Known
troubles and the remedies used here: unstable training and unbalanced codes, so the autoencoder is
warmed up alone first (`warmup_steps`), the codebooks start from residual k-means on the warmed-up
latents, dead codes are restarted on live residuals, and the last level can use Sinkhorn-balanced
assignment (`sinkhorn_last`, as LC-Rec).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from llmrec.config import option
from llmrec.sid.quantizers.base import QUANTIZERS, BaseQuantizer, as_f32
from llmrec.sid.quantizers.rvq import LearnedSettings, _cuda, collab_rows, train_rows


@dataclass
class RQVAESettings(LearnedSettings):
    hidden: list[int] = option(help="encoder hidden sizes (the decoder mirrors them)",
                               default_factory=lambda: [256, 128])
    latent_dim: int = option(32, help="dimension of the quantized latent")
    dropout: float = option(0.0, help="dropout in the MLPs")
    warmup_steps: int = option(200, help="autoencoder-only steps before the k-means init of the codebooks")
    steps: int = option(2000, help="optimizer steps after the warm-up")


@QUANTIZERS.register("rqvae")
class RQVAE(BaseQuantizer):
    name = "rqvae"
    Settings = RQVAESettings

    def __init__(self, levels: int = 3, codebook_size: int | list[int] = 256, seed: int = 42, **kw: Any):
        super().__init__(levels, codebook_size, seed)
        self.s = RQVAESettings(**kw)
        self.s.check(self.name)
        self.s.hidden = [int(h) for h in self.s.hidden]
        self.device = self.s.device or ("cuda" if _cuda() else "cpu")
        self.model: Any = None

    def settings(self) -> dict[str, Any]:
        return asdict(self.s)

    def _fit(self, X: np.ndarray, collab: np.ndarray | None) -> np.ndarray:
        import torch
        from torch import nn

        from llmrec.sid.quantizers.torch_vq import LoopSettings, RQVAEModel, contrastive_loss, fit_module

        X = as_f32(X)
        torch.manual_seed(self.seed)
        rows = train_rows(X, self.s.max_train_rows, self.seed)
        Xt = X[rows] if len(rows) < len(X) else X
        self.model = m = RQVAEModel(X.shape[1], self.s, self.level_sizes).to(self.device)
        loop = LoopSettings(self.s.warmup_steps, self.s.batch_size, self.s.lr, 0, max_minutes=self.s.max_minutes)
        history: list[dict[str, float]] = []
        if self.s.warmup_steps:
            history = fit_module(nn.ModuleDict({"enc": m.enc, "dec": m.dec}), Xt,
                                 lambda x, _: {"loss": (x - m.dec(m.enc(x))).pow(2).sum(1).mean()},
                                 loop, self.seed, self.device, "rqvae warmup")
            for h in history:
                h["recon"] = h["loss"]
        if self.s.kmeans_init:
            with torch.no_grad():
                Z = m.enc(torch.from_numpy(Xt[:65536]).to(self.device)).cpu().numpy()
            m.rq.kmeans_init(Z, self.seed)
        head, C = None, None
        if self.s.cf_weight > 0:
            C = torch.from_numpy(collab_rows(self.name, self.s.cf_weight, collab, len(X), rows)).to(self.device)
            head = nn.Linear(self.s.latent_dim, C.shape[1]).to(self.device)
        div_t = self.s.diversity_temp if self.s.diversity_weight else 0.0

        def loss_fn(x: torch.Tensor, idx: torch.Tensor) -> dict:
            z = m.enc(x)
            out = m.rq(z, diversity_temp=div_t)
            recon = (x - m.dec(out["zq"])).pow(2).sum(1).mean()
            loss = recon + out["codebook"] + out["commit"] + self.s.diversity_weight * out["diversity"]
            res = {"recon": recon, "commit": out["commit"]}
            if head is not None:
                # the codebooks get the gradient through q, the encoder through the straight-through zq
                cf = contrastive_loss(head(out["q"] + out["zq"] - out["zq"].detach()), C[idx.to(self.device)],
                                      self.s.cf_temp)
                loss = loss + self.s.cf_weight * cf
                res["cf"] = cf
            if div_t:
                res["diversity"] = out["diversity"]
            return {"loss": loss, **res}

        mods = nn.ModuleDict({"m": m, **({"head": head} if head is not None else {})})
        loop = LoopSettings(self.s.steps, self.s.batch_size, self.s.lr, self.s.restart_every,
                            max_minutes=self.s.max_minutes)
        main = fit_module(mods, Xt, loss_fn, loop, self.seed + 1, self.device, "rqvae",
                          on_restart=lambda b, g: m.rq.restart_dead(m.enc(b), g))
        offset = history[-1]["step"] if history else 0.0
        self.history = history + [{**h, "step": h["step"] + offset} for h in main]
        self.fitted = True
        codes = self.encode(X)
        self.reconstruction_mse = self._mse(X)
        return codes

    def encode(self, X: np.ndarray) -> np.ndarray:
        from llmrec.sid.quantizers.torch_vq import encode_batches

        self._check_fitted()
        self.model.eval()
        return encode_batches(lambda x: self.model.rq(self.model.enc(x))["codes"], as_f32(X), self.device)

    def quantized(self, X: np.ndarray) -> np.ndarray:
        """The quantized latents (sum of each row's codewords, the vector the collaborative loss
        aligns), float32 [N, latent_dim]."""
        from llmrec.sid.quantizers.torch_vq import encode_batches

        self._check_fitted()
        self.model.eval()
        return encode_batches(lambda x: self.model.rq(self.model.enc(x))["q"], as_f32(X), self.device,
                              dtype=np.float32)

    def _mse(self, X: np.ndarray) -> float:
        import torch

        total = 0.0
        with torch.no_grad():
            for s in range(0, len(X), 65536):
                x = torch.from_numpy(X[s:s + 65536]).to(self.device)
                total += float((x - self.model.dec(self.model.rq(self.model.enc(x))["zq"])).pow(2).sum())
        return total / len(X)

    def last_level_costs(self, X: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        import torch

        from llmrec.sid.quantizers.torch_vq import sq_dist

        rq = self.model.rq
        L = len(self.level_sizes)
        with torch.no_grad():
            r = self.model.enc(torch.from_numpy(as_f32(X[rows])).to(self.device))
            c = torch.from_numpy(codes[rows]).to(self.device)
            for lvl in range(L - 1):
                r = r - rq.codebook(lvl)[c[:, lvl]]
            return sq_dist(r, rq.codebook(L - 1)).cpu().numpy()

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}

    def set_state(self, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        import torch

        from llmrec.sid.quantizers.torch_vq import RQVAEModel

        dim = int(tensors["enc.0.weight"].shape[1])
        self.model = RQVAEModel(dim, self.s, self.level_sizes).to(self.device)
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
        self.model.eval()
