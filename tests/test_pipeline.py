"""The shared early stages reuse what matches and rebuild what does not; the wall-time limit; the
`accelerate launch -m` entry point; a short `llmrec demo`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_fixture import build_small_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, data_root):
    return build_small_run(tmp_path_factory.mktemp("pipe") / "run")


def test_ensure_data_reuses_only_data_split_alike(tmp_path, data_root):
    """A recipe's data.yaml (tune_users, seed) decides the split: data prepared otherwise is prepared again."""
    from llmrec.data.config import DataConfig
    from llmrec.pipeline import ensure_data

    run = tmp_path / "run"
    plain = ensure_data("amazon18_scientific", run)
    assert not plain.split.tune
    tuned = ensure_data("amazon18_scientific", run, config=DataConfig(tune_users=50, seed=3))
    assert len(tuned.split.tune) == 50 and tuned.fingerprint != plain.fingerprint
    stamp = (run / "data" / "manifest.json").stat().st_mtime_ns
    again = ensure_data("amazon18_scientific", run, config=DataConfig(tune_users=50, seed=3))
    assert again.fingerprint == tuned.fingerprint and (run / "data" / "manifest.json").stat().st_mtime_ns == stamp
    other = ensure_data("amazon18_scientific", run, config=DataConfig(tune_users=50, seed=4))
    assert {e.user for e in other.split.tune} != {e.user for e in tuned.split.tune}
    assert not ensure_data("amazon18_scientific", run).split.tune


def test_ensure_sids_and_corpus_reuse_only_what_matches(small_run):
    from llmrec.corpus.config import CorpusConfig
    from llmrec.data.store import load_prepared
    from llmrec.pipeline import ensure_corpus, ensure_sids
    from llmrec.sid.config import SidConfig

    prepared = load_prepared(small_run / "data")
    cfg = SidConfig(source="random", seed=1)
    first = ensure_sids(prepared, small_run, cfg)
    stamp = (small_run / "sid" / "sid_map.json").stat().st_mtime_ns
    assert ensure_sids(prepared, small_run, cfg).fingerprint == first.fingerprint
    assert (small_run / "sid" / "sid_map.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    other = ensure_sids(prepared, small_run, SidConfig(source="random", seed=2))  # another config: rebuilt
    assert (small_run / "sid" / "sid_map.json").stat().st_mtime_ns != stamp and other.meta["config"]["seed"] == 2

    corpus_cfg = CorpusConfig(tasks=["seqrec"], max_history=5)
    m1 = ensure_corpus(prepared, other, small_run, corpus_cfg)
    assert ensure_corpus(prepared, other, small_run, corpus_cfg)["created"] == m1["created"]  # reused
    time.sleep(1.1)  # manifests are stamped to the second
    m2 = ensure_corpus(prepared, other, small_run, CorpusConfig(tasks=["seqrec"], max_history=4))
    assert m2["created"] != m1["created"] and m2["config"]["max_history"] == 4


def test_wall_time_limit_stops_and_saves():
    from transformers import TrainerControl, TrainerState

    from llmrec.train.common import WallTimeLimit

    limit, state, control = WallTimeLimit(0.5 / 60), TrainerState(), TrainerControl()
    limit.on_train_begin(None, state, control)
    limit.on_step_end(None, state, control)
    assert not control.should_training_stop
    time.sleep(0.6)
    limit.on_step_end(None, state, control)
    assert control.should_training_stop and control.should_save
    unlimited = WallTimeLimit(None)
    fresh = TrainerControl()
    unlimited.on_step_end(None, state, fresh)
    assert not fresh.should_training_stop


def test_accelerate_launch_module_entry_point_checks_the_recipe():
    """`accelerate launch -m llmrec.train.sft` is the GPU path: it parses the same recipe flags and
    refuses a bad one before loading anything."""
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision",
           "no", "--dynamo_backend", "no", "-m", "llmrec.train.sft", "--config",
           str(ROOT / "recipes" / "tiny-cpu" / "sft.yaml"), "--run", "runs/none", "--set", "adapter.mode=qlora"]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    text = out.stdout + out.stderr
    assert "adapter.mode: 'qlora' is not one of lora, full, embeddings" in text, text[-2000:]


