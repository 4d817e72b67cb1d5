"""Shared fixtures: the real datasets folder (skip when absent) and a once-per-session Games load."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_root():
    """llmrec.io.data_dir(), or skip with the reason when the real datasets are not there."""
    from llmrec.io import data_dir

    root = data_dir()
    if not (root / "README.md").exists():
        pytest.skip(f"real datasets not found at {root}; set LLMREC_DATA_DIR to the shared data folder")
    return root


@pytest.fixture(scope="session")
def games_dataset(data_root):
    """The largest dataset (Amazon Games, 453k events), loaded once per test session."""
    from llmrec.data.loaders import load_dataset

    return load_dataset("amazon18_games_notext")
