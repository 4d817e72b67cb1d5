"""What a data format is (detect + load) and the registry of formats."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.data.records import Example, Interaction, Item
from llmrec.registry import Registry


@dataclass
class Loaded:
    """What a format's `load` returns, before the shared cleaning (unknown items, dedupe, k-core)."""

    items: dict[str, Item]
    interactions: list[Interaction]
    files: list[Path]
    format: str
    users: dict[str, dict] = field(default_factory=dict)
    presplit: dict[str, list[Example]] = field(default_factory=dict)
    checked_items: bool = True  # False: the catalogue is derived from the interactions
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DataFormat:
    """An input format: `detect(path)` guesses from names and the first line (cheap, no parse);
    `load(path, **options)` reads it. `options` are the format's own loader options and defaults;
    `priority` orders detection (lower first)."""

    name: str
    detect: Callable[[Path], bool]
    load: Callable[..., Loaded]
    options: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 50
    description: str = ""


DATA_FORMATS: Registry[DataFormat] = Registry("data format")


def register_format(fmt: DataFormat) -> DataFormat:
    """Add a format to DATA_FORMATS (users may also pass `package.module:attr` as format=)."""
    return DATA_FORMATS.add(fmt.name, fmt)
