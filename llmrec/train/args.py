"""Command-line arguments of the training stages (kept free of torch imports so `llmrec --help` is fast)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from typing import Any

from llmrec.config import add_config_arguments, config_from_args
from llmrec.io import LlmrecError
from llmrec.train.config import GRPORecipe, SFTRecipe

_FLAGS = {
    "sft": ("run", "init_model", "corpus", "output", "train.max_steps", "train.max_minutes"),
    "grpo": ("run", "init_model", "output", "train.max_steps", "train.max_minutes"),
}
_RECIPES = {"sft": SFTRecipe, "grpo": GRPORecipe}


def add_stage_arguments(parser: argparse.ArgumentParser, stage: str) -> None:
    add_config_arguments(parser, _RECIPES[stage], _FLAGS[stage], example=f"recipes/tiny-cpu/{stage}.yaml")
    parser.add_argument("--resume", action="store_true", help="resume from the newest complete checkpoint")


def recipe_from_args(stage: str, args: argparse.Namespace) -> Any:
    return config_from_args(_RECIPES[stage], args, {"resume": True} if args.resume else None)


def stage_main(stage: str, run: Callable[[Any], dict], argv: list[str] | None = None) -> int:
    """`python -m llmrec.train.<stage>` (what `accelerate launch -m` runs)."""
    parser = argparse.ArgumentParser(prog=f"llmrec.train.{stage}", description=f"llmrec {stage} training")
    add_stage_arguments(parser, stage)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = run(recipe_from_args(stage, args))
    except LlmrecError as e:
        print(f"llmrec: error: {e}")
        return 1
    print(json.dumps({k: v for k, v in summary.items() if k != "recipe"}, default=str))
    return 0
