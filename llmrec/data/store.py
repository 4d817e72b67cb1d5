"""`runs/NAME/data/`: items, interactions, split and a manifest, written atomically as one folder."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrec.data.records import Example, Interaction, Item, RecDataset, Split
from llmrec.io import LlmrecError, atomic_path, read_json, read_jsonl, sha256_json, write_json, write_jsonl

MANIFEST = "manifest.json"


@dataclass
class PreparedData:
    """What `llmrec data prepare` wrote: the dataset, its split and the manifest."""

    dataset: RecDataset
    split: Split
    manifest: dict[str, Any]

    @property
    def items(self) -> dict[str, Item]:
        return self.dataset.items

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]


def save_prepared(out_dir: str | Path, dataset: RecDataset, split: Split,
                  extra: dict[str, Any] | None = None) -> Path:
    """Write the whole data folder to a temp dir, then rename it into place."""
    out_dir = Path(out_dir)
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
        counts = dataset.counts()
        manifest = {
            "format": "llmrec.data/1",
            "name": dataset.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": dataset.source,
            "counts": {**counts, "train_users": len(split.train),
                       "train_events": sum(len(s) for s in split.train.values()),
                       "valid": len(split.valid), "test": len(split.test)},
            "behaviors": dataset.behaviors,
            "dropped": dataset.dropped,
            "split": {"method": split.method, **split.options},
            **(extra or {}),
        }
        manifest["fingerprint"] = sha256_json({"source": dataset.source, "split": manifest["split"],
                                               "counts": manifest["counts"]})[:16]
        write_json(tmp / MANIFEST, manifest)
    return out_dir


def load_prepared(data_dir: str | Path) -> PreparedData:
    """Read a folder written by save_prepared (errors say to run `llmrec data prepare`)."""
    data_dir = Path(data_dir)
    if not (data_dir / MANIFEST).exists():
        raise LlmrecError(f"{data_dir}: no {MANIFEST}; run `llmrec data prepare` first.")
    manifest = read_json(data_dir / MANIFEST)
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
    split = Split(train=train,
                  valid=[Example.from_dict(d) for d in read_jsonl(data_dir / "valid.jsonl")],
                  test=[Example.from_dict(d) for d in read_jsonl(data_dir / "test.jsonl")],
                  method=method, options=opts)
    return PreparedData(dataset=ds, split=split, manifest=manifest)
