"""Splits on real data: sizes, truncation, and no leakage of held-out events into training."""

from __future__ import annotations

import argparse

import pytest

from llmrec.data.loaders import load_dataset
from llmrec.data.prepare import prepare_data
from llmrec.data.records import Interaction, Item, RecDataset
from llmrec.data.splits import leave_one_out, make_split, native_split, time_split
from llmrec.data.store import load_prepared
from llmrec.io import LlmrecError


@pytest.fixture(scope="module")
def sci(data_root):
    return load_dataset("amazon18_scientific")


@pytest.fixture(scope="module")
def ml(data_root):
    return load_dataset("movielens_100k")


def test_loo_structure_and_no_leakage(sci):
    sp = leave_one_out(sci)
    seqs = sci.sequences()
    assert len(sp.valid) == len(sp.test) == 8317 and len(sp.train) == 8317
    valid = {e.user: e for e in sp.valid}
    for t in sp.test:
        seq = [x.item for x in seqs[t.user]]
        v = valid[t.user]
        train = [x.item for x in sp.train[t.user]]
        assert t.target == seq[-1] and v.target == seq[-2]
        assert train == seq[:-2]                  # train ends before the valid event
        assert v.history == train                 # valid history = all training events
        assert t.history == train + [v.target]
    # held-out target events are never training targets: train holds only positions < len-2
    n_train_targets = sum(len(s) - 1 for s in sp.train.values())
    assert len(sp.train_examples()) == n_train_targets
    assert sum(len(s) for s in sp.train.values()) + 2 * 8317 == 58492


def test_loo_max_history(sci):
    sp = leave_one_out(sci, max_history=3)
    assert max(len(e.history) for e in sp.test) == 3
    full = {e.user: e for e in leave_one_out(sci).test}
    for e in sp.test[:200]:
        assert e.history == full[e.user].history[-3:]
    assert sp.options["max_history"] == 3
    with pytest.raises(LlmrecError, match="max_history"):
        leave_one_out(sci, max_history=0)


def _tiny() -> RecDataset:
    inter = []
    for user, n in (("a", 1), ("b", 2), ("c", 3), ("d", 5)):
        inter += [Interaction(user=user, item=str(k), position=k, timestamp=float(k)) for k in range(n)]
    return RecDataset(name="tiny", items={str(k): Item(id=str(k)) for k in range(5)}, interactions=inter)


def test_loo_short_users_drop_or_train():
    sp = leave_one_out(_tiny(), short_users="drop")
    assert sorted(sp.train) == ["c", "d"] and len(sp.test) == 2
    assert sp.options["dropped"] == {"users_with_fewer_than_3_events": 2,
                                     "events_of_users_with_fewer_than_3_events": 3}
    sp = leave_one_out(_tiny(), short_users="train")
    assert sorted(sp.train) == ["a", "b", "c", "d"] and len(sp.train["b"]) == 2 and len(sp.test) == 2
    assert sp.options["dropped"] == {}


def test_time_split_no_leakage(ml):
    sp = time_split(ml, ratios=(8, 1, 1))
    cv, ct = sp.options["cut_valid"], sp.options["cut_test"]
    assert all(x.timestamp < cv for s in sp.train.values() for x in s)
    assert all(cv <= e.timestamp < ct for e in sp.valid)
    assert all(e.timestamp >= ct for e in sp.test)
    n_train = sum(len(s) for s in sp.train.values())
    assert 0.78 < n_train / 100000 < 0.82
    dropped = sum(sp.options["dropped"].values())
    assert n_train + len(sp.valid) + len(sp.test) + dropped == 100000
    seqs = ml.sequences()
    for e in sp.test[:300]:  # history = all of the user's earlier events, oldest first
        seq = seqs[e.user]
        k = next(i for i, x in enumerate(seq) if x.timestamp == e.timestamp and x.item == e.target)
        assert e.history == [x.item for x in seq[:k]]
    sp2 = time_split(ml, ratios=(7, 1, 2), max_history=5)
    assert max(len(e.history) for e in sp2.test) == 5
    assert len(sp2.test) > len(sp.test)


def test_time_split_needs_timestamps(sci):
    with pytest.raises(LlmrecError, match="no timestamp"):
        time_split(sci)


def test_native_split_minionerec(data_root):
    ds = load_dataset("minionerec_industrial")
    sp = make_split(ds, "auto", max_history=None)
    assert sp.method == "native" and len(sp.valid) == 4532 and len(sp.test) == 4533
    seqs = ds.sequences()
    first = {}
    for e in sp.valid + sp.test:
        first.setdefault(e.user, e)
    for user, e in list(first.items())[:500]:
        train = [x.item for x in sp.train.get(user, [])]
        seq = [x.item for x in seqs[user]]
        k = len(train)
        assert seq[k] == e.target and train == seq[:k]  # training ends right before the first held-out event
        assert train[-len(e.history):] == e.history
    assert len(native_split(ds, max_history=3).test[0].history) <= 3
    with pytest.raises(LlmrecError, match="no split of its own"):
        native_split(_tiny())


