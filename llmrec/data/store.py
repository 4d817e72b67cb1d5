"""`runs/NAME/data/`: items, interactions, split and a manifest, written atomically as one folder.

The data fingerprint is the content of the data files (names + sha256 of every *.jsonl), computed
again at every load: editing a title in items.jsonl or a target in test.jsonl changes it, so every
artifact and cache keyed on it notices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.data.records import Example, Interaction, Item, RecDataset, Split
from llmrec.io import (
    LlmrecError,
    atomic_path,
    folder_files,
    prepare_output,
    read_json,
    read_jsonl,
    sha256_json,
    write_json,
    write_jsonl,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DATA_FILES = "*.jsonl"
FINGERPRINT_BASIS = "content: sha256 of the data folder's *.jsonl files"


def content_fingerprint(files: dict[str, str]) -> str:
    """The data fingerprint from {file name: sha256} (as `llmrec.io.folder_fingerprint`)."""
    return sha256_json(sorted(files.items()))[:16]


@dataclass
class PreparedData:
    """What `llmrec data prepare` wrote: the dataset, its split and the manifest."""

    dataset: RecDataset
    split: Split
    manifest: dict[str, Any]
    aliases: frozenset[str] = field(default_factory=frozenset)  # older (non-content) fingerprints of it

    @property
    def items(self) -> dict[str, Item]:
        return self.dataset.items

    @property
    def fingerprint(self) -> str:
        """Content fingerprint of the data files as they are now."""
        return self.manifest["fingerprint"]

    def matches(self, fingerprint: str | None) -> bool:
        """True when an artifact recording `fingerprint` was built from this data."""
        return bool(fingerprint) and (fingerprint == self.fingerprint or fingerprint in self.aliases)


def save_prepared(out_dir: str | Path, dataset: RecDataset, split: Split, extra: dict[str, Any] | None = None,
                  *, before_commit: Callable[[str], None] | None = None) -> Path:
    """Write the whole data folder to a temp dir, then rename it into place.

    `before_commit(fingerprint)` runs once the new files exist and may raise to keep the old
    folder (e.g. when downstream artifacts would go stale). A non-empty `out_dir` that is not a
    data folder is refused (llmrec.io.prepare_output).
    """
    out_dir = prepare_output(out_dir, "data")
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        write_jsonl(tmp / "items.jsonl", (it.to_dict() for it in dataset.items.values()))
        write_jsonl(tmp / "interactions.jsonl", (x.to_dict() for x in dataset.interactions))
        write_jsonl(tmp / "train.jsonl", ({"user": u, "events": [x.to_dict() for x in seq]}
                                           for u, seq in split.train.items()))
        if dataset.users:
            write_jsonl(tmp / "users.jsonl", ({"user": u, **attrs} for u, attrs in dataset.users.items()))
        write_jsonl(tmp / "valid.jsonl", (e.to_dict() for e in split.valid))
        write_jsonl(tmp / "test.jsonl", (e.to_dict() for e in split.test))
        if split.tune:
            write_jsonl(tmp / "tune.jsonl", (e.to_dict() for e in split.tune))
        counts = dataset.counts()
        manifest = {
            "format": "llmrec.data/1",
            "name": dataset.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": dataset.source,
            "counts": {**counts, "train_users": len(split.train),
                       "train_events": sum(len(s) for s in split.train.values()),
                       **({"tune": len(split.tune)} if split.tune else {}),
                       "valid": len(split.valid), "test": len(split.test)},
            "behaviors": dataset.behaviors,
            "dropped": dataset.dropped,
            "split": {"method": split.method, **split.options},
            **(extra or {}),
        }
        files = folder_files(tmp, DATA_FILES)
        manifest.update(fingerprint=content_fingerprint(files), fingerprint_basis=FINGERPRINT_BASIS, files=files)
        if before_commit is not None:
            before_commit(manifest["fingerprint"])
        write_json(tmp / MANIFEST, manifest)
    return out_dir


def load_prepared(data_dir: str | Path) -> PreparedData:
    """Read a folder written by save_prepared (errors say to run `llmrec data prepare`)."""
    data_dir = Path(data_dir)
    if not (data_dir / MANIFEST).exists():
        raise LlmrecError(f"{data_dir}: no {MANIFEST}; run `llmrec data prepare` first.")
    manifest = read_json(data_dir / MANIFEST)
    aliases = _refresh_fingerprint(data_dir, manifest)
    items = {d["id"]: Item.from_dict(d) for d in read_jsonl(data_dir / "items.jsonl")}
    inter = [Interaction.from_dict(d) for d in read_jsonl(data_dir / "interactions.jsonl")]
    users = {}
    if (data_dir / "users.jsonl").exists():
        users = {str(r.pop("user")): r for r in read_jsonl(data_dir / "users.jsonl")}
    ds = RecDataset(name=manifest["name"], items=items, interactions=inter,
                    source=manifest.get("source", {}), dropped=manifest.get("dropped", {}), users=users)
    train = {r["user"]: [Interaction.from_dict(x) for x in r["events"]] for r in read_jsonl(data_dir / "train.jsonl")}
    opts = dict(manifest.get("split", {}))
    method = opts.pop("method", "loo")
    tune_file = data_dir / "tune.jsonl"
    split = Split(train=train,
                  valid=[Example.from_dict(d) for d in read_jsonl(data_dir / "valid.jsonl")],
                  test=[Example.from_dict(d) for d in read_jsonl(data_dir / "test.jsonl")],
                  method=method, options=opts,
                  tune=[Example.from_dict(d) for d in read_jsonl(tune_file)] if tune_file.exists() else [])
    return PreparedData(dataset=ds, split=split, manifest=manifest, aliases=aliases)


def fingerprint_of(data_dir: str | Path) -> tuple[str, frozenset[str]]:
    """(content fingerprint now, accepted older fingerprints) of a data folder, without parsing it."""
    manifest = read_json(Path(data_dir) / MANIFEST, "data manifest")
    aliases = _refresh_fingerprint(Path(data_dir), manifest, warn=False)
    return manifest["fingerprint"], aliases


def _refresh_fingerprint(data_dir: Path, manifest: dict[str, Any], warn: bool = True) -> frozenset[str]:
    """Set manifest['fingerprint'] to the files' content now; returns the accepted older fingerprints.

    A manifest from before content fingerprints (no 'files') keeps its recorded fingerprint as an
    alias, so artifacts built from it still pair; its content cannot be checked.
    """
    files = folder_files(data_dir, DATA_FILES)
    recorded = manifest.get("fingerprint")
    manifest["fingerprint"] = content_fingerprint(files)
    if "files" not in manifest:
        return frozenset({recorded}) if recorded else frozenset()
    if recorded != manifest["fingerprint"] and warn:
        changed = sorted(n for n in set(files) | set(manifest["files"]) if files.get(n) != manifest["files"].get(n))
        manifest["recorded_fingerprint"] = recorded
        log.warning("%s: %s changed since `llmrec data prepare` wrote them; the data fingerprint is now %s "
                    "(was %s), so artifacts built from the old files will be refused", data_dir,
                    ", ".join(changed), manifest["fingerprint"], recorded)
    return frozenset()
