"""Collaborative regularisation of the learned quantizers (LETTER style): the alignment loss on hand-made
vectors, the code-usage diversity term, a seeded synthetic case where text and collaborative structure
disagree, determinism, unique SIDs after collision handling, and the errors when vectors are missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from llmrec.config import load_config
from llmrec.io import LlmrecError
from llmrec.sid.build import build_sids
from llmrec.sid.config import SidConfig
from llmrec.sid.quantizers import QUANTIZERS
from llmrec.sid.quantizers.torch_vq import ResidualCodebooks, contrastive_loss

ROOT = Path(__file__).resolve().parents[1]
# small RQ-VAE: 2 levels x 4 codes over 16-dim inputs, 8-dim latent (about 1 s on one CPU thread)
SMALL = {"steps": 120, "batch_size": 64, "lr": 3e-3, "cf_temp": 0.1, "diversity_weight": 0.1, "restart_every": 0,
         "hidden": [32], "latent_dim": 8, "warmup_steps": 30}


def _disagree(n: int = 256, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Text vectors grouped by t (strong) with a weak trace of g; collaborative vectors grouped by g only.
    t and g are independent, so text-only codes put together items that users do not."""
    rng = np.random.default_rng(seed)
    t, g = np.arange(n) % 4, (np.arange(n) // 4) % 4
    ct, cg = rng.standard_normal((4, 16)), rng.standard_normal((4, 16))
    X = (0.75 * ct[t] + 0.125 * cg[g] + 0.075 * rng.standard_normal((n, 16))).astype(np.float32)
    C = (rng.standard_normal((4, 8))[g] + 0.1 * rng.standard_normal((n, 8))).astype(np.float32)
    return X, C, t, g


def _knn_share(Q: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of each item's k nearest quantized vectors (cosine) that carry its label."""
    Q = Q / np.maximum(np.linalg.norm(Q, axis=1, keepdims=True), 1e-9)
    S = Q @ Q.T
    np.fill_diagonal(S, -np.inf)
    nn = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return float((labels[nn] == labels[:, None]).mean())


def test_alignment_loss_small_for_aligned_pairs_positive_for_shuffled():
    a = torch.eye(8)[:, :8] * 3.0
    proj = torch.cat([torch.eye(8), torch.zeros(8, 4)], dim=1)  # another dimension, same directions
    aligned = contrastive_loss(a, 0.5 * a @ proj[:, :8], temp=0.1)
    shuffled = contrastive_loss(a, a[torch.roll(torch.arange(8), 1)], temp=0.1)
    assert aligned.item() < 1e-3
    assert shuffled.item() > 5.0  # every positive pair is orthogonal, one negative is identical
    assert contrastive_loss(a, torch.randn(8, 8, generator=torch.Generator().manual_seed(0)), 0.1).item() > aligned


def test_diversity_term_zero_when_codes_used_evenly_and_log_k_when_collapsed():
    books = ResidualCodebooks([4], dim=2, mode="grad")
    books.set_codebook(0, torch.tensor([[10.0, 0], [-10, 0], [0, 10], [0, -10]]))
    books.eval()
    even = books(books.codebook(0).detach().repeat(5, 1), diversity_temp=1.0)["diversity"]
    collapsed = books(books.codebook(0).detach()[:1].repeat(20, 1), diversity_temp=1.0)["diversity"]
    assert abs(even.item()) < 1e-4
    assert collapsed.item() == pytest.approx(np.log(4), abs=1e-3)


def _fit(weight: float, seed: int = 3, **kw):
    X, C, t, g = _disagree(seed=seed)
    q = QUANTIZERS.get("rqvae")(levels=2, codebook_size=4, seed=seed, device="cpu", **{**SMALL, "cf_weight": weight, **kw})
    codes = q.fit_encode(X, collab=C if weight else None)
    return q, codes, X, t, g


def test_collab_weight_pulls_quantized_vectors_toward_collaborative_partners():
    """Partners = items with the same collaborative group. Text-only codes ignore it; with cf_weight > 0 the
    quantized latents of partners end closer, and the text structure is kept."""
    q0, _, X, t, g = _fit(0.0)
    q1, _, _, _, _ = _fit(1.0)
    off, on = _knn_share(q0.quantized(X), g), _knn_share(q1.quantized(X), g)
    assert on > off + 0.2, (off, on)  # measured: 0.40 -> 0.98 (chance 0.23)
    assert _knn_share(q1.quantized(X), t) > 0.95
    assert "cf" in q1.history[-1] and q1.history[-1]["cf"] < q1.history[len(q1.history) // 3]["cf"]


def test_seeded_fit_is_deterministic():
    qa, ca, X, _, _ = _fit(1.0)
    qb, cb, _, _, _ = _fit(1.0)
    assert np.array_equal(ca, cb) and np.array_equal(qa.quantized(X), qb.quantized(X))


def test_sids_unique_after_collisions_with_collab_regularisation():
    from llmrec.data.records import Item

    n = 120
    items = {f"i{k}": Item(id=f"i{k}", title=f"item {k}") for k in range(n)}
    seqs = {f"u{u}": [f"i{(u * 7 + j * (1 + u % 3)) % n}" for j in range(6)] for u in range(150)}
    cfg = SidConfig.from_dict({"method": "rqvae", "source": "random", "vector_dim": 16, "levels": 2,
                               "codebook_size": 4, "collab_dim": 8, "rqvae": {**SMALL, "cf_weight": 0.5}})
    sm = build_sids(items, cfg, interactions=seqs)
    sm.validate()
    assert len(sm) == n and sm.build_stats["collisions_after"] == 0 and sm.build_stats["collisions_before"] > 0
    assert sm.build_stats["interactions"] == "given" and "cf" in sm.build_stats["loss_last"]


def test_missing_or_bad_collaborative_vectors_are_named():
    X, C, _, _ = _disagree()
    q = QUANTIZERS.get("rqvae")(levels=2, codebook_size=4, device="cpu", **{**SMALL, "cf_weight": 0.5})
    with pytest.raises(LlmrecError, match=r"rqvae\.cf_weight = 0\.5 needs collaborative vectors.*cf_weight: 0"):
        q.fit_encode(X)
    with pytest.raises(LlmrecError, match=r"shape \(10, 8\) but there are 256 items"):
        q.fit_encode(X, collab=C[:10])
    for method in ("rvq", "rqvae"):
        with pytest.raises(LlmrecError, match=rf"{method}\.cf_weight must be >= 0"):
            QUANTIZERS.get(method)(cf_weight=-0.1)
    with pytest.raises(LlmrecError, match=r"rvq\.cf_weight > 0 needs rvq\.mode: grad"):
        QUANTIZERS.get("rvq")(cf_weight=0.1, mode="ema")
    from llmrec.data.records import Item

    items = {f"i{k}": Item(id=f"i{k}", title=f"item {k}") for k in range(20)}
    cfg = SidConfig.from_dict({"method": "rqvae", "source": "random", "vector_dim": 8, "codebook_size": 4,
                               "rqvae": {**SMALL, "cf_weight": 0.5}})
    with pytest.raises(LlmrecError, match="cf_weight need interactions"):
        build_sids(items, cfg)  # a catalogue alone has no behaviour to align with


def test_rqvae_cf_recipe_turns_the_regularisation_on():
    cfg = load_config(SidConfig, ROOT / "recipes" / "sid" / "rqvae_cf.yaml")
    base = load_config(SidConfig, ROOT / "recipes" / "sid" / "rqvae.yaml")
    assert cfg.method == "rqvae" and cfg.source == "text" and cfg.needs_collab()
    assert cfg.rqvae.cf_weight > 0 and cfg.rqvae.diversity_weight > 0 and cfg.rqvae.mode == "grad"
    assert not base.needs_collab()  # default off
    q = cfg.make_quantizer()
    assert q.s.cf_weight == cfg.rqvae.cf_weight
