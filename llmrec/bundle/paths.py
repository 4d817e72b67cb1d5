"""No local paths in anything pushed or served: names and JSON values scrubbed of absolute paths."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_ABS_RE = re.compile(r"(?:(?<=^)|(?<=[\s'\"=(,]))(?:~|[A-Za-z]:)?[/\\][\w.-]+[/\\][^\s'\",)]*")  # 2+ parts, not URLs


def public_name(value: str | None) -> str | None:
    """A name safe to publish: a local path becomes its last part ('/home/u/runs/sci' -> 'sci')."""
    if value is None:
        return None
    s = str(value)
    if looks_local(s):
        return Path(s.rstrip("/\\")).name or None
    return s


def looks_local(s: str) -> bool:
    """A string that names a local file or folder rather than a Hub id or a preset name."""
    return s.startswith(("/", "~", "./", "../", ".\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", s)) or \
        s.count("/") > 1 or Path(s).exists()


def scrub_paths(obj: Any) -> Any:
    """Copy of a JSON-like value with every absolute path inside strings cut to its last part."""
    if isinstance(obj, Mapping):
        return {k: scrub_paths(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_paths(v) for v in obj]
    if isinstance(obj, str):
        return _ABS_RE.sub(lambda m: Path(m.group(0).rstrip("/\\")).name or "<path>", obj)
    return obj


