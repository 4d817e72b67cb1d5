"""Readers the format modules share: every problem is an LlmrecError naming the file, the line and
the fix (bad bytes, a UTF-8 BOM, malformed or too deeply nested JSON, oversized csv fields)."""

from __future__ import annotations

import ast
import csv
import gzip
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmrec.io import LlmrecError, parse_json, sha256_file

CSV_FIELD_LIMIT = 1 << 30  # the csv module's default is 128 KB; long MiniOneRec histories exceed it


def need(path: Path, what: str, fix: str = "check the path (or LLMREC_DATA_DIR)") -> Path:
    if not path.exists():
        raise LlmrecError(f"{what} not found: {path}; {fix}.")
    return path


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Whole file as text (gzip unpacked, a UTF-8 BOM dropped); bad bytes name the byte offset."""
    need(path, "input file")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise LlmrecError(f"{path}: not a valid gzip file ({e}); download it again.") from e
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as e:
        raise LlmrecError(f"{path}: not valid {encoding} at byte {e.start} ({raw[e.start:e.start + 8]!r}); "
                          f"re-encode the file as {encoding}.") from e


def _no_duplicate_keys(path: Path) -> Callable[[list[tuple[str, Any]]], dict]:
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for k, v in pairs:
            if k in out:
                raise LlmrecError(f"{path}: duplicate id {k!r} (the key appears twice); "
                                  "remove one of the entries so each id is unique.")
            out[k] = v
        return out
    return hook


def read_json(path: Path, what: str) -> Any:
    """JSON with errors naming file/line/column, duplicate keys refused."""
    need(path, what)
    return parse_json(read_text(path), str(path), object_pairs_hook=_no_duplicate_keys(path))


def expect_dict(obj: Any, path: Path, shape: str) -> dict:
    if not isinstance(obj, dict):
        raise LlmrecError(f"{path}: expected a JSON object {shape}, got {type(obj).__name__}.")
    return obj


def file_record(path: Path) -> dict[str, Any]:
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def csv_rows(path: Path, text: str | None = None, *, header: bool = False) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header or [], [(line number, fields)]) of a csv file; empty lines skipped.

    Fields may be up to CSV_FIELD_LIMIT long (the module-wide limit is restored afterwards); a
    broken record (e.g. an unclosed quote) is an error naming the line.
    """
    text = read_text(path) if text is None else text
    old = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        reader = csv.reader(io.StringIO(text))
        rows, names = [], []
        for row in reader:
            if not row:
                continue
            if header and not names:
                names = [c.strip() for c in row]
                continue
            rows.append((reader.line_num, row))
    except csv.Error as e:
        raise LlmrecError(f"{path}:{reader.line_num}: unreadable csv record ({e}); fix the record.") from None
    finally:
        csv.field_size_limit(old)
    return names, rows


def literal(text: str, where: str, what: str = "python literal") -> Any:
    """A python literal (old dumps write dicts/lists in python syntax); errors name `where`."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError) as e:
        raise LlmrecError(f"{where}: not a {what} ({e.__class__.__name__}: {text[:60]!r}); "
                          "fix the record.") from None
    except (RecursionError, MemoryError):
        raise LlmrecError(f"{where}: value nested too deeply to read; fix the record.") from None


def literal_list(text: str, where: str) -> list:
    val = literal(text, where, "python list literal")
    if not isinstance(val, (list, tuple)):
        raise LlmrecError(f"{where}: expected a list, got {type(val).__name__}; fix the record.")
    return list(val)


def first_line(path: Path, limit: int = 1 << 16) -> str:
    """The first line of a file (BOM dropped), for detection."""
    with open(path, "rb") as f:
        line = f.readline(limit)
    return line.decode("utf-8", "replace").lstrip("\ufeff")


def split_categories(cats: Any) -> list:
    if isinstance(cats, str):
        return [c.strip() for c in cats.split(",") if c.strip()]
    return list(cats or [])
