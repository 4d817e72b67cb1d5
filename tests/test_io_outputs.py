"""No command deletes a folder it did not create; `--out .` and the run itself are clear errors;
leftovers of killed writers are cleaned, an interrupted swap is undone (issue 15, defects 2 and 6)."""

from __future__ import annotations

import os
import shutil

import pytest
from faults_fixture import dead_pid, leftovers, make_run, snapshot, write_lcrec

from llmrec.cli import main
from llmrec.io import LlmrecError, atomic_path, write_json


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("out") / "run", corpus=True)


def _notes(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("my notes, not an llmrec artifact\n")
    return folder


def test_corpus_build_never_replaces_a_folder_it_did_not_write(run, tmp_path, capsys):
    notes = _notes(tmp_path / "notes")
    assert main(["corpus", "build", "--run", str(run), "--out", str(notes)]) == 1
    assert (notes / "notes.txt").read_text().startswith("my notes")
    assert "non-empty folder that llmrec did not write" in capsys.readouterr().err
    sid_copy = shutil.copytree(run / "sid", tmp_path / "sid_copy")
    assert main(["corpus", "build", "--run", str(run), "--out", str(sid_copy)]) == 1  # another artifact
    assert (sid_copy / "sid_map.json").exists()
    assert "holds a sid artifact, not a corpus" in capsys.readouterr().err


def test_corpus_build_out_dot_and_the_run_itself_are_clear_errors(run, tmp_path, monkeypatch, capsys):
    before = snapshot(run)
    monkeypatch.chdir(run)
    assert main(["corpus", "build", "--run", str(run), "--out", "."]) == 1
    assert "current folder" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    for out in (run, run.parent):
        assert main(["corpus", "build", "--run", str(run), "--out", str(out)]) == 1
        assert "would replace it" in capsys.readouterr().err
    assert snapshot(run) == before


def test_corpus_build_replaces_its_own_earlier_corpus(run, tmp_path, capsys):
    from llmrec.io import artifact_kind

    out = tmp_path / "corpus2"
    assert main(["corpus", "build", "--run", str(run), "--out", str(out)]) == 0
    (out / "dataset_dict.json").write_text("{}")  # a stale file of the earlier corpus
    assert main(["corpus", "build", "--run", str(run), "--out", str(out), "--seed", "7"]) == 0
    assert artifact_kind(out) == "corpus" and leftovers(tmp_path) == []


def test_data_prepare_never_replaces_a_foreign_data_folder(tmp_path, capsys):
    target = _notes(tmp_path / "run" / "data")
    source = write_lcrec(tmp_path / "toy")
    assert main(["data", "prepare", "--dataset", str(source), "--out", str(tmp_path / "run")]) == 1
    assert "did not write" in capsys.readouterr().err
    assert (target / "notes.txt").exists()
    assert main(["data", "prepare", "--dataset", str(source), "--out", str(tmp_path / "run2")]) == 0
    assert main(["data", "prepare", "--dataset", str(source), "--out", str(tmp_path / "run2")]) == 0  # same again


def test_prepare_output_rules(tmp_path, monkeypatch):
    from llmrec.io import prepare_output

    monkeypatch.chdir(tmp_path)
    assert prepare_output(tmp_path / "new", "corpus") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    prepare_output(tmp_path / "empty", "corpus")
    (tmp_path / "file").write_text("x")
    with pytest.raises(LlmrecError, match="is a file"):
        prepare_output(tmp_path / "file", "corpus")
    for bad in (".", "..", str(tmp_path), "/"):
        with pytest.raises(LlmrecError, match="current folder|home/root"):
            prepare_output(bad, "bundle")
    with pytest.raises(LlmrecError, match="folder holding it"):
        prepare_output(tmp_path / "runs", "bundle", protect=[tmp_path / "runs" / "r1"])
    write_json(tmp_path / "c" / "manifest.json", {"format": "llmrec.corpus/1"})
    assert prepare_output(tmp_path / "c", "corpus") == tmp_path / "c"
    with pytest.raises(LlmrecError, match="holds a corpus artifact, not a data"):
        prepare_output(tmp_path / "c", "data")


def test_temps_of_dead_writers_are_cleaned_live_ones_kept(tmp_path):
    from llmrec.io import clean_stale_temps

    target = tmp_path / "sid"
    dead = tmp_path / f".sid.{dead_pid()}.k3j4h5ab.tmp"
    live = tmp_path / f".sid.{os.getpid()}.zzzz1234.tmp"
    other = tmp_path / f".corpus.{dead_pid()}.aaaa1111.tmp"
    for d in (dead, live, other):
        (d / "sid").mkdir(parents=True)
        (d / "sid" / "embeddings.npy").write_bytes(b"\0" * 1000)
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "sid_map.json").write_text("{}")
    assert not dead.exists() and live.exists() and other.exists()  # other targets are cleaned by their writer
    assert clean_stale_temps(tmp_path / "corpus") == [other]


@pytest.mark.parametrize("new_complete", [False, True], ids=["undo", "finish"])
def test_an_interrupted_folder_swap_is_recovered(tmp_path, new_complete):
    """A writer killed between moving the old folder aside and renaming the new one in (the
    fallback where the OS cannot swap in one step): the next writer restores a whole folder."""
    from llmrec.io import prepare_output

    target = tmp_path / "corpus"
    tmp = tmp_path / f".corpus.{dead_pid()}.abcd1234.tmp"
    write_json(tmp / ".old" / "manifest.json", {"format": "llmrec.corpus/1", "which": "old"})
    if new_complete:
        write_json(tmp / "corpus" / "manifest.json", {"format": "llmrec.corpus/1", "which": "new"})
    prepare_output(target, "corpus")
    assert '"which": "' + ("new" if new_complete else "old") in (target / "manifest.json").read_text()
    assert not tmp.exists()
