"""Small I/O helpers shared by every stage: atomic writes, content fingerprints, the artifact write
policy, readers with clear errors.

This module sits below everything else (it imports nothing from llmrec).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


class LlmrecError(Exception):
    """A user-facing error: the message names the file, the field and the fix."""


# ---- hashing and content fingerprints -----------------------------------------------------------
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


def file_fingerprint(path: str | Path) -> str:
    """16-hex content fingerprint of one file (sha256 of its bytes; the name does not count)."""
    path = Path(path)
    if not path.is_file():
        raise LlmrecError(f"{path}: no such file to fingerprint.")
    return sha256_file(path)[:16]


def folder_files(folder: str | Path, pattern: str = "*") -> dict[str, str]:
    """{relative path: sha256} of the files under `folder` matching `pattern` (hidden names skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LlmrecError(f"{folder}: no such folder to fingerprint.")
    out = {}
    for p in sorted(folder.glob(pattern)):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[rel.as_posix()] = sha256_file(p)
    return out


def folder_fingerprint(folder: str | Path, pattern: str = "*") -> str:
    """16-hex fingerprint of the names and bytes of the files matching `pattern` in `folder`."""
    return sha256_json(sorted(folder_files(folder, pattern).items()))[:16]


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def safetensors_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file, after checking the file is complete.

    The `safetensors` library validates (header, and data covering every tensor); the header is
    then read by hand because the library does not expose the tensors' byte offsets.
    """
    return _safetensors_header(Path(path))[1]


def _safetensors_header(path: Path) -> tuple[int, dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np"):
            pass
    except (SafetensorError, OSError) as e:
        raise LlmrecError(f"{path}: not a complete safetensors file ({e}); it was cut off while saving (a "
                          "killed run or a full disk) or is corrupt. Save the model again, or use an earlier "
                          "checkpoint.") from None
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return 8 + n, json.loads(f.read(n))


def _sampled_digest(path: Path, spans: Iterable[tuple[int, int]], block: int) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        for start, end in sorted(set(spans)):
            for off in {start, max(start, end - block)}:  # head and tail of each span
                f.seek(off)
                h.update(f.read(min(block, max(0, min(end, size) - off))))
    return h.hexdigest()


def weights_fingerprint(model_dir: str | Path, *, full_hash_bytes: int = 512 << 20, samples: int = 256,
                        block: int = 4096) -> str:
    """16-hex fingerprint of a model folder's weights: retraining into the same folder changes it.

    Weight files (safetensors, bin, pt, gguf, plus shard indexes) up to `full_hash_bytes` in total
    are hashed whole. Larger ones are hashed cheaply: names, sizes, the safetensors header
    (dtypes, shapes, offsets, metadata), the first and last `block` bytes of every tensor (new SID
    rows sit at the end of the embedding matrix) and `samples` blocks spread over each file.
    A truncated safetensors file is an LlmrecError.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise LlmrecError(f"{model_dir}: not a model folder (no such directory).")
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and (
        p.name.endswith(WEIGHT_SUFFIXES) or p.name.endswith((".safetensors.index.json", ".bin.index.json")))
        and p.name != "training_args.bin")
    if not any(p.name.endswith(WEIGHT_SUFFIXES) for p in files):
        raise LlmrecError(f"{model_dir}: no weight files (*.safetensors, *.bin, ...); not a saved model folder.")
    full = sum(p.stat().st_size for p in files) <= full_hash_bytes
    parts = []
    for p in files:
        size = p.stat().st_size
        rec: dict[str, Any] = {"name": p.name, "bytes": size}
        base, header = 0, {}
        if p.suffix == ".safetensors":
            base, header = _safetensors_header(p)
            rec["header"] = sha256_json(header)
        if full or p.name.endswith(".json"):
            rec["sha256"] = sha256_file(p)
        else:
            spans = [(0, size)] + [(int(o), int(o) + block) for o in np.linspace(0, max(0, size - block), samples)]
            spans += [(base + int(t["data_offsets"][0]), base + int(t["data_offsets"][1]))
                      for k, t in header.items() if k != "__metadata__"]
            rec["sampled"] = _sampled_digest(p, spans, block)
        parts.append(rec)
    return sha256_json(parts)[:16]


