"""Bundles: `--out` never destroys what it did not write, no local paths in anything pushed or served, the
model card (ModelCard metadata, per-split metrics, no TRL leftovers), Hub ids vs local paths, safetensors only,
and run / model folders accepted where a bundle is."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from test_serve_fixture import build_recommender

from llmrec.io import LlmrecError


@pytest.fixture(scope="module")
def rec(data_root):
    return build_recommender(data_root)


@pytest.fixture(scope="module")
def run(rec, tmp_path_factory):
    """runs/sci with data, grpo/model (+ a TRL README leftover) and eval results (combined + per ranker)."""
    from llmrec.data.records import Interaction, RecDataset, Split
    from llmrec.data.store import save_prepared
    from llmrec.io import write_json
    from llmrec.llm import save_model

    run = tmp_path_factory.mktemp("r") / "runs" / "sci"
    inter = [Interaction(user="u1", item=i, position=n) for n, i in enumerate(["49", "53", "12"])]
    ds = RecDataset(name="amazon18_scientific", items=rec.items, interactions=inter,
                    source={"path": str(run.parent.parent / "data" / "Scientific.item.json")})
    save_prepared(run / "data", ds, Split(train={"u1": inter[:1]}, valid=[], test=[]))
    save_model(rec.model, rec.tokenizer, rec.sid_map, run / "grpo" / "model")
    (run / "grpo" / "model" / "README.md").write_text("This model is a fine-tuned version of [None](None).")
    rows = [{"ranker": "llm-grpo", "split": "test", "n_examples": 10, "metrics": {"HR@10": 0.3, "NDCG@10": 0.2}},
            {"ranker": "sasrec", "split": "test", "n_examples": 10, "metrics": {"HR@10": 0.25, "NDCG@10": 0.15}}]
    write_json(run / "eval" / "metrics.json", {"format": "llmrec.eval-combined/1", "split": "test", "rankers": rows})
    write_json(run / "eval" / "llm-grpo" / "metrics.json", rows[0])
    write_json(run / "eval" / "valid" / "metrics.json", {"format": "llmrec.eval-combined/1", "rankers": [
        {**rows[0], "split": "valid", "metrics": {"HR@10": 0.4, "NDCG@10": 0.22}}]})
    return run


@pytest.fixture(scope="module")
def bundle(run):
    from llmrec.bundle import bundle_from_run

    return bundle_from_run(run, run / "bundle")


def test_out_refuses_to_destroy(run, bundle, tmp_path, monkeypatch, capsys):
    from llmrec.cli import main

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    assert main(["bundle", "--run", str(run), "--out", str(notes)]) == 1
    assert "not an llmrec bundle" in capsys.readouterr().err and (notes / "todo.txt").read_text() == "mine"
    assert main(["bundle", "--run", str(run), "--out", str(run)]) == 1  # the run itself
    assert "holds the input" in capsys.readouterr().err and (run / "grpo" / "model").is_dir()
    assert main(["bundle", "--run", str(run), "--out", str(run.parent)]) == 1  # a folder above the run
    monkeypatch.chdir(tmp_path)
    assert main(["bundle", "--run", str(run), "--out", "."]) == 1
    assert "current folder" in capsys.readouterr().err
    assert main(["bundle", "--run", str(run), "--out", str(bundle)]) == 1  # an existing bundle needs --force
    assert "--force" in capsys.readouterr().err
    assert main(["bundle", "--run", str(run), "--out", str(bundle), "--force"]) == 0
    assert (bundle / "model.safetensors").exists()


def test_card_metadata_metrics_and_no_leftovers(bundle, run):
    card = (bundle / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "apache-2.0" and meta["datasets"] == ["amazon18_scientific"]
    results = meta["model-index"][0]["results"]
    by_split = {r["dataset"]["split"]: {m["name"]: m["value"] for m in r["metrics"]} for r in results}
    assert by_split["test"]["NDCG@10"] == 0.2 and by_split["valid"]["NDCG@10"] == 0.22
    assert "| **llm-grpo (this model)** | **0.3000** | **0.2000** |" in card and "| sasrec | 0.2500 |" in card
    assert "llmrec.eval-combined" not in card and "fine-tuned version of [None]" not in card
    assert "Recommender.from_pretrained" in card


def test_no_absolute_paths_pushed_or_served(bundle, run):
    from fastapi.testclient import TestClient

    from llmrec.serve import Recommender
    from llmrec.serve.app import create_app

    root = str(run.parents[1])
    for name in ("README.md", "llmrec_config.json"):
        assert root not in (bundle / name).read_text(), name
    cfg = json.loads((bundle / "llmrec_config.json").read_text())
    assert cfg["data"]["source"]["path"] == "Scientific.item.json"
    with TestClient(create_app(Recommender.from_pretrained(bundle))) as client:
        for path in ("/health", "/v1/models"):
            assert root not in client.get(path).text
        assert client.get("/v1/models").json()["data"][0]["id"] == "sci"


def test_local_looking_names_are_never_hub_ids(tmp_path, monkeypatch):
    from llmrec.bundle import looks_like_repo_id, resolve_bundle

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(LlmrecError, match="runs/ exists here"):
        resolve_bundle("runs/nosuch")
    for s in ("./x/y", "../a/b", "/abs/path", "a/b/c", "~/x"):
        with pytest.raises(LlmrecError, match="no such folder"):
            resolve_bundle(s)
    assert looks_like_repo_id("alice/tiny-rec") and not looks_like_repo_id("a/b/c")


def test_safetensors_only(bundle, tmp_path):
    import shutil

    from llmrec.serve import Recommender

    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    (bad / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(LlmrecError, match="pickle-based"):
        Recommender.from_pretrained(bad)


def test_run_and_model_folders_load_like_a_bundle(run, bundle, capsys):
    from llmrec.cli import main
    from llmrec.serve import Recommender

    via_bundle = Recommender.from_pretrained(bundle).recommend(["49"], k=4)
    for src in (run, run / "grpo" / "model"):
        r = Recommender.from_pretrained(src)
        assert [x.item_id for x in r.recommend(["49"], k=4)] == [x.item_id for x in via_bundle]
    assert main(["recommend", "--model", str(run), "--history", "49", "-k", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["items"]) == 2
    empty = run.parent / "empty"
    empty.mkdir()
    assert main(["recommend", "--model", str(empty), "--history", "49"]) == 1
    assert "llmrec bundle" in capsys.readouterr().err
    assert not os.listdir(empty)
