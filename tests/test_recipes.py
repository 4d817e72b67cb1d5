"""Every shipped recipe parses: no unknown keys, numbers are numbers, corpus task names exist."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmrec.io import LlmrecError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TRAIN_RECIPES = sorted(p for p in RECIPES.glob("*/*.yaml") if p.stem.startswith(("sft", "grpo")))
CORPUS_RECIPES = sorted(RECIPES.glob("*/corpus*.yaml"))


def test_the_recipe_folders_are_found():
    assert len(TRAIN_RECIPES) >= 8 and CORPUS_RECIPES


@pytest.mark.parametrize("path", TRAIN_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_training_recipe_loads(path):
    from llmrec.train.config import GRPORecipe, SFTRecipe, load_recipe

    cls = GRPORecipe if path.stem.startswith("grpo") else SFTRecipe
    with pytest.raises(LlmrecError, match="pass --run RUN"):  # no recipe writes into a default run
        load_recipe(cls, path)
    recipe = load_recipe(cls, path, ["run=runs/x"])
    assert isinstance(recipe.train.learning_rate, float) and recipe.train.learning_rate > 0
    for value in (getattr(recipe, "init_model", None), recipe.output):
        assert value is None or "{" not in value.replace("{run}", "")  # only {run} is substituted


@pytest.mark.parametrize("path", CORPUS_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_recipe_loads(path):
    from llmrec.corpus.build import CorpusConfig

    config = CorpusConfig.from_yaml(path)
    assert config.resolved_tasks()
    assert set(yaml.safe_load(path.read_text()).get("repeats", {})) <= set(config.resolved_tasks())
