"""`llmrec eval` end to end on a small prepared run (synthetic i -> i+1 walks)."""

import json
import random

import pytest

from llmrec.cli import main
from llmrec.data.records import Example, Interaction, Item, RecDataset, Split
from llmrec.data.store import save_prepared


@pytest.fixture()
def run_dir(tmp_path):
    n, rng = 20, random.Random(0)
    items = {f"i{j}": Item(id=f"i{j}", title=f"item {j}") for j in range(n)}
    inter, train, valid, test = [], {}, [], []
    for u in range(60):
        s, length = rng.randrange(n), rng.randint(5, 8)
        seq = [f"i{(s + t) % n}" for t in range(length)]
        evs = [Interaction(user=str(u), item=x, position=p) for p, x in enumerate(seq)]
        inter += evs
        train[str(u)] = evs[:-2]
        valid.append(Example(str(u), seq[:-2], seq[-2]))
        test.append(Example(str(u), seq[:-1], seq[-1]))
    ds = RecDataset(name="walks", items=items, interactions=inter, source={"synthetic": 1})
    save_prepared(tmp_path / "run" / "data", ds, Split(train=train, valid=valid, test=test))
    return tmp_path / "run"


def test_eval_cli_writes_everything(run_dir, capsys):
    rc = main(["eval", "--run", str(run_dir), "--baselines", "popular,sasrec", "--k", "1,5,10",
               "--sasrec-epochs", "3", "--threads", "1"])
    assert rc == 0
    combined = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert [r["ranker"] for r in combined["rankers"]] == ["popular", "sasrec"]
    assert combined["rankers"][0]["n_examples"] == 60 and combined["rankers"][0]["ks"] == [1, 5, 10]
    for name in ("popular", "sasrec"):
        assert (run_dir / "eval" / name / "metrics.json").exists()
        assert (run_dir / "eval" / name / "predictions.jsonl").exists()
    assert (run_dir / "eval" / "metrics.png").stat().st_size > 1000
    comparison = (run_dir / "eval" / "comparison.md").read_text()
    assert "| popular | 60 |" in comparison
    assert "seen transition" in comparison  # i -> i+1 walks: every test step was seen in training
    assert combined["rankers"][1]["transitions"]["seen"]["n"] == 60
    assert (run_dir / "baselines" / "sasrec" / "model.safetensors").exists()
    # second run: cached SASRec, predictions resumed, identical numbers
    assert main(["eval", "--run", str(run_dir), "--baselines", "sasrec", "--k", "1,5,10",
                 "--sasrec-epochs", "3", "--split", "test", "--threads", "1"]) == 0
    again = json.loads((run_dir / "eval" / "sasrec" / "metrics.json").read_text())
    assert again["counts"]["newly_predicted"] == 0
    assert again["metrics"] == combined["rankers"][1]["metrics"]


def test_eval_cli_errors(run_dir, capsys):
    assert main(["eval", "--run", str(run_dir), "--baselines", "bogus"]) == 1
    assert "baselines: unknown baseline 'bogus'; choose one of h2rec, popular" in capsys.readouterr().err
    assert main(["eval", "--run", str(run_dir / "nope"), "--baselines", "popular"]) == 1
    assert main(["eval", "--run", str(run_dir), "--k", "0,5"]) == 1


def test_eval_baseline_settings_reach_the_model(run_dir, capsys):
    """`baseline_settings.NAME.FIELD` configures that baseline (here SASRec's width and epochs)."""
    assert main(["eval", "--run", str(run_dir), "--baselines", "sasrec", "--threads", "1",
                 "--set", "baseline_settings.sasrec.hidden=16", "--set", "baseline_settings.sasrec.epochs=2"]) == 0
    saved = json.loads((run_dir / "baselines" / "sasrec" / "config.json").read_text())["config"]
    assert saved["hidden"] == 16 and saved["epochs"] == 2


def test_eval_baseline_settings_refused_before_training(run_dir, capsys):
    assert main(["eval", "--run", str(run_dir), "--baselines", "sasrec", "--set", "baseline_settings.sasrec.hiden=16"]) == 1
    assert "baseline_settings.sasrec: unknown key 'hiden' (did you mean 'hidden'?)" in capsys.readouterr().err
    assert main(["eval", "--run", str(run_dir), "--baselines", "popular", "--set", "baseline_settings.popular.k=1"]) == 1
    assert "baseline_settings.popular" in capsys.readouterr().err
    assert main(["eval", "--run", str(run_dir), "--baselines", "popular", "--set", "baseline_settings.h2rec.hidden=8"]) == 1
    assert "'h2rec' is not among the baselines evaluated" in capsys.readouterr().err
    assert not (run_dir / "baselines").exists() and not (run_dir / "eval").exists()
