"""sasrec-sid and h2rec: rank only catalogue items, learn from the training split only, round-trip
through the run cache; H2Rec's alignment losses behave on hand-made cases."""

from __future__ import annotations

import random

import pytest
import torch

from llmrec.baselines.h2rec import H2Rec, info_nce
from llmrec.baselines.registry import BaselineContext, baseline_config, build_baseline
from llmrec.baselines.sasrec_sid import SASRecSID, train_sasrec_sid
from llmrec.baselines.sid_embed import SidEmbedding
from llmrec.data.records import Example, Interaction, Item, RecDataset, Split
from llmrec.data.store import PreparedData
from llmrec.io import LlmrecError
from llmrec.sid.sidmap import SidMap

N_REG = 30
LEAK_VALID = ["x0", "x1"]  # targets of some valid examples only
LEAK_TEST = ["x2", "x3"]  # targets of every test example only
TINY = {"hidden": 32, "epochs": 20, "patience": 4, "seed": 3, "batch_size": 64, "lr": 5e-3}


def _prepared() -> PreparedData:
    """Users walk i -> i+1 (mod 30) in training. A fifth of the valid targets and every test target
    are items that never occur in training: a model that learned from valid/test would rank them
    high for those histories, one trained on the training split never sees them as positives."""
    regular = [f"i{j}" for j in range(N_REG)]
    items = {x: Item(x, title=x) for x in regular + LEAK_VALID + LEAK_TEST}
    rng = random.Random(0)
    train, valid, test = {}, [], []
    for u in range(150):
        s, length = rng.randrange(N_REG), rng.randint(5, 9)
        seq = [regular[(s + t) % N_REG] for t in range(length)]
        user = f"u{u}"
        train[user] = [Interaction(user, x, position=p) for p, x in enumerate(seq)]
        vt = LEAK_VALID[u % 2] if u % 5 == 0 else regular[(s + length) % N_REG]
        valid.append(Example(user, list(seq), vt))
        test.append(Example(user, [*seq, vt], LEAK_TEST[u % 2]))
    inter = [x for seq in train.values() for x in seq]
    data = RecDataset("toy", items, inter)
    return PreparedData(data, Split(train, valid, test), {"fingerprint": "toy-fp", "name": "toy"})


