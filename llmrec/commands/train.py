"""`llmrec train sft|grpo`: the same entry points `accelerate launch -m llmrec.train.sft|grpo` use."""

from __future__ import annotations

import argparse
import json


def _run_sft(args: argparse.Namespace) -> int:
    from llmrec.train.args import sft_recipe_from_args
    from llmrec.train.sft import run_sft

    summary = run_sft(sft_recipe_from_args(args))
    print(json.dumps({k: v for k, v in summary.items() if k != "recipe"}, indent=2))
    return 0


def _run_grpo(args: argparse.Namespace) -> int:
    from llmrec.train.args import grpo_recipe_from_args
    from llmrec.train.grpo import run_grpo

    summary = run_grpo(grpo_recipe_from_args(args))
    print(json.dumps({k: v for k, v in summary.items() if k != "recipe"}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from llmrec.train.args import add_grpo_arguments, add_sft_arguments

    train = sub.add_parser("train", help="fine-tune: supervised (sft) or reinforcement learning (grpo)")
    stages = train.add_subparsers(dest="stage", metavar="STAGE", required=True)
    p = stages.add_parser("sft", help="LoRA / full supervised fine-tuning on the instruction corpus")
    add_sft_arguments(p)
    p.set_defaults(func=_run_sft)
    p = stages.add_parser("grpo", help="GRPO with trie-constrained rollouts after SFT")
    add_grpo_arguments(p)
    p.set_defaults(func=_run_grpo)
