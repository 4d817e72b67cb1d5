"""Every stage's command line: --config and --set in its help, and a bad value of a fixed-choice field
refused with the field named before any heavy library (torch, transformers, datasets) is imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llmrec.cli import build_parser

STAGES = [["data", "prepare"], ["sid", "build"], ["corpus", "build"], ["train", "sft"], ["train", "grpo"],
          ["eval"], ["serve"], ["demo"]]

BAD_VALUES = [
    (["sid", "build", "--run", "R", "--set", "method=rkmean"], "method", "did you mean 'rkmeans'"),
    (["corpus", "build", "--run", "R", "--set", "tasks=[seqrek]"], "tasks", "did you mean 'seqrec'"),
    (["train", "sft", "--run", "R", "--set", "adapter.mode=qlora"], "adapter.mode", "did you mean 'lora'"),
    (["train", "sft", "--run", "R", "--set", "train.precision=fp8"], "train.precision", "not one of"),
    (["train", "grpo", "--run", "R", "--set", "grpo.rollout=beams"], "grpo.rollout", "did you mean 'beam'"),
    (["train", "grpo", "--run", "R", "--set", "grpo.collaborative_shape=dgc"], "grpo.collaborative_shape",
     "not one of"),
    (["eval", "--run", "R", "--split", "tset"], "split", "did you mean 'test'"),
    (["eval", "--run", "R", "--baselines", "sasrek"], "baselines", "did you mean 'sasrec'"),
    (["serve", "--model", "M", "--workers", "0"], "workers", "at least 1"),
]


def _help(parser, path: list[str]) -> str:
    sub = parser
    for name in path:
        action = next(a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction")
        sub = action.choices[name]
    return sub.format_help()


@pytest.mark.parametrize("path", STAGES, ids=" ".join)
def test_every_stage_takes_config_and_set(path):
    text = _help(build_parser(), path)
    assert "--config" in text and "--set KEY=VALUE" in text


@pytest.mark.parametrize("argv, field, hint", BAD_VALUES, ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))
def test_bad_choice_fails_fast_with_the_field_named(argv, field, hint):
    code = ("import json, sys\nfrom llmrec.cli import main\n"
            f"rc = main({argv!r})\n"
            "print(json.dumps({'rc': rc, 'heavy': sorted(m for m in ('torch', 'transformers', 'datasets', 'trl') "
            "if m in sys.modules)}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rc"] == 1
    assert field in out.stderr and hint in out.stderr, out.stderr
    assert result["heavy"] == []  # refused before any model, data or trainer code was loaded
