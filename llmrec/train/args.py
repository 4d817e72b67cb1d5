"""Command-line arguments of the training stages (kept free of torch imports so `llmrec --help` is fast)."""

from __future__ import annotations

import argparse

from llmrec.train.config import GRPORecipe, SFTRecipe, load_recipe


def add_sft_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="recipe yaml (e.g. recipes/tiny-cpu/sft.yaml)")
    parser.add_argument("--run", help="run directory (overrides the recipe's `run`)")
    parser.add_argument("--output", help="output directory (default RUN/sft)")
    parser.add_argument("--max-steps", type=int, help="override train.max_steps")
    parser.add_argument("--max-minutes", type=float, help="override train.max_minutes")
    parser.add_argument("--resume", action="store_true", help="resume from the latest checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any recipe field, e.g. --set train.learning_rate=1e-4")


def sft_recipe_from_args(args: argparse.Namespace) -> SFTRecipe:
    overrides = list(args.set)
    for flag, key in (("run", "run"), ("output", "output"), ("max_steps", "train.max_steps"),
                      ("max_minutes", "train.max_minutes")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.resume:
        overrides.append("resume=true")
    return load_recipe(SFTRecipe, args.config, overrides)


def add_grpo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="recipe yaml (e.g. recipes/tiny-cpu/grpo.yaml)")
    parser.add_argument("--run", help="run directory (overrides the recipe's `run`)")
    parser.add_argument("--init-model", help="model to start from (default RUN/sft/model)")
    parser.add_argument("--output", help="output directory (default RUN/grpo)")
    parser.add_argument("--max-steps", type=int, help="override train.max_steps")
    parser.add_argument("--max-minutes", type=float, help="override train.max_minutes")
    parser.add_argument("--resume", action="store_true", help="resume from the latest checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any recipe field, e.g. --set grpo.beta=0.02")


def grpo_recipe_from_args(args: argparse.Namespace) -> GRPORecipe:
    overrides = list(args.set)
    for flag, key in (("run", "run"), ("init_model", "init_model"), ("output", "output"),
                      ("max_steps", "train.max_steps"), ("max_minutes", "train.max_minutes")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.resume:
        overrides.append("resume=true")
    return load_recipe(GRPORecipe, args.config, overrides)
