"""Item vectors for catalogues without text: a user .npy, collaborative, category, or random vectors.

All functions return float32 [len(item_ids), dim] with L2-normalised rows, aligned to `item_ids`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from llmrec.data.records import Item
from llmrec.io import LlmrecError


def l2_normalize(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(n, 1e-12)


def _read_ids(path: Path) -> list[str]:
    if path.suffix == ".json":
        obj = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(obj, dict):  # {item_id: row}
            return [str(k) for k, _ in sorted(obj.items(), key=lambda kv: int(kv[1]))]
        if not isinstance(obj, list):
            raise LlmrecError(f"{path}: expected a JSON list of item ids (row order) or {{item_id: row}}")
        return [str(x) for x in obj]
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_npy_vectors(path: str | Path, item_ids: Sequence[str], ids_path: str | Path | None = None,
                     normalize: bool = True) -> np.ndarray:
    """Rows of a user .npy, aligned to `item_ids`.

    Without `ids_path` row i belongs to item_ids[i]. With `ids_path` (a .json list / {id: row}
    map, or a text file with one id per line) rows are re-ordered to `item_ids`; every catalogue
    item must be listed.
    """
    path = Path(path)
    if not path.exists():
        raise LlmrecError(f"item vectors file not found: {path}")
    try:
        X = np.load(path, allow_pickle=False)
    except Exception as e:
        raise LlmrecError(f"{path}: not a readable .npy array ({e}); save it with numpy.save") from e
    if X.ndim != 2:
        raise LlmrecError(f"{path}: expected a 2-D array [items, dim], got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise LlmrecError(f"{path}: expected numbers, got dtype {X.dtype}")
    if ids_path is not None:
        ids = _read_ids(Path(ids_path))
        if len(ids) != X.shape[0]:
            raise LlmrecError(f"{ids_path}: lists {len(ids)} ids but {path} has {X.shape[0]} rows; "
                              "they must match one to one")
        row = {i: n for n, i in enumerate(ids)}
        missing = [i for i in item_ids if str(i) not in row]
        if missing:
            raise LlmrecError(f"{ids_path}: {len(missing)} catalogue items have no vector row "
                              f"(e.g. {missing[:5]}); add them or drop them from the catalogue")
        X = X[[row[str(i)] for i in item_ids]]
    elif X.shape[0] != len(item_ids):
        raise LlmrecError(f"{path}: has {X.shape[0]} rows but the catalogue has {len(item_ids)} items; "
                          "give one row per item in catalogue order, or pass an id list (vectors_ids)")
    X = X.astype(np.float32)
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise LlmrecError(f"{path}: {int(bad.sum())} rows contain NaN/inf (first row {int(np.argmax(bad))})")
    return l2_normalize(X) if normalize else X


def _fill_empty(X: np.ndarray, seed: int) -> np.ndarray:
    """Rows that are all zero get small random vectors so they still receive distinct codes."""
    empty = ~np.any(X, axis=1)
    if empty.any():
        rng = np.random.default_rng(seed)
        X[empty] = rng.standard_normal((int(empty.sum()), X.shape[1])).astype(np.float32)
    return X


def _svd(M, dim: int, seed: int) -> np.ndarray:
    """Left singular vectors scaled by sqrt(singular values) (dense fallback when small)."""
    from scipy.sparse.linalg import svds

    n = min(M.shape)
    k = min(dim, n - 1)
    if k < 1:
        return np.asarray(M.todense() if hasattr(M, "todense") else M, dtype=np.float32)
    rng = np.random.default_rng(seed)
    v0 = rng.uniform(-1, 1, min(M.shape)).astype(np.float64)
    U, S, _ = svds(M.astype(np.float64), k=k, v0=v0, random_state=seed)
    order = np.argsort(-S)
    return (U[:, order] * np.sqrt(S[order])[None, :]).astype(np.float32)


def collaborative_vectors(sequences: Mapping[str, Sequence[str]], item_ids: Sequence[str], dim: int = 64,
                          window: int = 5, seed: int = 42) -> np.ndarray:
    """Item vectors from co-occurrence within user sequences: PPMI matrix -> truncated SVD.

    Pairs count when two items are at most `window` positions apart in a user's sequence. Pass
    only training sequences (no valid/test targets) to avoid leakage. Items never seen get random
    vectors.
    """
    import scipy.sparse as sp

    index = {str(i): n for n, i in enumerate(item_ids)}
    n = len(index)
    rows, cols = [], []
    for seq in sequences.values():
        idx = [index[str(x)] for x in seq if str(x) in index]
        for off in range(1, window + 1):
            if len(idx) > off:
                rows.extend(idx[:-off])
                cols.extend(idx[off:])
    if rows:
        r = np.asarray(rows, dtype=np.int64)
        c = np.asarray(cols, dtype=np.int64)
        keep = r != c
        r, c = r[keep], c[keep]
        data = np.ones(2 * r.size, dtype=np.float64)
        C = sp.coo_matrix((data, (np.concatenate([r, c]), np.concatenate([c, r]))), shape=(n, n)).tocsr()
        C.sum_duplicates()
    else:
        C = sp.csr_matrix((n, n), dtype=np.float64)
    total = C.sum()
    if total > 0:
        row_sum = np.asarray(C.sum(axis=1)).ravel()
        col_sum = np.asarray(C.sum(axis=0)).ravel() ** 0.75  # context smoothing (word2vec style)
        col_sum *= row_sum.sum() / max(col_sum.sum(), 1e-12)
        coo = C.tocoo()
        pmi = np.log(coo.data * total / (row_sum[coo.row] * col_sum[coo.col]))
        keep = pmi > 0
        M = sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n, n))
        X = _svd(M, dim, seed)
    else:
        X = np.zeros((n, dim), dtype=np.float32)
    if X.shape[1] < dim:
        X = np.pad(X, ((0, 0), (0, dim - X.shape[1])))
    return l2_normalize(_fill_empty(X, seed))


def category_vectors(items: Mapping[str, Item], item_ids: Sequence[str] | None = None, dim: int = 64,
                     include_brand: bool = True, buckets: int = 1 << 16, seed: int = 42) -> np.ndarray:
    """Hashed multi-hot of categories (every path prefix, so 'A > B' also counts 'A') and brand,
    idf-weighted, reduced to `dim` by truncated SVD. Items without any category get random rows."""
    import zlib

    import scipy.sparse as sp

    ids = list(item_ids) if item_ids is not None else list(items)
    rows, cols = [], []
    for n, i in enumerate(ids):
        it = items[str(i)]
        cats = it.categories if isinstance(it.categories, (list, tuple)) else [it.categories]
        feats = set()
        path = []
        for c in cats:
            c = str(c).strip()
            if c:
                path.append(c)
                feats.add("cat:" + c)
                feats.add("path:" + " > ".join(path))
        if "category_id" in it.features:
            feats.add(f"cat:{it.features['category_id']}")
        if include_brand and it.brand:
            feats.add("brand:" + it.brand.strip().lower())
        for f in feats:
            rows.append(n)
            cols.append(zlib.crc32(f.encode()) % buckets)
    M = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), buckets))
    M.data[:] = 1.0
    M = M[:, np.unique(cols)] if cols else M[:, :1]
    df = np.asarray((M > 0).sum(axis=0)).ravel()
    M = M @ sp.diags(np.log((1 + len(ids)) / (1 + df)) + 1.0)
    if M.shape[1] <= dim:
        X = np.asarray(M.todense(), dtype=np.float32)
        X = np.pad(X, ((0, 0), (0, dim - X.shape[1])))
    else:
        X = _svd(sp.csr_matrix(M), dim, seed)
        if X.shape[1] < dim:
            X = np.pad(X, ((0, 0), (0, dim - X.shape[1])))
    return l2_normalize(_fill_empty(X, seed))


def random_vectors(n: int, dim: int = 64, seed: int = 42) -> np.ndarray:
    """Baseline: iid Gaussian rows, L2-normalised."""
    rng = np.random.default_rng(seed)
    return l2_normalize(rng.standard_normal((n, dim), dtype=np.float32))


def fuse_vectors(text: np.ndarray, collab: np.ndarray, weight: float = 0.3, normalize: str = "l2") -> np.ndarray:
    """[text | collaborative] side by side: each part normalised (`l2` rows; `zscore` columns then rows;
    `none`), then scaled by sqrt(1 - weight) and sqrt(weight), so `weight` is the collaborative share
    of every squared distance (rows have unit norm with l2 / zscore)."""
    if len(text) != len(collab):
        raise LlmrecError(f"fuse_vectors: {len(text)} text rows but {len(collab)} collaborative rows")
    if not 0.0 <= weight <= 1.0:
        raise LlmrecError(f"fusion weight must be in [0, 1], got {weight}")

    def norm(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if normalize == "zscore":
            X = (X - X.mean(0)) / np.maximum(X.std(0), 1e-6)
        return l2_normalize(X) if normalize in ("l2", "zscore") else X

    return np.concatenate([np.sqrt(1 - weight) * norm(text), np.sqrt(weight) * norm(collab)], axis=1).astype(np.float32)
