"""Data, SIDs, corpus and models are paired by content fingerprints; a mismatch is refused with a
message naming both sides and the command that fixes it (issue 15, defect 3)."""

from __future__ import annotations

import json
import shutil

import pytest
from faults_fixture import make_run, snapshot, toy_dataset, write_lcrec

from llmrec.cli import main
from llmrec.data.store import load_prepared
from llmrec.io import LlmrecError


@pytest.fixture()
def run_a(tmp_path):
    """A run prepared (by the CLI) from toy dataset A, with SIDs and a corpus built from it."""
    run = tmp_path / "run"
    assert main(["data", "prepare", "--dataset", str(write_lcrec(tmp_path / "A", toy_dataset(title="Tool"))),
                 "--out", str(run), "--max-history", "5"]) == 0
    from llmrec.sid.build import SidConfig, build_sids

    build_sids(load_prepared(run / "data"), SidConfig(source="random", levels=2, codebook_size=8), out_dir=run / "sid")
    assert main(["corpus", "build", "--run", str(run), "--tasks", "seqrec"]) == 0
    return run


def test_prepare_other_data_into_a_run_is_refused_then_forced(run_a, tmp_path, capsys):
    other = write_lcrec(tmp_path / "B", toy_dataset(title="Movie", seed=5))
    capsys.readouterr()
    before = snapshot(run_a / "data")
    assert main(["data", "prepare", "--dataset", str(other), "--out", str(run_a)]) == 1
    err = capsys.readouterr().err
    assert "would make them stale" in err and "sid/" in err and "corpus/" in err and "--force" in err
    assert "llmrec sid build --run" in err
    assert snapshot(run_a / "data") == before  # refused: nothing replaced
    assert main(["data", "prepare", "--dataset", str(other), "--out", str(run_a), "--force"]) == 0
    assert "now stale" in capsys.readouterr().out
    # corpus build now refuses the SIDs of dataset A for dataset B's titles
    assert main(["corpus", "build", "--run", str(run_a)]) == 1
    err = capsys.readouterr().err
    sid_data = json.loads((run_a / "sid" / "sid_map.json").read_text())["meta"]["input_fingerprint"]
    assert f"was built from data {sid_data}" in err and load_prepared(run_a / "data").fingerprint in err
    assert f"llmrec sid build --run {run_a}" in err


def test_same_data_again_needs_no_force(run_a, capsys):
    source = load_prepared(run_a / "data").dataset.source["path"]
    assert main(["data", "prepare", "--dataset", source, "--out", str(run_a), "--max-history", "5"]) == 0
    assert main(["corpus", "build", "--run", str(run_a), "--tasks", "seqrec"]) == 0


def test_training_refuses_sids_of_other_data(run_a, tmp_path):
    from llmrec.train.common import load_run_inputs

    assert load_run_inputs(run_a).sid_map is not None
    assert main(["data", "prepare", "--dataset", str(write_lcrec(tmp_path / "B", toy_dataset(seed=9))),
                 "--out", str(run_a), "--force"]) == 0
    with pytest.raises(LlmrecError, match="the SIDs are stale"):
        load_run_inputs(run_a)


def _fake_model(folder, run):
    """A model folder as training leaves it: its own sid_map.json (+ train_summary.json beside it)."""
    folder.mkdir(parents=True)
    shutil.copy(run / "sid" / "sid_map.json", folder / "sid_map.json")
    (folder.parent / "train_summary.json").write_text(json.dumps(
        {"data_fingerprint": load_prepared(run / "data").fingerprint}))
    return folder


def test_eval_refuses_a_model_trained_on_other_data(run_a, tmp_path, capsys):
    model = _fake_model(tmp_path / "a_sft" / "model", run_a)
    run_b = make_run(tmp_path / "run_b", toy_dataset(name="movies", title="Movie", seed=5))
    capsys.readouterr()
    assert main(["eval", "--run", str(run_b), "--model", str(model), "--baselines", "none"]) == 1
    assert "was trained on data" in capsys.readouterr().err

    from llmrec.data.pairing import PairingError, check_model_for_run

    check_model_for_run(model, prepared=load_prepared(run_a / "data"), run=run_a)  # its own run: fine
    with pytest.raises(PairingError, match=r"was trained on data \w+, but .*run_b/data is \w+ \(movies\)"):
        check_model_for_run(model, prepared=load_prepared(run_b / "data"), run=run_b)
    with pytest.raises(PairingError, match="trained with SID map"):
        check_model_for_run(model, sid_map=run_b / "sid" / "sid_map.json", run=run_b)


def test_corpus_and_sid_checks(run_a, tmp_path):
    from llmrec.data.pairing import PairingError, check_corpus_for_run, check_sid_for_data

    prepared = load_prepared(run_a / "data")
    sid = run_a / "sid" / "sid_map.json"
    check_corpus_for_run(run_a / "corpus", sid, prepared, run=run_a)
    run_b = make_run(tmp_path / "b", toy_dataset(seed=3))
    with pytest.raises(PairingError, match="built with SID map"):
        check_corpus_for_run(run_a / "corpus", run_b / "sid" / "sid_map.json", prepared, run=run_a)
    with pytest.raises(PairingError, match="built from data"):
        check_corpus_for_run(run_a / "corpus", sid, load_prepared(run_b / "data"), run=run_a)
    # a map recording no data fingerprint (imported index.json) must at least cover the catalogue
    foreign = {"fingerprint": "x", "meta": {}, "items": {"nope1": [], "nope2": []}}
    with pytest.raises(PairingError, match="gives SIDs to none of the 40 items"):
        check_sid_for_data(foreign, prepared, run=run_a)
    check_sid_for_data({**foreign, "items": {"1": []}}, prepared, run=run_a)


def test_stale_downstream_lists_only_llmrec_artifacts(run_a):
    from llmrec.data.pairing import stale_downstream

    (run_a / "my_notes").mkdir()
    (run_a / "my_notes" / "todo.txt").write_text("x")
    stale = {s.path.name: s for s in stale_downstream(run_a, "0123456789abcdef", "fedcba9876543210")}
    assert set(stale) == {"sid", "corpus"}
    assert "llmrec sid build" in stale["sid"].describe(run_a)
    fp = load_prepared(run_a / "data").fingerprint
    assert stale_downstream(run_a, fp, fp) == []
