"""scripts/bench_sid_methods.py reuses nothing stale and evaluates every method on the same users."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_sid_methods", ROOT / "scripts" / "bench_sid_methods.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_artifacts_are_rebuilt_when_anything_they_were_made_with_changes(tmp_path):
    bench = _bench()
    run = tmp_path / "rkmeans"
    key = {"minutes": 2.0, "seed": 42, "eval_users": 3000, "code": "abc", "dirty": None}

    def fill():
        for sub in ("sid", "corpus", "sft", "eval"):
            (run / sub).mkdir(parents=True, exist_ok=True)
            (run / sub / "x").write_text("old")

    fill()
    bench.fresh(run, key)  # no record of what they were made with: stale
    assert not any((run / s).exists() for s in ("sid", "corpus", "sft", "eval"))
    assert json.loads((run / "bench_key.json").read_text()) == key
    fill()
    bench.fresh(run, dict(key))  # same key: kept
    assert (run / "sft" / "x").read_text() == "old"
    for change in ({"minutes": 3.0}, {"eval_users": 8317}, {"code": "def"}, {"dirty": "123"}):
        fill()
        bench.fresh(run, {**key, **change})
        assert not (run / "sft").exists() and not (run / "sid").exists(), change
        bench.fresh(run, key)


def test_eval_sample_is_seeded_sized_and_in_split_order():
    bench = _bench()
    test = [f"u{i}" for i in range(1000)]
    a = bench.sample_users(test, 300, 42)
    assert a == bench.sample_users(test, 300, 42) and len(set(a)) == 300
    assert a == sorted(a, key=test.index) and a != test[:300]
    assert bench.sample_users(test, 300, 1) != a
    assert bench.sample_users(test, None, 42) == test == bench.sample_users(test, 5000, 42)


def test_code_state_names_the_commit_and_code():
    state = _bench().code_state()
    assert set(state) == {"commit", "code", "dirty"}
    assert state["commit"] and state["code"]  # this checkout is a git repository
