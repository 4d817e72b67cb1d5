"""Prompt templates: paraphrase counts, deterministic choice, user overrides, seqrec_messages."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from llmrec.corpus.tasks import seqrec_messages
from llmrec.corpus.templates import (
    ALL_TASKS,
    TASK_FAMILIES,
    choose_index,
    default_prompts_dir,
    load_templates,
)
from llmrec.io import LlmrecError
from llmrec.sid.sidmap import SidMap

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_every_task_has_five_paraphrases_and_a_system_prompt():
    lib = load_templates()
    assert set(ALL_TASKS) <= set(lib.tasks)
    for family in TASK_FAMILIES:
        assert (default_prompts_dir() / f"{family}.yaml").exists()
    for task in ALL_TASKS:
        tpl = lib[task]
        assert len(tpl) >= 5, task
        assert len(set(tpl.paraphrases)) == len(tpl.paraphrases), f"{task}: duplicate paraphrases"
        assert tpl.system, task
    assert lib.behavior_name("pv") == "view" and lib.behavior_name("some_label") == "some label"


def test_choice_is_deterministic_and_spread():
    a = [choose_index(7, "seqrec", f"u{i}", 5) for i in range(500)]
    assert a == [choose_index(7, "seqrec", f"u{i}", 5) for i in range(500)]
    assert set(Counter(a)) == set(range(5)) and min(Counter(a).values()) > 60
    assert a != [choose_index(8, "seqrec", f"u{i}", 5) for i in range(500)]
    assert a != [choose_index(7, "item2sid_title", f"u{i}", 5) for i in range(500)]
    lib = load_templates()
    assert lib["seqrec"].choose(7, None) == 0


def test_seqrec_messages_shape_and_truncation():
    sm = SidMap({"x": [1, 2, 3], "y": [4, 5, 6], "z": [7, 8, 9]})
    m = seqrec_messages(["x", "y", "z"], sm, max_history=2)
    assert [r["role"] for r in m] == ["system", "user"]
    assert "<a_4><b_5><c_6>, <a_7><b_8><c_9>" in m[1]["content"]
    assert "<a_1>" not in m[1]["content"]
    assert m == seqrec_messages(["y", "z"], sm, template_index=0)
    lib = load_templates()
    texts = {seqrec_messages(["x"], sm, template_index=i)[1]["content"] for i in range(len(lib["seqrec"]))}
    assert len(texts) == len(lib["seqrec"])
    with pytest.raises(LlmrecError):
        seqrec_messages(["unknown"], sm)
    with pytest.raises(LlmrecError):
        seqrec_messages(["x"], sm, template_index=99)


def test_user_folder_overrides_tasks(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "system: Custom system.\n"
        "tasks:\n"
        "  seqrec:\n"
        "    placeholders: [history]\n"
        "    paraphrases:\n" + "".join(f"      - 'Variant {i}: {{history}} ->'\n" for i in range(5)),
        encoding="utf-8")
    lib = load_templates(tmp_path)
    assert lib["seqrec"].system == "Custom system."
    assert lib["seqrec"].render(3, history="H") == "Variant 3: H ->"
    assert len(lib["item2sid_title"]) >= 5  # other tasks still come from the shipped folder
    assert lib.fingerprint != load_templates().fingerprint


def test_placeholder_mismatch_is_a_clear_error(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "tasks:\n  seqrec:\n    placeholders: [history]\n    paraphrases: ['no placeholder here']\n",
        encoding="utf-8")
    with pytest.raises(LlmrecError, match="bad.yaml.*seqrec"):
        load_templates(tmp_path)