# ---- atomic writes and leftovers of killed runs ---------------------------------------------------
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


LEGACY_TEMP_AGE_S = 3600.0  # temp folders without a pid (older llmrec) are removed after an hour


def clean_stale_temps(path: str | Path) -> list[Path]:
    """Remove the hidden temp folders that killed writers of `path` left beside it.

    atomic_path names its temp `.NAME.PID.XXXX.tmp`: one whose process is gone is removed; if the
    writer died between moving the previous `path` aside and renaming the new one in, the
    complete new one (else the previous one) is put back first. Returns what was removed.
    """
    path = Path(path)
    parent, name = path.parent, path.name
    if not name or not parent.is_dir():
        return []
    ours = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[a-z0-9_]+\.tmp$")
    legacy_tmp = re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp$")
    legacy_old = re.compile(rf"^\.{re.escape(name)}\.old-(\d+)$")
    removed = []
    for entry in sorted(parent.iterdir()):
        if not entry.name.startswith(f".{name}."):
            continue
        try:
            if m := ours.match(entry.name):
                if _pid_alive(int(m.group(1))):
                    continue
                old, new = entry / ".old", entry / name
                if not os.path.lexists(path) and old.exists():
                    os.replace(new if new.exists() else old, path)  # finish (or undo) the interrupted swap
            elif m := legacy_old.match(entry.name):
                if _pid_alive(int(m.group(1))):
                    continue
                if not os.path.lexists(path):
                    os.replace(entry, path)  # the previous artifact, moved aside by a killed writer
                    continue
            elif not (legacy_tmp.match(entry.name) and time.time() - entry.stat().st_mtime > LEGACY_TEMP_AGE_S):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        except OSError:
            continue  # another process got there first
        removed.append(entry)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE; os has no binding for it).
    False where unsupported, and the caller falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Works for files and directories (a directory is swapped in one step where the OS allows).
    A failure or a kill leaves the previous `path` untouched; the next write cleans the leftovers.
    """
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise LlmrecError(f"{path}: not a file or folder name that can be written; give a named path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        try:
            if path.is_dir() and not path.is_symlink():
                if not _exchange(target, path):
                    os.replace(path, tmp / ".old")
                    os.replace(target, path)
            else:
                os.replace(target, path)
        except OSError as e:
            raise LlmrecError(f"{path}: cannot replace it with the new output ({e}).") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Atomically write JSON (numpy scalars and arrays allowed)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False, default=_json_default)
        f.write("\n")
    return Path(path)


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Atomically write one JSON object per line."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_json_default))
            f.write("\n")
    return Path(path)


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """Atomically save a numpy array."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)


