"""The run-folder cache of trained baselines: RUN/baselines/<name>/{model.safetensors,config.json}.

A cached model is reused when its content fingerprint matches: the model format, the training and
validation data it would be trained on (the sequences themselves, not only the manifest), the
catalogue, its config and any other input (e.g. the SID map's fingerprint). Otherwise it is retrained
and the folder replaced atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from llmrec.io import sha256_json

log = logging.getLogger(__name__)
M = TypeVar("M")


def data_fingerprint(prepared) -> str:
    """The prepared data's own fingerprint (manifest), as older caches recorded it."""
    return prepared.fingerprint


def training_fingerprint(prepared) -> str:
    """Hash of what a baseline learns from: training sequences, validation examples, catalogue."""
    split = prepared.split
    return sha256_json({
        "train": [[u, [x.item for x in seq]] for u, seq in sorted(split.train.items())],
        "valid": [[e.user, e.history, e.target] for e in split.valid],
        "items": list(prepared.items),
    })[:16]


def cached_model(folder: str | Path, model_cls: type[M], prepared, config: Mapping[str, Any],
                 train: Callable[[], tuple[M, dict[str, Any]]], data_fp: str, *, retrain: bool = False,
                 any_config: bool = False, inputs: Mapping[str, str] | None = None) -> tuple[M, dict[str, Any]]:
    """`folder` when its model was built from this data (and, unless `any_config`, this config) and
    these `inputs` (name -> fingerprint, e.g. {"sid": ...}); else `train()` and cache the result.
    Returns (model, training info)."""
    folder = Path(folder)
    inputs = dict(inputs or {})
    catalogue = list(prepared.items)
    fingerprint = sha256_json({"format": model_cls.FORMAT, "data": training_fingerprint(prepared),
                               "config": dict(config), "inputs": inputs})[:16]
    meta_path = folder / "config.json"
    if not retrain and meta_path.exists():
        from llmrec.baselines.train_loop import read_meta

        meta = read_meta(folder)
        same_data = (meta.get("format") == model_cls.FORMAT and meta.get("data_fingerprint") == data_fp
                     and meta.get("item_ids") == catalogue and meta.get("inputs", {}) == inputs)
        if same_data and (any_config or meta.get("fingerprint") == fingerprint):
            log.info("using cached %s from %s", model_cls.__name__, folder)
            return model_cls.load(folder), meta.get("train", {})
        log.info("%s was built from other data or config; retraining", folder)
    model, info = train()
    model.save(folder, extra={"data_fingerprint": data_fp, "fingerprint": fingerprint, "inputs": inputs,
                              "train": info})
    log.info("%s trained in %.1fs (best epoch %s, valid NDCG@10 %.4f); saved to %s", model_cls.__name__,
             info.get("seconds", 0.0), info.get("best_epoch"), info.get("best_valid_ndcg@10", 0.0), folder)
    return model, info
