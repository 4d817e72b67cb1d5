"""The baseline registry: names resolve, unknown ones fail with did-you-mean, configs are checked,
user code is reachable by a dotted path; all without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmrec.baselines.configs import H2RecConfig, SASRecConfig
from llmrec.baselines.registry import (
    BASELINES,
    BaselineContext,
    BaselineSpec,
    BuiltBaseline,
    baseline_config,
    build_baseline,
    get_spec,
    parse_baselines,
)
from llmrec.io import LlmrecError


class _Fixed:
    name = "fixed"

    def rank(self, examples, k):
        return [["a"][:k] for _ in examples]


CUSTOM = BaselineSpec(lambda ctx, cfg: BuiltBaseline(_Fixed(), {"custom": True}, 8), help="user code")
NOT_A_SPEC = object()


def test_names_resolve_and_references():
    assert set(BASELINES.names()) >= {"popular", "sasrec", "sasrec-sid", "h2rec"}
    assert parse_baselines("popular, SASRec,sasrec-sid,h2rec,sasrec") == ["popular", "sasrec", "sasrec-sid", "h2rec"]
    assert parse_baselines("none") == [] and parse_baselines("") == []
    assert [n for n in BASELINES if get_spec(n).reference] == ["popular", "sasrec"]
    assert get_spec("h2rec").config_class is H2RecConfig


def test_unknown_names_fail_with_did_you_mean():
    with pytest.raises(LlmrecError, match=r"unknown baseline 'h2rek' \(did you mean 'h2rec'\?\)"):
        parse_baselines("popular,h2rek")
    with pytest.raises(LlmrecError, match="unknown baseline 'bert4rec'.*choose one of h2rec, popular"):
        get_spec("bert4rec")


def test_configs_are_checked():
    cfg = baseline_config("h2rec", values={"hidden": 32, "item_align_weight": 0.5}, overrides=["hid_init=text"])
    assert (cfg.hidden, cfg.item_align_weight, cfg.hid_init) == (32, 0.5, "text")
    with pytest.raises(LlmrecError, match="hiden.*did you mean 'hidden'"):
        baseline_config("sasrec", values={"hiden": 32})
    with pytest.raises(LlmrecError, match="hid_init.*'txt' is not one of random, text"):
        baseline_config("h2rec", values={"hid_init": "txt"})
    with pytest.raises(LlmrecError, match="divisible"):
        baseline_config("sasrec", values={"hidden": 30, "n_heads": 4})
    with pytest.raises(LlmrecError, match="temperature"):
        baseline_config("h2rec", values={"temperature": 0})
    with pytest.raises(LlmrecError, match="no settings"):
        baseline_config("popular", values={"hidden": 8})
    assert baseline_config("sasrec") == SASRecConfig() and baseline_config("popular") is None
    # every field says what it does (the --help text of the config layer)
    from dataclasses import fields

    assert all(f.metadata.get("help") for f in fields(H2RecConfig))


def test_dotted_path_to_user_code(tmp_path):
    name = f"{__name__}:CUSTOM"
    assert parse_baselines(f"popular,{name}") == ["popular", name]
    built = build_baseline(name, BaselineContext(run=tmp_path, prepared=None))
    assert built.info == {"custom": True} and built.ranker.rank([1, 2], 5) == [["a"], ["a"]]
    with pytest.raises(LlmrecError, match="expected a llmrec.baselines.BaselineSpec"):
        get_spec(f"{__name__}:NOT_A_SPEC")


def test_registry_and_configs_load_without_torch():
    code = ("import sys; from llmrec.baselines.registry import parse_baselines; "
            "parse_baselines('sasrec,h2rec'); import llmrec.baselines; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
