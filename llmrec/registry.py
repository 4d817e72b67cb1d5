"""Registries: name -> implementation for the swappable parts (quantizers, vector sources, rewards,
baselines, data formats, corpus tasks). A dotted path `package.module:attr` reaches user code, as
TRL does for reward functions."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from llmrec.io import LlmrecError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' when a close choice exists, else ''."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_dotted_path(name: str) -> bool:
    """`pkg.mod:attr` names user code (a colon is never part of a registered name)."""
    return isinstance(name, str) and ":" in name


def import_dotted(path: str, kind: str = "object") -> object:
    """Import `package.module:attr` (attr may be nested with dots)."""
    module_name, _, attr = path.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as e:
        raise LlmrecError(f"{kind} {path!r}: cannot import module {module_name!r} ({e})") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise LlmrecError(f"{kind} {path!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Named implementations of one kind of part; `get` also accepts `package.module:attr`."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@QUANTIZERS.register("rkmeans")`."""
        if ":" in name:
            raise ValueError(f"registered names cannot contain ':' ({name!r})")

        def add(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def names(self) -> list[str]:
        return sorted(self._items)

    def check(self, name: str) -> None:
        """Raise a clear error unless `name` is registered or a dotted path (not imported here)."""
        if name in self._items or is_dotted_path(name):
            return
        raise LlmrecError(f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; "
                          f"choose one of {', '.join(self.names())} or give package.module:attr")

    def get(self, name: str) -> T:
        self.check(name)
        if name in self._items:
            return self._items[name]
        return import_dotted(name, self.kind)  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        return name in self._items or (isinstance(name, str) and is_dotted_path(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
