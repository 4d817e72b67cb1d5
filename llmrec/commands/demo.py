"""`llmrec demo`: the end-to-end pipeline on the embedded defaults."""

from __future__ import annotations

import argparse

from llmrec.config import add_config_arguments, config_from_args
from llmrec.demo.config import DemoConfig


def _run(args: argparse.Namespace) -> int:
    from llmrec.demo.run import run_demo

    run_demo(config_from_args(DemoConfig, args))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded defaults (~14 min on 2 CPU cores)",
                       description="data -> SIDs -> corpus -> SFT -> GRPO -> eval -> bundle -> chat on the shipped "
                                   "recipes (recipes/tiny-cpu) with small budgets; writes runs/demo/.")
    add_config_arguments(p, DemoConfig, ("out", "dataset", "recipes", "sft_minutes", "grpo_minutes",
                                              "eval_users", "seed"))
    p.set_defaults(func=_run)
