"""Shared fixtures: the real datasets folder and a once-per-session Games load.

Data-dependent tests go through `require_data`: it skips when the data is absent on a developer's
machine, and fails under CI=true, where the data is always there (a skip would hide a broken setup).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def require(condition: bool, reason: str) -> None:
    """Skip (or, under CI, fail) unless `condition` holds."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI must have it)")
    pytest.skip(reason)


def require_data(path: str | Path) -> Path:
    """`path` (under the datasets folder when relative), skipping/failing like `require` when missing."""
    from llmrec.io import data_dir

    path = Path(path)
    path = path if path.is_absolute() else data_dir() / path
    require(path.exists(), f"dataset file missing: {path} (set LLMREC_DATA_DIR to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def data_root():
    """llmrec.io.data_dir(), or skip with the reason when the real datasets are not there."""
    from llmrec.io import data_dir

    root = data_dir()
    require_data(root / "README.md")
    return root


@pytest.fixture(scope="session")
def games_dataset(data_root):
    """The largest dataset (Amazon Games, 453k events), loaded once per test session."""
    from llmrec.data.loaders import load_dataset

    return load_dataset("amazon18_games_notext")