@pytest.mark.slow
def test_short_demo_runs_end_to_end(tmp_path, data_root):
    from llmrec.demo.config import DemoConfig
    from llmrec.demo.run import run_demo

    out = tmp_path / "demo"
    summary = run_demo(DemoConfig(out=str(out), sft_minutes=0.2, grpo_minutes=0.2, eval_users=20,
                                  translation_items=10, sasrec_epochs=1))
    assert {"llm-sft", "llm-grpo", "popular", "sasrec"} <= set(summary["test"])
    assert (out / "bundle" / "llmrec_config.json").exists() and len(summary["chat"]) == 3


def test_demo_recipes_lay_both_schedules_over_their_budgets(tmp_path):
    """The demo (and scripts/bench_quality.py) run SFT and GRPO on wall-time budgets: each stage's
    learning-rate schedule spans its own budget, whatever the step count."""
    from llmrec.demo.config import DemoConfig
    from llmrec.demo.run import demo_recipes

    _, sid, _, sft, grpo = demo_recipes(DemoConfig(out=str(tmp_path / "demo"), sft_minutes=7.0, grpo_minutes=3.0))
    assert (sid.identity, sid.seed) == ("unique", 42)  # recipes/tiny-cpu/sid.yaml
    assert (sft.train.schedule_by, sft.train.max_minutes) == ("time", 7.0)
    assert (grpo.train.schedule_by, grpo.train.max_minutes) == ("time", 3.0)
    assert (grpo.run, grpo.init_model) == (str(tmp_path / "demo"), "{run}/sft/model")  # from SFT stage one


def test_demo_compares_with_the_sasrec_that_eval_trains():
    """The demo's SASRec is the one `llmrec eval` and bench_quality train (same epoch cap, early stopping):
    a demo that capped it lower would set its LLM against a weaker baseline than the README reports."""
    from llmrec.demo.config import DemoConfig
    from llmrec.eval.config import EvalConfig
    from llmrec.io import LlmrecError

    demo = DemoConfig()
    as_demo = EvalConfig(run="runs/x", sasrec_epochs=demo.sasrec_epochs, seed=demo.seed).settings_for("sasrec")
    assert as_demo == EvalConfig(run="runs/x", seed=demo.seed).settings_for("sasrec")
    with pytest.raises(LlmrecError, match="epochs must be at least 1"):
        DemoConfig(sasrec_epochs=0).validate()
    with pytest.raises(LlmrecError, match="epochs must be at least 1"):  # eval refuses it too, not "default"
        EvalConfig(run="runs/x", sasrec_epochs=0).settings_for("sasrec")


def test_sid_recipe_switches_to_collaborative_vectors_without_item_text():
    """The demo and bench_quality keep a text SID recipe when most items have text, else build SIDs from
    collaborative vectors (a no-text dataset would otherwise embed empty strings)."""
    from types import SimpleNamespace

    from llmrec.data.records import Item
    from llmrec.pipeline import sid_config_for
    from llmrec.sid.build import SidConfig

    recipe = SidConfig(identity="unique")
    bare = SimpleNamespace(items={str(i): Item(id=str(i)) for i in range(4)})
    titled = SimpleNamespace(items={str(i): Item(id=str(i), title=f"thing {i}" if i % 2 else "") for i in range(4)})
    assert (sid_config_for(bare, recipe).source, sid_config_for(bare, recipe).identity) == ("collaborative", "unique")
    assert sid_config_for(titled, recipe) is recipe
    assert sid_config_for(bare, SidConfig(source="random")).source == "random"
