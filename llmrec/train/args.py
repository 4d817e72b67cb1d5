"""Command-line arguments of the training stages (kept free of torch imports so `llmrec --help` is fast)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from typing import Any

from llmrec.io import LlmrecError
from llmrec.train.config import GRPORecipe, SFTRecipe, load_recipe

# flag -> recipe key, per stage (GRPO also takes the model to start from)
_FLAGS = {
    "sft": (("run", "run"), ("init_model", "init_model"), ("corpus", "corpus"), ("output", "output"),
            ("max_steps", "train.max_steps"), ("max_minutes", "train.max_minutes")),
    "grpo": (("run", "run"), ("init_model", "init_model"), ("output", "output"), ("max_steps", "train.max_steps"),
             ("max_minutes", "train.max_minutes")),
}
_RECIPES = {"sft": SFTRecipe, "grpo": GRPORecipe}


def add_stage_arguments(parser: argparse.ArgumentParser, stage: str) -> None:
    parser.add_argument("--config", help=f"recipe yaml (e.g. recipes/tiny-cpu/{stage}.yaml)")
    parser.add_argument("--run", help="run directory (overrides the recipe's `run`)")
    parser.add_argument("--init-model", help="llmrec model to start from, e.g. '{run}/sft/model' (GRPO default: "
                                             "RUN/sft/model; SFT default: a fresh model.preset)")
    if stage == "sft":
        parser.add_argument("--corpus", help="corpus folder (default RUN/corpus)")
    parser.add_argument("--output", help=f"output directory (default RUN/{stage})")
    parser.add_argument("--max-steps", type=int, help="override train.max_steps")
    parser.add_argument("--max-minutes", type=float, help="override train.max_minutes")
    parser.add_argument("--resume", action="store_true", help="resume from the latest checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any recipe field, e.g. --set train.learning_rate=1e-4")


def recipe_from_args(stage: str, args: argparse.Namespace) -> Any:
    overrides = list(args.set)
    for flag, key in _FLAGS[stage]:
        value = getattr(args, flag, None)
        if value is not None:
            # paths go in as quoted strings: "{run}/sft/model" is not valid yaml as it stands
            overrides.append(f"{key}={json.dumps(value) if isinstance(value, str) else value}")
    if args.resume:
        overrides.append("resume=true")
    return load_recipe(_RECIPES[stage], args.config, overrides)


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