def test_prepare_roundtrip_and_cli(data_root, tmp_path, capsys):
    out = prepare_data("taobao_tail_10k", tmp_path / "runs" / "tb", split="time", max_history=10,
                       min_user_interactions=5)
    assert out == tmp_path / "runs" / "tb" / "data"
    p = load_prepared(out)
    m = p.manifest
    assert m["source"]["options"]["min_user_interactions"] == 5
    assert m["source"]["files"][0]["sha256"] and m["split"]["method"] == "time"
    assert m["counts"]["test"] == len(p.split.test) > 0
    assert p.dataset.behaviors == sorted({x.behavior for x in p.dataset.interactions})

    from llmrec.commands import data as data_cmd
    parser = argparse.ArgumentParser()
    data_cmd.register(parser.add_subparsers())
    run = tmp_path / "runs" / "ml"
    args = parser.parse_args(["data", "prepare", "--dataset", "movielens_100k", "--out", str(run),
                              "--split", "loo", "--max-history", "20", "--rating-behavior", "levels"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "users 943" in text and "test 943" in text
    args = parser.parse_args(["data", "stats", str(run)])
    assert args.func(args) == 0
    assert "rating_5" in capsys.readouterr().out
    ml = load_prepared(run / "data")
    assert len(ml.dataset.users) == 943 and ml.dataset.users["1"]["occupation"] == "technician"


def test_tune_split_holds_out_the_last_training_event_of_sampled_users(sci, data_root, tmp_path, capsys):
    """A tune example's prompt ends in an event that is no longer trained on, like a test prompt's, and
    its target is not trained on either."""
    plain = leave_one_out(sci, max_history=20)
    sp = make_split(sci, "loo", max_history=20, tune_users=500, seed=1)
    assert len(sp.tune) == 500 and len({e.user for e in sp.tune}) == 500
    for e in sp.tune:
        full = [x.item for x in plain.train[e.user]]
        assert [x.item for x in sp.train[e.user]] == full[:-2]      # both events left training
        assert e.target == full[-1] and e.history == full[:-1][-20:]
    tuned = {e.user for e in sp.tune}
    assert all(sp.train[u] == plain.train[u] for u in plain.train if u not in tuned)
    assert [e.to_dict() for e in sp.valid] == [e.to_dict() for e in plain.valid]   # held-out parts unchanged
    assert [e.to_dict() for e in sp.test] == [e.to_dict() for e in plain.test]
    assert len(sp.train_examples()) == len(plain.train_examples()) - 1000         # no tune event is a target
    assert {e.user for e in make_split(sci, "loo", tune_users=500, seed=1).tune} == tuned   # seeded
    assert {e.user for e in make_split(sci, "loo", tune_users=500, seed=2).tune} != tuned
    assert sp.tuning_examples() == ("tune", sp.tune) and plain.tuning_examples() == ("valid", plain.valid)
    # users with fewer than three training events are never drawn; asking for more than exist takes them all
    small = make_split(_tiny(), "loo", short_users="train", tune_users=10)
    assert [e.user for e in small.tune] == ["d"] and [x.item for x in small.train["d"]] == ["0"]
    assert small.tune[0].history == ["0", "1"] and small.tune[0].target == "2" and len(small.train["b"]) == 2
    with pytest.raises(LlmrecError, match="tune_users"):
        make_split(_tiny(), "loo", tune_users=-1)

    # written as tune.jsonl (part of the data fingerprint), read back, and printed by the CLI
    out = prepare_data("amazon18_scientific", tmp_path / "a", tune_users=500, seed=1)
    p = load_prepared(out)
    assert [e.to_dict() for e in p.split.tune] == [e.to_dict() for e in sp.tune]
    assert p.manifest["counts"]["tune"] == 500 and "tune.jsonl" in p.manifest["files"]
    assert p.fingerprint != load_prepared(prepare_data("amazon18_scientific", tmp_path / "b")).fingerprint
    from llmrec.commands import data as data_cmd
    parser = argparse.ArgumentParser()
    data_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["data", "prepare", "--dataset", "movielens_100k", "--out", str(tmp_path / "ml"),
                              "--tune-users", "100"])
    assert args.func(args) == 0
    assert "tune 100, valid 943, test 943" in capsys.readouterr().out