def _sid_map(extra: dict | None = None) -> SidMap:
    """Regular items (j // 5, j % 5, 0); leak items use codes no regular item has; plus a
    non-catalogue item, which the models must never return."""
    codes = {f"i{j}": (j // 5, j % 5, 0) for j in range(N_REG)}
    codes.update({x: (6, 5 + k, 1) for k, x in enumerate(LEAK_VALID + LEAK_TEST)})
    codes["ghost"] = (6, 0, 0)
    codes.update(extra or {})
    return SidMap(codes, [7, 9, 2])


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("run")
    (run / "sid").mkdir()
    _sid_map().save(run / "sid" / "sid_map.json")
    prepared = _prepared()
    built = {}
    for name in ("sasrec", "sasrec-sid", "h2rec"):
        ctx = BaselineContext(run=run, prepared=prepared, progress=False)
        built[name] = build_baseline(name, ctx, baseline_config(name, values=TINY))
    yield run, prepared, built
    torch.set_num_threads(threads)


def _leak_rate(ranker, examples, k=10) -> float:
    """Share of examples whose never-trained target item is in the top k. Only histories of
    training items count: after an unseen item a tied SID model rightly ranks items sharing its
    codes first (the x items share their first code), which is sharing, not leakage."""
    examples = [e for e in examples if all(x.startswith("i") for x in e.history)]
    ranked = ranker.rank(examples, k)
    return sum(e.target in r for e, r in zip(examples, ranked)) / len(examples)


@pytest.mark.parametrize("name", ["sasrec", "sasrec-sid", "h2rec"])
def test_ranks_catalogue_items_only_and_learns_the_pattern(toy, name):
    _, prepared, built = toy
    ranker = built[name].ranker
    catalogue = set(prepared.items)
    ranked = ranker.rank(prepared.split.test, 10)
    assert all(len(r) == 10 and len(set(r)) == 10 and set(r) <= catalogue for r in ranked)
    assert not any("ghost" in r for r in ranked)
    # the training pattern is learned: after i_j, i_(j+1) is ranked first for most users
    pairs = [(r, f"i{(int(e.history[-1][1:]) + 1) % N_REG}") for e, r in zip(prepared.split.test, ranked)
             if e.history[-1].startswith("i")]
    assert sum(r[0] == t for r, t in pairs) / len(pairs) > 0.6
    assert built[name].info["train"]["best_valid_ndcg@10"] > 0.3


@pytest.mark.parametrize("name", ["sasrec", "sasrec-sid", "h2rec"])
def test_no_valid_or_test_leakage(toy, name):
    _, prepared, built = toy
    ranker = built[name].ranker
    leaky_valid = [e for e in prepared.split.valid if e.target in LEAK_VALID]
    assert _leak_rate(ranker, prepared.split.test) == 0.0
    assert _leak_rate(ranker, leaky_valid) == 0.0


def test_the_leak_check_catches_a_model_trained_on_test(toy):
    """Control: the same model trained with the test targets appended does rank them (so the check
    above can fail)."""
    from llmrec.baselines.configs import SASRecSIDConfig
    from llmrec.baselines.train_loop import SequentialRanker

    _, prepared, built = toy

    model = built["sasrec-sid"].ranker.model
    leaked = [[*e.history, e.target] for e in prepared.split.test]
    cheat, _ = train_sasrec_sid(leaked, model.item_ids, model.codes_list, model.level_sizes,
                                prepared.split.valid, SASRecSIDConfig(**TINY), progress=False)
    assert _leak_rate(SequentialRanker(cheat), prepared.split.test) > 0.5


def test_cache_reuse_and_sid_change(toy, monkeypatch):
    run, prepared, built = toy
    import llmrec.baselines.train_loop as tl

    def no_training(*a, **k):
        raise AssertionError("trained again instead of using the cache")

    monkeypatch.setattr(tl, "train_sequential", no_training)
    monkeypatch.setattr("llmrec.baselines.sasrec_sid.train_sequential", no_training)
    monkeypatch.setattr("llmrec.baselines.h2rec.train_sequential", no_training)
    ctx = BaselineContext(run=run, prepared=prepared, progress=False)
    for name in ("sasrec-sid", "h2rec"):
        again = build_baseline(name, ctx, baseline_config(name, values=TINY))
        ex = prepared.split.test[:5]
        assert again.ranker.rank(ex, 5) == built[name].ranker.rank(ex, 5)
    loaded = SASRecSID.load(run / "baselines" / "sasrec-sid")
    assert loaded.codes_list == built["sasrec-sid"].ranker.model.codes_list
    # a different SID map is another input: the cached model no longer fits, so it would retrain
    other = run.parent / "run_other"
    (other / "sid").mkdir(parents=True)
    (other / "baselines").symlink_to(run / "baselines", target_is_directory=True)
    _sid_map({"i0": (0, 0, 1)}).save(other / "sid" / "sid_map.json")
    with pytest.raises(AssertionError, match="trained again"):
        build_baseline("sasrec-sid", BaselineContext(run=other, prepared=prepared, progress=False),
                       baseline_config("sasrec-sid", values=TINY))


def test_missing_sid_is_a_clear_error(tmp_path):
    (tmp_path / "sid").mkdir()
    codes = {f"i{j}": (j // 5, j % 5, 0) for j in range(N_REG)}  # no SIDs for the x items
    SidMap(codes, [7, 9, 2]).save(tmp_path / "sid" / "sid_map.json")
    ctx = BaselineContext(run=tmp_path, prepared=_prepared(), progress=False)
    with pytest.raises(LlmrecError, match="4 catalogue items have no SID.*llmrec sid build"):
        build_baseline("h2rec", ctx)
    with pytest.raises(LlmrecError, match="sid_map.json not found"):
        build_baseline("sasrec-sid", BaselineContext(run=tmp_path / "nope", prepared=_prepared()))


def test_sid_embedding_sums_codes():
    emb = SidEmbedding([[0, 1], [2], [0, 0]], [3, 2], hidden=4)
    w = emb.emb.weight
    got = emb(torch.tensor([[0, 1, 2, 3]]))[0]
    assert torch.equal(got[0], torch.zeros(4))  # padding
    assert torch.allclose(got[1], w[1 + 0] + w[1 + 3 + 1])
    assert torch.allclose(got[2], w[1 + 2])  # a shorter SID adds nothing for the missing level
    assert torch.allclose(got[3], w[1 + 0] + w[1 + 3 + 0])
    assert torch.allclose(emb.all_items(), got[1:])


def test_info_nce_zero_when_aligned_positive_otherwise():
    eye = torch.eye(4, 8)
    assert info_nce(eye, eye, 0.01) < 1e-6  # each pair identical, all others orthogonal
    assert info_nce(eye, eye[[1, 0, 3, 2]], 0.01) > 10  # every positive is orthogonal, a negative identical
    assert info_nce(eye[:1], torch.randn(1, 8), 0.5) == 0  # one pair: nothing to contrast
    a, b = torch.randn(16, 8), torch.randn(16, 8)
    assert info_nce(a, b, 0.2) > 0 and info_nce(a, a, 0.2) < info_nce(a, b, 0.2)


def test_h2rec_alignment_losses_on_hand_made_vectors():
    from llmrec.baselines.configs import H2RecConfig

    cfg = H2RecConfig(hidden=8, max_len=4, temperature=0.01, item_align_weight=0.5, user_align_weight=0.25)
    model = H2Rec(["a", "b", "c", "d"], [[0], [1], [2], [3]], [4], cfg)
    with torch.no_grad():
        model.sid_emb.emb.weight[1:5] = torch.eye(4, 8)
        model.hid_emb.weight[1:5] = torch.eye(4, 8)  # every item's HID = its SID vector
    inp = torch.tensor([[0, 1, 2], [1, 2, 3]])
    tgt = torch.tensor([[1, 2, 3], [2, 3, 4]])
    keep = (inp > 0) & (tgt > 0)
    u = torch.eye(2, 8)
    h = torch.cat([u, u], dim=-1).unsqueeze(1).expand(2, 3, 16)  # both branches agree per window
    losses = model.aux_losses(inp, h, tgt, keep)
    assert losses["item_align"][0] == 0.5 and losses["user_align"][0] == 0.25
    assert losses["item_align"][1] < 1e-6 and losses["user_align"][1] < 1e-6
    with torch.no_grad():
        model.hid_emb.weight[1:5] = torch.eye(4, 8)[[1, 0, 3, 2]]  # HIDs swapped between items
    h_bad = torch.cat([u, u[[1, 0]]], dim=-1).unsqueeze(1).expand(2, 3, 16)
    bad = model.aux_losses(inp, h_bad, tgt, keep)
    assert bad["item_align"][1] > 10 and bad["user_align"][1] > 10
    off = H2Rec(["a", "b"], [[0], [1]], [2], H2RecConfig(hidden=8, item_align_weight=0, user_align_weight=0))
    assert off.aux_losses(inp[:, :1], h[:, :1, :], tgt[:, :1].clamp(max=2), keep[:, :1]) == {}
