"""`llmrec train sft|grpo`: the same entry points `accelerate launch -m llmrec.train.sft|grpo` use."""

from __future__ import annotations

import argparse
import json

from llmrec.train.args import add_stage_arguments, recipe_from_args


def _run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args.stage, args)  # checked before torch or TRL are imported
    if args.stage == "sft":
        from llmrec.train.sft import run_sft as run
    else:
        from llmrec.train.grpo import run_grpo as run
    summary = run(recipe)
    print(json.dumps({k: v for k, v in summary.items() if k != "recipe"}, indent=2, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="fine-tune: supervised (sft) or reinforcement learning (grpo)",
                           description="Fine-tune the LLM on the run's corpus (sft), then with GRPO (grpo).")
    stages = train.add_subparsers(dest="stage", metavar="STAGE", required=True)
    p = stages.add_parser("sft", help="LoRA / full supervised fine-tuning on the instruction corpus",
                          description="Supervised fine-tuning (TRL SFTTrainer) on RUN/corpus; writes RUN/sft.")
    add_stage_arguments(p, "sft")
    p.set_defaults(func=_run)
    p = stages.add_parser("grpo", help="GRPO with trie-constrained rollouts after SFT",
                          description="GRPO (TRL GRPOTrainer) from RUN/sft/model with constrained rollouts; "
                                      "writes RUN/grpo.")
    add_stage_arguments(p, "grpo")
    p.set_defaults(func=_run)
