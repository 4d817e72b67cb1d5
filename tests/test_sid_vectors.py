"""Item vectors without text: .npy (validated), collaborative, category, random."""

import json

import numpy as np
import pytest

from llmrec.data.records import Item
from llmrec.io import LlmrecError
from llmrec.sid.vectors import category_vectors, collaborative_vectors, load_npy_vectors, random_vectors

IDS = [str(i) for i in range(30)]


def test_npy_aligned_and_reordered(tmp_path):
    X = np.arange(30 * 4, dtype=np.float64).reshape(30, 4) + 1
    np.save(tmp_path / "v.npy", X)
    out = load_npy_vectors(tmp_path / "v.npy", IDS)
    assert out.shape == (30, 4) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1)
    (tmp_path / "ids.json").write_text(json.dumps(IDS[::-1]))
    rev = load_npy_vectors(tmp_path / "v.npy", IDS, ids_path=tmp_path / "ids.json")
    assert np.allclose(rev, out[::-1])


def test_npy_errors_are_clear(tmp_path):
    np.save(tmp_path / "short.npy", np.ones((29, 4)))
    with pytest.raises(LlmrecError, match=r"29 rows but the catalogue has 30 items"):
        load_npy_vectors(tmp_path / "short.npy", IDS)
    np.save(tmp_path / "flat.npy", np.ones(30))
    with pytest.raises(LlmrecError, match="2-D"):
        load_npy_vectors(tmp_path / "flat.npy", IDS)
    bad = np.ones((30, 4))
    bad[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(LlmrecError, match="NaN"):
        load_npy_vectors(tmp_path / "nan.npy", IDS)
    np.save(tmp_path / "ok.npy", np.ones((30, 4)))
    (tmp_path / "ids.txt").write_text("\n".join(IDS[:-1] + ["zzz"]))
    with pytest.raises(LlmrecError, match="no vector row"):
        load_npy_vectors(tmp_path / "ok.npy", IDS, ids_path=tmp_path / "ids.txt")
    with pytest.raises(LlmrecError, match="not found"):
        load_npy_vectors(tmp_path / "missing.npy", IDS)


def test_collaborative_vectors_shape_and_signal():
    rng = np.random.default_rng(0)
    # two communities: users of group A only touch items 0..14, group B 15..29; item 29 never seen
    seqs = {}
    for u in range(200):
        pool = IDS[:15] if u % 2 else IDS[15:29]
        seqs[f"u{u}"] = list(rng.choice(pool, 8))
    X = collaborative_vectors(seqs, IDS, dim=8)
    assert X.shape == (30, 8) and X.dtype == np.float32
    assert np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    sim = X @ X.T
    within = sim[:15, :15][~np.eye(15, dtype=bool)].mean()
    across = sim[:15, 15:29].mean()
    assert within > across + 0.2


def test_category_and_random_vectors():
    items = {i: Item(id=i, categories=["Lab", "Glass" if int(i) % 2 else "Tools"], brand="b" + str(int(i) % 3))
             for i in IDS}
    X = category_vectors(items, dim=16)
    assert X.shape == (30, 16) and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    assert np.allclose(X[0], X[6])  # same category path and brand
    R = random_vectors(30, 16, seed=3)
    assert R.shape == (30, 16) and np.array_equal(R, random_vectors(30, 16, seed=3))
