"""Residual k-means (faiss): determinism, balanced caps, utilisation, quantizer interface."""

import math

import numpy as np
import pytest

from llmrec.io import LlmrecError
from llmrec.sid.quantizers import make_quantizer
from llmrec.sid.rkmeans import ResidualKMeans, capacity_assign, level_sizes, utilization


def _clustered(n=3000, d=32, centers=20, seed=0):
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((centers, d)).astype(np.float32) * 3
    # very unbalanced cluster sizes, so an unconstrained k-means would overfill codes
    sizes = rng.dirichlet(np.full(centers, 0.3))
    lab = rng.choice(centers, n, p=sizes)
    return (C[lab] + rng.standard_normal((n, d)).astype(np.float32) * 0.3).astype(np.float32)


def test_deterministic_with_seed():
    X = _clustered()
    a = ResidualKMeans(levels=3, codebook_size=32, seed=7).fit_encode(X)
    b = ResidualKMeans(levels=3, codebook_size=32, seed=7).fit_encode(X)
    assert a.shape == (len(X), 3) and a.dtype == np.int64
    assert np.array_equal(a, b)


def test_balanced_cap_and_utilisation():
    X = _clustered()
    K = [16, 32, 64]
    q = ResidualKMeans(levels=3, codebook_size=K, balanced=True)
    codes = q.fit_encode(X)
    for lvl, k in enumerate(K):
        assert np.bincount(codes[:, lvl], minlength=k).max() <= math.ceil(len(X) / k)
    assert all(u >= 0.9 for u in utilization(codes, K))
    unbalanced = ResidualKMeans(levels=1, codebook_size=16, balanced=False).fit_encode(X)
    assert np.bincount(unbalanced[:, 0]).max() > math.ceil(len(X) / 16)  # the cap really did something


def test_capacity_assign_is_feasible_and_prefers_near():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((1001, 8)).astype(np.float32)
    C = rng.standard_normal((10, 8)).astype(np.float32)
    a = capacity_assign(X, C, topk=3)
    assert a.min() >= 0 and np.bincount(a, minlength=10).max() <= 101
    d = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    assert (a == d.argmin(1)).mean() > 0.5


def test_encode_new_points_and_interface():
    X = _clustered(n=600)
    q = make_quantizer("rkmeans", levels=2, codebook_size=8, seed=42)
    q.fit(X)
    codes = q.encode(X[:5])
    assert codes.shape == (5, 2) and codes.max() < 8
    assert q.config["type"] == "rkmeans" and q.config["codebook_sizes"] == [8, 8]
    assert set(q.codebooks()) == {"level_0", "level_1"}
    assert set(ResidualKMeans(levels=2, codebook_size=8).fit(X).codebooks()) == {"level_0", "level_1"}


def test_fewer_points_than_codes():
    X = _clustered(n=10, d=4)
    codes = ResidualKMeans(levels=2, codebook_size=64).fit_encode(X)
    assert codes.shape == (10, 2) and codes.max() < 64


def test_random_quantizer_and_errors():
    X = np.zeros((100, 4), dtype=np.float32)
    X[:, 0] = np.arange(100)  # distinct rows: the random baseline hashes each row's bytes
    q = make_quantizer("random", levels=3, codebook_size=[4, 5, 6], seed=1)
    c = q.fit_encode(X)
    assert c.shape == (100, 3) and (c.max(0) < [4, 5, 6]).all()
    assert np.array_equal(c, make_quantizer("random", levels=3, codebook_size=[4, 5, 6], seed=1).fit_encode(X))
    with pytest.raises(LlmrecError, match="levels"):
        ResidualKMeans(levels=2, codebook_size=[4, 4, 4])
    with pytest.raises(LlmrecError, match="at most"):
        level_sizes(3, 4, max_levels=2)
    with pytest.raises(LlmrecError, match="vq-vae"):
        make_quantizer("vq-vae", levels=3, codebook_size=4, seed=1)
    with pytest.raises(LlmrecError, match="no vectors"):
        ResidualKMeans().fit(np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(LlmrecError, match="2-D"):
        ResidualKMeans().fit(np.zeros(5, dtype=np.float32))
