"""Every SID method behind the one interface: unique SIDs on real catalogues (text and no-text), same seed
-> same map, learned losses fall, OPQ beats PQ, saved quantizers re-encode, collaborative regularisation."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.io import LlmrecError
from llmrec.sid.build import build_sids, plain_texts
from llmrec.sid.collisions import is_prefix_free
from llmrec.sid.config import SidConfig
from llmrec.sid.quantizers import QUANTIZERS, load_quantizer, make_quantizer

# Small budgets so every method runs in seconds; recipes/sid/*.yaml hold the real settings.
FAST = {
    "rkmeans": {},
    "random": {},
    "rvq": {"rvq": {"steps": 60, "batch_size": 512, "restart_every": 20}},
    "rqvae": {"rqvae": {"steps": 60, "warmup_steps": 20, "batch_size": 512, "restart_every": 20,
                        "sinkhorn_last": True}},
    "hybrid": {"hybrid": {"vq_steps": 30}},
    "pq": {"levels": 16},
    "opq": {"levels": 16, "opq": {"opq_niter": 5}},
    "hierarchical": {},
    "words": {},
}
VECTOR_METHODS = [m for m in FAST if m != "words"]


def _config(method: str, vectors: str | None = None, **kw) -> SidConfig:
    d = {"method": method, **FAST[method], **kw}
    if vectors:
        d.update(source="npy", vectors_path=vectors)
    return SidConfig.from_dict(d)


@pytest.fixture(scope="module")
def scientific(data_root):
    from llmrec.data.loaders import load_dataset

    return load_dataset("amazon18_scientific")


@pytest.fixture(scope="module")
def sci_vectors(scientific, tmp_path_factory):
    """MiniLM vectors of the whole catalogue (embedding cache reused when warm), as a .npy."""
    from llmrec.sid.embed import embed_items

    X = embed_items(scientific.items, max_seq_length=32, common_category_share=0.5)
    path = tmp_path_factory.mktemp("vec") / "sci.npy"
    np.save(path, X)
    return str(path)


@pytest.fixture(scope="module")
def instruments(data_root):
    from llmrec.data.loaders import load_dataset

    return load_dataset("amazon18_instruments_notext")


def test_registry_lists_every_method_and_suggests():
    assert set(FAST) <= set(QUANTIZERS.names())
    with pytest.raises(LlmrecError, match="did you mean 'rqvae'"):
        SidConfig.from_dict({"method": "rqvea"})
    with pytest.raises(LlmrecError, match="collision.*did you mean 'reassign'"):
        SidConfig.from_dict({"collision": "reasign"})
    with pytest.raises(LlmrecError, match="source"):
        SidConfig.from_dict({"source": "txt"})
    with pytest.raises(LlmrecError, match="rqvae.*did you mean 'steps'"):
        SidConfig.from_dict({"method": "rqvae", "rqvae": {"stepz": 3}})
    with pytest.raises(LlmrecError, match="power of two"):
        SidConfig.from_dict({"method": "pq", "codebook_size": 100}).make_quantizer()


@pytest.mark.parametrize("method", VECTOR_METHODS + ["words"])
def test_unique_sids_on_amazon_scientific(method, scientific, sci_vectors):
    sm = build_sids(scientific, _config(method, sci_vectors))
    st = sm.build_stats
    sids = list(sm.codes.values())
    assert len(sm) == 4344 == len(set(sids)) and is_prefix_free(sids) and st["collisions_after"] == 0
    assert st["method"] == method and st["items"] == 4344
    if method not in ("random", "words", "hierarchical"):
        assert st["reconstruction_mse"] is not None and st["reconstruction_mse"] < 1.0  # unit vectors
    if method == "pq":
        assert sm.num_levels >= 16
    if method == "words":  # readable tokens made of the item's own words
        item = scientific.items[sm.item_ids[0]]
        words = sm.tokens(sm.item_ids[0])[0][3:-1]
        assert words in (item.title + " " + " ".join(item.categories) + " " + item.brand).lower()


@pytest.mark.parametrize("method", VECTOR_METHODS)
def test_unique_sids_on_notext_collaborative(method, instruments):
    sm = build_sids(instruments, _config(method, source="collaborative", vector_dim=32))
    sids = list(sm.codes.values())
    assert len(sm) == len(instruments.items) == len(set(sids)) and is_prefix_free(sids)
    assert sm.build_stats["interactions"] == "all dataset interactions"


def test_words_on_notext_fails_clearly(instruments):
    with pytest.raises(LlmrecError, match="needs item text"):
        build_sids(instruments, _config("words", source="collaborative"))


@pytest.fixture(scope="module")
def small(sci_vectors, scientific):
    ids = list(scientific.items)[:600]
    X = np.load(sci_vectors)[:600]
    return {i: scientific.items[i] for i in ids}, X


@pytest.mark.parametrize("method", VECTOR_METHODS + ["words"])
def test_same_seed_same_map_and_saved_quantizer_reencodes(method, small, tmp_path):
    items, X = small
    np.save(tmp_path / "x.npy", X)
    cfg = _config(method, str(tmp_path / "x.npy"), codebook_size=None if method in ("pq", "opq", "hierarchical",
                                                                                     "words") else 32)
    a = build_sids(items, cfg, out_dir=tmp_path / "sid")
    b = build_sids(items, cfg)
    assert a.codes == b.codes and a.fingerprint == b.fingerprint
    q = load_quantizer(tmp_path / "sid" / "quantizer")
    inputs = plain_texts(items, 0.5) if q.needs_text else X
    trained = a.quantizer.encode(inputs)
    assert np.array_equal(q.encode(inputs), trained)  # the saved state gives the training codes back
    assert (tmp_path / "sid" / "utilization.png").exists() and (tmp_path / "sid" / "stats.json").exists()
    if q.history:
        assert (tmp_path / "sid" / "loss.png").stat().st_size > 1000


@pytest.mark.parametrize("method", ["rvq", "rqvae"])
def test_learned_losses_fall(method, small):
    _, X = small
    kw = {"steps": 150, "batch_size": 256, "lr": 3e-3, "kmeans_init": False}  # from random codebooks
    if method == "rqvae":
        kw["warmup_steps"] = 0  # the joint phase alone must learn
    q = make_quantizer(method, 3, 32, 0, **kw)
    q.fit_encode(X)
    first, last = q.history[0]["recon"], q.history[-1]["recon"]
    assert last < 0.9 * first, (first, last)


def test_rvq_ema_mode_and_sinkhorn_balance(small):
    _, X = small
    plain = make_quantizer("rvq", 2, 16, 0, steps=40, mode="ema").fit_encode(X)
    balanced = make_quantizer("rvq", 2, 16, 0, steps=40, mode="ema", sinkhorn_last=True).fit_encode(X)
    top = lambda c: np.bincount(c, minlength=16).max()
    assert top(balanced[:, 1]) < top(plain[:, 1])


def test_opq_reconstructs_better_than_pq(sci_vectors):
    X = np.load(sci_vectors)
    pq = make_quantizer("pq", 16, 64, 0)
    opq = make_quantizer("opq", 16, 64, 0, opq_niter=10)
    pq.fit_encode(X)
    opq.fit_encode(X)
    assert opq.reconstruction_mse < 0.95 * pq.reconstruction_mse


def test_hybrid_levels_compose(small):
    _, X = small
    q = make_quantizer("hybrid", 3, [8, 8, 16], 0, kinds=["bkmeans", "kmeans", "hash"])
    codes = q.fit_encode(X)
    assert codes.shape == (600, 3) and np.bincount(codes[:, 0]).max() <= 75  # balanced level: ceil(600/8)
    assert len(np.unique(codes[:, 2])) == 16  # the hash level spreads over every code
    with pytest.raises(LlmrecError, match="did you mean 'kmeans'"):
        make_quantizer("hybrid", 2, 8, 0, kinds=["kmean", "hash"])


def test_hierarchical_is_variable_length_with_small_leaves():
    X = np.random.default_rng(0).standard_normal((600, 16)).astype(np.float32)
    q = make_quantizer("hierarchical", 8, 4, 0, leaf_size=5)
    paths = q.fit_encode(X)
    depth = (paths >= 0).sum(1)
    assert depth.min() < depth.max()  # variable length
    _, per_leaf = np.unique(paths, axis=0, return_counts=True)
    assert per_leaf.max() <= 5  # every leaf holds at most leaf_size items
    sm = build_sids(_items(600),
                    SidConfig.from_dict({"method": "hierarchical", "source": "random", "vector_dim": 16,
                                         "codebook_size": 4, "hierarchical": {"leaf_size": 5}}))
    assert len({len(c) for c in sm.codes.values()}) > 1 and sm.build_stats["variable_length"]


def _items(n: int) -> dict:
    from llmrec.data.records import Item

    return {f"i{k}": Item(id=f"i{k}", title=f"item {k}") for k in range(n)}


def test_collaborative_regularisation_and_fused_vectors(scientific, sci_vectors, tmp_path):
    from llmrec.sid.vectors import fuse_vectors

    t = np.load(sci_vectors)[:50]
    c = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    f = fuse_vectors(t, c, weight=0.25)
    assert f.shape == (50, 392) and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(f[:, 384:], axis=1), 0.5, atol=1e-5)
    with pytest.raises(LlmrecError, match="weight"):
        fuse_vectors(t, c, weight=1.5)
    cfg = _config("rqvae", sci_vectors, codebook_size=64, rqvae={"steps": 120, "warmup_steps": 20, "batch_size": 512,
                                                                 "cf_weight": 0.5, "diversity_weight": 0.1})
    sm = build_sids(scientific, cfg)
    first, last = sm.quantizer.history[len(sm.quantizer.history) // 4], sm.quantizer.history[-1]
    assert "cf" in last and last["cf"] < first["cf"] and last["diversity"] >= 0
    assert sm.build_stats["interactions"] == "all dataset interactions"
