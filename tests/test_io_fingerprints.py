"""Fingerprints follow content, never paths: edited data files, retrained weights (issue 15, defects 1 and 4)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from faults_fixture import make_run, toy_dataset
from safetensors.numpy import save_file

from llmrec.data.store import load_prepared
from llmrec.io import LlmrecError


def _edit_jsonl(path, line: int, change) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    change(rows[line])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_data_fingerprint_changes_when_a_test_target_or_a_title_is_edited(tmp_path):
    run = make_run(tmp_path / "run", sid=False)
    data = run / "data"
    before = load_prepared(data).fingerprint
    original = (data / "test.jsonl").read_bytes()
    _edit_jsonl(data / "test.jsonl", 0, lambda r: r.update(target="39" if r["target"] != "39" else "38"))
    edited_target = load_prepared(data).fingerprint
    assert edited_target != before
    (data / "test.jsonl").write_bytes(original)
    assert load_prepared(data).fingerprint == before  # content, not modification time
    _edit_jsonl(data / "items.jsonl", 3, lambda r: r.update(title=r["title"] + " (2nd edition)"))
    assert load_prepared(data).fingerprint not in (before, edited_target)


def test_same_content_same_fingerprint_anywhere(tmp_path):
    a = make_run(tmp_path / "a", sid=False)
    b = make_run(tmp_path / "b", sid=False)
    assert load_prepared(a / "data").fingerprint == load_prepared(b / "data").fingerprint
    other = make_run(tmp_path / "c", toy_dataset(seed=1), sid=False)
    assert load_prepared(other / "data").fingerprint != load_prepared(a / "data").fingerprint


def test_file_and_folder_fingerprints(tmp_path):
    from llmrec.io import file_fingerprint, folder_fingerprint

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.jsonl").write_text("1\n")
    (tmp_path / "d" / ".x.jsonl.123.abcd.tmp").write_text("leftover")  # hidden temps never count
    fp = folder_fingerprint(tmp_path / "d", "*.jsonl")
    assert file_fingerprint(tmp_path / "d" / "x.jsonl") == file_fingerprint(tmp_path / "d" / "x.jsonl")
    (tmp_path / "d" / "x.jsonl").write_text("2\n")
    assert folder_fingerprint(tmp_path / "d", "*.jsonl") != fp
    with pytest.raises(LlmrecError, match="no such"):
        folder_fingerprint(tmp_path / "missing")


def _model(folder, embed):
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"model.embed_tokens.weight": embed, "model.layers.0.w": np.ones((64, 64), np.float32)},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text("{}")
    return folder


@pytest.mark.parametrize("cheap", [False, True], ids=["full-hash", "sampled"])
def test_weights_fingerprint_changes_when_retrained_into_the_same_folder(tmp_path, cheap):
    from llmrec.io import weights_fingerprint

    kw = {"full_hash_bytes": 0, "samples": 4, "block": 256} if cheap else {}
    embed = np.random.default_rng(0).normal(size=(2000, 32)).astype(np.float32)
    model = _model(tmp_path / "sft" / "model", embed)
    first = weights_fingerprint(model, **kw)
    retrained = embed.copy()
    retrained[-5:] += 0.01  # only the new SID rows at the end of the embedding moved
    _model(model, retrained)
    assert weights_fingerprint(model, **kw) != first
    copy = shutil.copytree(model, tmp_path / "elsewhere")
    assert weights_fingerprint(copy, **kw) == weights_fingerprint(model, **kw)  # content, not path


def test_weights_fingerprint_errors(tmp_path):
    from llmrec.io import weights_fingerprint

    model = _model(tmp_path / "m", np.zeros((10, 4), np.float32))
    raw = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(raw[:-20])
    with pytest.raises(LlmrecError, match="model.safetensors: not a complete safetensors file"):
        weights_fingerprint(model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LlmrecError, match="no weight files"):
        weights_fingerprint(tmp_path / "empty")
