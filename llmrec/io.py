"""Small I/O helpers shared by every stage: atomic writes, hashing, run-directory layout.

This module sits below everything else (it imports nothing from llmrec).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


class LlmrecError(Exception):
    """A user-facing error: the message names the file, the field and the fix."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex sha256 of a JSON-serialisable object in canonical form (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Works for files and directories. A failure leaves the previous `path` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
            os.replace(target, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Atomically write JSON (numpy scalars and arrays allowed)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False, default=_json_default)
        f.write("\n")
    return Path(path)


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read JSON with an error that names the file and position instead of a bare traceback."""
    path = Path(path)
    if not path.exists():
        raise LlmrecError(f"{what} not found: {path}. Check the path (or LLMREC_DATA_DIR).")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except UnicodeDecodeError as e:
        raise LlmrecError(f"{path}: not valid UTF-8 at byte {e.start}; re-encode the file as UTF-8.") from e
    except json.JSONDecodeError as e:
        raise LlmrecError(
            f"{path}: malformed JSON at line {e.lineno} column {e.colno} ({e.msg}); fix or re-export the file."
        ) from e


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Atomically write one JSON object per line."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_json_default))
            f.write("\n")
    return Path(path)


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSON-lines file; errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise LlmrecError(f"file not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise LlmrecError(f"{path}:{lineno}: malformed JSON line ({e.msg})") from e
    return rows


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """Atomically save a numpy array."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)


def data_dir() -> Path:
    """Root of the datasets: $LLMREC_DATA_DIR, else ../shared/data beside the checkout, else ./data."""
    env = os.environ.get("LLMREC_DATA_DIR")
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "shared" / "data", here / "data"):
        if cand.exists():
            return cand
    return here.parent / "shared" / "data"


def cache_dir() -> Path:
    """Cache for embeddings, converted models and downloads: $LLMREC_CACHE or ~/.cache/llmrec."""
    path = Path(os.environ.get("LLMREC_CACHE", Path.home() / ".cache" / "llmrec")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
