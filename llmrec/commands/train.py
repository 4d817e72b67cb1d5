"""`llmrec train sft|grpo`: the same entry points `accelerate launch -m llmrec.train.sft|grpo` use."""

from __future__ import annotations

import argparse
import json


def _run(args: argparse.Namespace) -> int:
    from llmrec.train.args import recipe_from_args

    if args.stage == "sft":
        from llmrec.train.sft import run_sft as run
    else:
        from llmrec.train.grpo import run_grpo as run
    summary = run(recipe_from_args(args.stage, args))
    print(json.dumps({k: v for k, v in summary.items() if k != "recipe"}, indent=2, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from llmrec.train.args import add_stage_arguments

    train = sub.add_parser("train", help="fine-tune: supervised (sft) or reinforcement learning (grpo)")
    stages = train.add_subparsers(dest="stage", metavar="STAGE", required=True)
    p = stages.add_parser("sft", help="LoRA / full supervised fine-tuning on the instruction corpus")
    add_stage_arguments(p, "sft")
    p.set_defaults(func=_run)
    p = stages.add_parser("grpo", help="GRPO with trie-constrained rollouts after SFT")
    add_stage_arguments(p, "grpo")
    p.set_defaults(func=_run)
