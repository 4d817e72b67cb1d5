"""Collision handling: distinct, prefix-free SIDs with extra_token and reassign, on adversarial input."""

import numpy as np
import pytest

from llmrec.io import LlmrecError
from llmrec.sid.collisions import count_collisions, is_prefix_free, resolve_collisions
from llmrec.sid.rkmeans import ResidualKMeans
from llmrec.sid.sidmap import SidMap


def _dupes(n_same=40, n_rand=200, d=16, seed=0):
    rng = np.random.default_rng(seed)
    same = np.repeat(rng.standard_normal((1, d)), n_same, axis=0)
    pairs = np.repeat(rng.standard_normal((20, d)), 2, axis=0)  # 20 identical pairs
    return np.concatenate([same, pairs, rng.standard_normal((n_rand, d))]).astype(np.float32)


@pytest.mark.parametrize("method", ["extra_token", "reassign"])
def test_identical_vectors_get_distinct_prefix_free_sids(method):
    X = _dupes()
    q = ResidualKMeans(levels=3, codebook_size=16, balanced=False)
    codes = q.fit_encode(X)
    assert count_collisions(codes) >= 39
    sids, rep = resolve_collisions(codes, q.level_sizes, method, lambda r: q.last_level_costs(X, r, codes))
    assert len(set(sids)) == len(X) and is_prefix_free(sids)
    assert rep.collisions_before == count_collisions(codes) and rep.collisions_after == 0
    SidMap(dict(enumerate(sids))).validate()
    if method == "extra_token":
        assert rep.used == "extra_token"
        touched = [i for i, s in enumerate(sids) if len(s) == 4]
        assert len(touched) == rep.items_touched
        # only colliding items got the extra level, and they keep their original codes
        for i in touched:
            assert (codes[i] == codes).all(1).sum() > 1 and tuple(codes[i]) == sids[i][:3]
        assert rep.extra_level_size >= 40
    else:
        assert rep.used.startswith("reassign")


def test_reassign_keeps_fixed_length_when_room():
    codes = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 3], [1, 0, 0]])
    cost = np.tile(np.arange(8, dtype=np.float32), (5, 1))
    sids, rep = resolve_collisions(codes, [2, 2, 8], "reassign", lambda rows: cost[rows])
    assert rep.used == "reassign" and rep.items_touched == 2 and rep.collisions_after == 0
    assert all(len(s) == 3 for s in sids)
    assert sids[3] == (0, 1, 3) and sids[4] == (1, 0, 0)  # untouched
    assert sorted(s[2] for s in sids[:3]) == [0, 1, 2]  # cheapest free codes; 3 was taken


def test_reassign_falls_back_when_prefix_is_full():
    codes = np.array([[0, 0]] * 5 + [[1, 0]] * 2)
    sids, rep = resolve_collisions(codes, [2, 3], "reassign")
    assert rep.used == "reassign+extra_token" and rep.fallback_prefixes == 1
    assert len(set(sids)) == 7 and is_prefix_free(sids)
    assert [len(s) for s in sids] == [3] * 5 + [2, 2]


def test_no_collisions_is_a_no_op_and_bad_method():
    codes = np.array([[0, 1], [1, 0]])
    sids, rep = resolve_collisions(codes, [2, 2], "extra_token")
    assert sids == [(0, 1), (1, 0)] and rep.used == "none" and rep.items_touched == 0
    with pytest.raises(LlmrecError, match="collision method"):
        resolve_collisions(codes, [2, 2], "sinkhorn")
