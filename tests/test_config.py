"""The one config layer: yaml < --set < flags, checked types and choices, did-you-mean."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest
import yaml

from llmrec.config import add_config_arguments, config_from_args, load_config, option, save_config
from llmrec.io import LlmrecError
from llmrec.registry import Registry

METHODS: Registry = Registry("quantizer")
METHODS.add("rkmeans", object())
METHODS.add("rvq", object())


@dataclass
class Inner:
    lr: float = option(1e-3, help="learning rate")
    mode: str = option("lora", help="adapter mode", choices=("lora", "full"))


@dataclass
class Outer:
    run: str = option("runs/x", help="run folder")
    method: str = option("rkmeans", help="quantizer", choices=METHODS)
    codebook: int | list[int] = option(256, help="codes per level")
    balanced: bool = option(True, help="balanced assignment")
    limit: int | None = option(None, help="at most this many")
    inner: Inner = option(default_factory=Inner, help="nested section")

    def validate(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise LlmrecError("limit must be at least 1")


def test_yaml_then_set_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: rvq\ninner:\n  lr: 1e-4\n")  # yaml reads 1e-4 as a string
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Outer, ["run", "codebook", "balanced", "inner.lr"])
    args = parser.parse_args(["--config", str(path), "--set", "inner.lr=0.5", "--lr", "0.25",
                              "--codebook", "8,16", "--no-balanced", "--run", "{run}/a"])
    cfg = config_from_args(Outer, args)
    assert cfg.method == "rvq" and cfg.inner.lr == 0.25 and cfg.codebook == [8, 16]
    assert cfg.balanced is False and cfg.run == "{run}/a"


@pytest.mark.parametrize("override, message", [
    ("inner.mode=lorra", "inner.mode: 'lorra' is not one of lora, full (did you mean 'lora'?)"),
    ("method=rkmean", "did you mean 'rkmeans'?"),
    ("inner.lrr=1", "unknown key 'lrr' (did you mean 'lr'?)"),
    ("limit=abc", "limit: expected int or null"),
    ("balanced=3", "balanced: expected bool"),
    ("limit=0", "limit must be at least 1"),
])
def test_bad_values_name_the_field(override, message):
    with pytest.raises(LlmrecError) as e:
        load_config(Outer, overrides=[override])
    assert message in str(e.value)


def test_dotted_path_is_a_valid_choice_and_saved_config_reloads(tmp_path):
    cfg = load_config(Outer, overrides=["method=my_pkg.quant:Mine"])
    path = save_config(cfg, tmp_path)
    assert yaml.safe_load(path.read_text())["method"] == "my_pkg.quant:Mine"
    assert load_config(Outer, path) == cfg


def test_registry_get_and_unknown():
    assert METHODS.get("rvq") is not None
    with pytest.raises(LlmrecError, match="did you mean 'rvq'"):
        METHODS.get("rqv")
    assert METHODS.get("llmrec.io:LlmrecError") is LlmrecError