# ---- readers with clear errors ---------------------------------------------------------------
def parse_json(text: str, where: str, **kw: Any) -> Any:
    """json.loads with errors naming `where`: malformed JSON, nesting too deep."""
    try:
        return json.loads(text, **kw)
    except json.JSONDecodeError as e:
        raise LlmrecError(f"{where}: malformed JSON at line {e.lineno} column {e.colno} ({e.msg}); "
                          "fix or re-export the file.") from None
    except RecursionError:
        raise LlmrecError(f"{where}: JSON nested too deeply to read (over ~{sys.getrecursionlimit()} "
                          "levels); this is not a dataset record, check the file.") from None


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read JSON (a UTF-8 BOM allowed) with an error that names the file and position."""
    path = Path(path)
    if not path.exists():
        raise LlmrecError(f"{what} not found: {path}. Check the path (or LLMREC_DATA_DIR).")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise LlmrecError(f"{path}: not valid UTF-8 at byte {e.start}; re-encode the file as UTF-8.") from e
    return parse_json(text, str(path))


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSON-lines file; errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise LlmrecError(f"file not found: {path}")
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                rows.append(parse_json(line, f"{path}:{lineno}"))
    return rows


# ---- where outputs may go ----------------------------------------------------------------------
def _manifest_format(folder: Path, name: str = "manifest.json") -> str:
    try:
        return str(json.loads((folder / name).read_text(encoding="utf-8")).get("format", ""))
    except (OSError, ValueError, AttributeError):
        return ""


# kind -> does this folder hold one? (first match wins: a bundle holds a model, a model a sid map)
ARTIFACT_KINDS: dict[str, Callable[[Path], bool]] = {
    "bundle": lambda f: (f / "llmrec_config.json").is_file(),
    "model": lambda f: (f / "llmrec_sid.json").is_file(),
    "data": lambda f: _manifest_format(f).startswith("llmrec.data/"),
    "corpus": lambda f: _manifest_format(f).startswith("llmrec.corpus/"),
    "sid": lambda f: (f / "sid_map.json").is_file() and not (f / "config.json").exists(),
    "train": lambda f: (f / "train_summary.json").is_file() or any(f.glob("checkpoint-*/trainer_state.json")),
    "eval": lambda f: _manifest_format(f, "metrics.json").startswith("llmrec.eval"),
}


def artifact_kind(folder: str | Path) -> str | None:
    """Which llmrec artifact a folder holds ('data', 'sid', 'corpus', 'model', ...), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    return next((kind for kind, test in ARTIFACT_KINDS.items() if test(folder)), None)


def prepare_output(path: str | Path, kind: str, *, protect: Iterable[str | Path] = (),
                   flag: str = "--out") -> Path:
    """Check, before any heavy work, that an artifact of `kind` may be written at `path`.

    Allowed: a new or empty folder, or one holding an artifact of the same kind (it is replaced
    atomically). Refused with an LlmrecError: the current folder or one above it, a filesystem
    root or home, `path` equal to or above any `protect` path (the run, the inputs), a file, and a
    non-empty folder holding anything else: llmrec never deletes a folder it did not write.
    Leftover temp folders of killed writers of `path` are cleaned first.
    """
    p = Path(path).expanduser()
    if not str(path).strip():
        raise LlmrecError(f"{flag}: empty path; give a folder for the {kind}.")
    rp = p.resolve()
    cwd = Path.cwd().resolve()
    if rp == cwd or rp in cwd.parents or rp == Path(rp.anchor) or rp == Path.home().resolve():
        raise LlmrecError(f"{flag} {path}: that is the current folder, one above it, or your home/root "
                          f"folder; writing the {kind} there would replace it. Give a new folder, e.g. "
                          f"{flag} {Path(path) / kind}.")
    for q in protect:
        rq = Path(q).expanduser().resolve()
        if rp == rq or rp in rq.parents:
            raise LlmrecError(f"{flag} {path}: that is {q} or a folder holding it; writing the {kind} there "
                              f"would replace it. Give a folder of its own, e.g. {flag} {Path(q) / kind}.")
    clean_stale_temps(p)
    if p.is_file() or (p.is_symlink() and not p.is_dir()):
        raise LlmrecError(f"{flag} {path}: is a file, not a folder; give a folder for the {kind}.")
    if not p.exists() or not any(p.iterdir()):
        return p
    found = artifact_kind(p)
    if found == kind:
        return p
    what = f"holds a {found} artifact" if found else "is a non-empty folder that llmrec did not write"
    raise LlmrecError(f"{flag} {path}: {what}, not a {kind}; refusing to replace it (llmrec only replaces "
                      f"an earlier {kind}). Give a new or empty folder, or move that one away yourself.")


# ---- locations ---------------------------------------------------------------------------------
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
