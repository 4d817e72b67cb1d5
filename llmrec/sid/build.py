"""build_sids: items -> vectors -> quantizer codes (any registered method) -> distinct SIDs -> RUN/sid/.

RUN/sid/ holds sid_map.json, embeddings.npy (rows in sid_map order), codebooks.npz, quantizer/
(quantizer.json + quantizer.safetensors: enough to encode items added later, `llmrec sid encode`),
stats.json, config.yaml, utilization.png and, for learned methods, loss.png.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.data.records import Interaction, Item, RecDataset
from llmrec.data.store import PreparedData
from llmrec.io import LlmrecError, atomic_path, save_npy, sha256_json, write_json
from llmrec.sid.collisions import count_collisions, resolve_collisions
from llmrec.sid.config import SOURCES, SidConfig
from llmrec.sid.embed import common_categories, embed_items
from llmrec.sid.quantizers import BaseQuantizer, plot_history
from llmrec.sid.sidmap import SidMap
from llmrec.sid.vectors import (
    category_vectors,
    collaborative_vectors,
    fuse_vectors,
    load_npy_vectors,
    random_vectors,
)

log = logging.getLogger(__name__)

def _unpack(items: Any, interactions: Any) -> tuple[dict[str, Item], dict[str, list[str]] | None, str, str]:
    """(items, training sequences or None, input fingerprint, where interactions came from)."""
    seqs: dict[str, list[str]] | None = None
    origin = "none"
    if isinstance(items, PreparedData):
        fp = items.fingerprint
        seqs = items.split.train_items()
        origin = "prepared train split"
        item_map = items.items
    elif isinstance(items, RecDataset):
        item_map = items.items
        fp = sha256_json({"source": items.source, "counts": items.counts()})[:16]
        seqs = {u: [x.item for x in s] for u, s in items.sequences().items()}
        origin = "all dataset interactions"
    elif isinstance(items, Mapping):
        item_map = dict(items)
        fp = sha256_json(sorted((k, v.to_dict() if isinstance(v, Item) else v) for k, v in item_map.items()))[:16]
    else:
        raise LlmrecError(f"build_sids: items must be dict[str, Item], RecDataset or PreparedData, "
                          f"got {type(items).__name__}")
    if interactions is not None:
        origin = "given"
        if isinstance(interactions, Mapping):
            seqs = {str(u): [x.item if isinstance(x, Interaction) else str(x) for x in s]
                    for u, s in interactions.items()}
        else:
            tmp = RecDataset(name="_", items={}, interactions=list(interactions))
            seqs = {u: [x.item for x in s] for u, s in tmp.sequences().items()}
    if not item_map:
        raise LlmrecError("build_sids: the catalogue is empty")
    return item_map, seqs, fp, origin


def _collab(config: SidConfig, ids: list[str], seqs: dict[str, list[str]] | None, dim: int) -> np.ndarray:
    if not seqs:
        raise LlmrecError(f"sid source {config.source!r} / cf_weight need interactions (a RecDataset, PreparedData "
                          "or interactions=)")
    return collaborative_vectors(seqs, ids, dim=dim, seed=config.seed)


def item_vectors(config: SidConfig, item_map: dict[str, Item], seqs: dict[str, list[str]] | None) -> np.ndarray:
    """float32 [items, dim] in item_map order, from the configured source."""
    ids = list(item_map)
    if config.source in ("text", "fused"):
        if not any(it.title or it.description for it in item_map.values()):
            raise LlmrecError(f"sid source {config.source!r} but no item has a title or description; use "
                              "--source collaborative, category, npy or random")
        X = embed_items(item_map, encoder=config.encoder, fields=config.fields, max_chars=config.max_chars,
                        common_category_share=config.common_category_share, max_seq_length=config.max_seq_length,
                        batch_size=config.batch_size, device=config.device, use_cache=config.use_cache)
        if config.source == "text":
            return X
        return fuse_vectors(X, _collab(config, ids, seqs, config.collab_dim), config.fusion.weight,
                            config.fusion.normalize)
    if config.source == "npy":
        return load_npy_vectors(config.vectors_path, ids, ids_path=config.vectors_ids)
    if config.source == "collaborative":
        return _collab(config, ids, seqs, config.vector_dim)
    if config.source == "category":
        return category_vectors(item_map, ids, dim=config.vector_dim, seed=config.seed)
    if config.source != "random":
        raise LlmrecError(f"sid source {config.source!r} unknown; choose one of {', '.join(SOURCES)}")
    return random_vectors(len(ids), dim=config.vector_dim, seed=config.seed)


def plain_texts(item_map: Mapping[str, Item], common_category_share: float | None) -> list[str]:
    """Title, brand and categories per item, without field labels (the words of word IDs)."""
    skip = common_categories(item_map.values(), common_category_share)
    return [" ".join([it.title or "", it.brand or "", *[c for c in (it.categories or ()) if c not in skip]])
            for it in item_map.values()]


def add_identity(codes: np.ndarray, ids: list[str], mode: str, buckets: int, seed: int) -> tuple[np.ndarray, int]:
    """Codes with one identity code after each row's last code, and the identity level's size.

    unique: item i gets code i (a hash-ID level: every item its own token); buckets: a seeded hash of
    the item id into `buckets` codes (collisions left to collision handling)."""
    import hashlib

    if mode == "unique":
        ident = np.arange(len(ids), dtype=np.int64)
        size = len(ids)
    else:
        key = int(seed).to_bytes(8, "little", signed=True)
        ident = np.array([int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, key=key).digest(), "little")
                          % buckets for i in ids], dtype=np.int64)
        size = int(buckets)
    out = np.full((len(codes), codes.shape[1] + 1), -1, dtype=np.int64)
    out[:, :codes.shape[1]] = codes
    out[np.arange(len(codes)), (codes >= 0).sum(1)] = ident
    return out, size


def plot_utilization(codes: Sequence[Sequence[int]], level_sizes: Sequence[int], path: Path, title: str = "") -> None:
    """PNG: items per code, sorted, one panel per level (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(level_sizes)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3), squeeze=False)
    for lvl, ax in enumerate(axes[0]):
        vals = np.array([c[lvl] for c in codes if len(c) > lvl], dtype=np.int64)
        counts = np.sort(np.bincount(vals, minlength=level_sizes[lvl]))[::-1]
        ax.bar(np.arange(len(counts)), counts, width=1.0)
        ax.set_title(f"level {lvl}: {(counts > 0).mean():.0%} of {level_sizes[lvl]} used", fontsize=9)
        ax.set_xlabel("code (sorted by count)")
        ax.set_ylabel("items")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_sids(items: Mapping[str, Item] | RecDataset | PreparedData, config: SidConfig | None = None,
               interactions: Any = None, out_dir: str | Path | None = None) -> SidMap:
    """Build a collision-free SidMap with the configured method; with `out_dir` also write the RUN/sid
    folder atomically (see the module docstring).

    With PreparedData, collaborative vectors (source collaborative / fused, cf_weight) use only the
    training split.
    """
    config = config or SidConfig()
    t0 = time.perf_counter()
    q = config.make_quantizer()  # bad method settings fail here, before any embedding
    item_map, seqs, fingerprint, origin = _unpack(items, interactions)
    ids = list(item_map)
    if q.needs_text and not any(it.title or it.brand or it.categories for it in item_map.values()):
        raise LlmrecError(f"sid method {config.method!r} needs item text (title, brand or categories); this "
                          "catalogue has none. Use another method with --source collaborative")
    X = item_vectors(config, item_map, seqs)
    collab = _collab(config, ids, seqs, config.collab_dim) if config.needs_collab() else None
    t_embed = time.perf_counter()
    inputs = plain_texts(item_map, config.common_category_share) if q.needs_text else X
    codes = q.fit_encode(inputs, collab=collab)
    t_quant = time.perf_counter()
    semantic_collisions = count_collisions(codes)
    sizes = list(q.level_sizes)
    cost_fn = None
    if config.identity != "none":
        codes, ident_size = add_identity(codes, ids, config.identity, config.identity_buckets, config.seed)
        sizes = sizes + [ident_size]
    elif hasattr(q, "last_level_costs") and not q.variable_length:
        cost_fn = (lambda rows: q.last_level_costs(X, rows, codes))
    collision = config.collision if q.supports_reassign else "extra_token"
    sids, report = resolve_collisions(codes, sizes, collision, cost_fn)
    t_coll = time.perf_counter()
    level_sizes = _final_sizes(sids, sizes)
    names = list(q.names) + [None] * (len(level_sizes) - len(q.names)) if q.names else None
    build = {
        "method": config.method, "config": config.to_dict(), "quantizer": q.config,
        "input_fingerprint": fingerprint,
        "interactions": origin if (config.source in ("collaborative", "fused") or collab is not None) else None,
        "vector_dim": int(X.shape[1]),
        "collision": report.to_dict(),
        "collisions_semantic": semantic_collisions,
        "utilization_quantizer": _utilization(codes, sizes),
        "reconstruction_mse": q.reconstruction_mse,
        "level_mse": getattr(q, "level_mse", None),
        "variable_length": bool(len({len(s) for s in sids}) > 1),
        "timings": {"embed_s": round(t_embed - t0, 3), "quantize_s": round(t_quant - t_embed, 3),
                    "collisions_s": round(t_coll - t_quant, 3), "build_s": round(t_coll - t0, 3)},
    }
    if q.history:
        build["loss_first"] = q.history[0]
        build["loss_last"] = q.history[-1]
    sm = SidMap(dict(zip(ids, sids)), level_sizes=level_sizes, names=names,
                meta={"built_by": "llmrec.sid.build", "method": config.method, "source": config.source,
                      "encoder": config.encoder, "input_fingerprint": fingerprint, "config": config.to_dict(),
                      "collision": report.to_dict(), "identity": config.identity})
    sm.validate()
    stats = {**sm.stats(), "collisions_before": report.collisions_before,
             "collisions_after": report.collisions_after, "collision_method": report.used,
             "items_touched": report.items_touched, "sid_fingerprint": sm.fingerprint, **build}
    sm.build_stats = stats  # type: ignore[attr-defined]
    sm.quantizer = q  # type: ignore[attr-defined]
    if out_dir is not None:
        write_outputs(Path(out_dir), sm, X, q, stats, config)
    return sm


def _final_sizes(sids: list[tuple[int, ...]], sizes: list[int]) -> list[int]:
    """Per-level sizes covering every code (an extra disambiguation level, variable depths)."""
    depth = max(len(s) for s in sids)
    out = list(sizes[:depth]) + [0] * max(0, depth - len(sizes))
    for s in sids:
        for lvl, c in enumerate(s):
            out[lvl] = max(out[lvl], c + 1)
    return out


def _utilization(codes: np.ndarray, sizes: list[int]) -> list[float]:
    """Share of each level's codes used at least once (padding of variable-length codes ignored)."""
    return [float(np.unique(codes[codes[:, i] >= 0, i]).size / k) if k else 0.0 for i, k in enumerate(sizes)]


def write_outputs(out_dir: Path, sm: SidMap, X: np.ndarray, q: BaseQuantizer, stats: dict[str, Any],
                  config: SidConfig | None = None) -> Path:
    """The RUN/sid folder, written to a temp dir and renamed into place."""
    from llmrec.config import save_config

    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        sm.save(tmp / "sid_map.json")
        save_npy(tmp / "embeddings.npy", np.asarray(X, dtype=np.float32))
        with open(tmp / "codebooks.npz", "wb") as f:
            np.savez(f, **q.codebooks())
        q.save(tmp / "quantizer")
        if config is not None:
            save_config(config, tmp / "config.yaml")
        try:
            plot_utilization(list(sm.codes.values()), sm.level_sizes, tmp / "utilization.png",
                             title=f"{stats.get('method', '')}: {len(sm)} items, {stats['distinct_sids']} SIDs")
            plot_history(q.history, tmp / "loss.png", title=f"{stats.get('method', '')} training")
        except Exception as e:  # noqa: BLE001 - a plot must never fail a build
            log.warning("plot skipped: %s", e)
        write_json(tmp / "stats.json", stats)
    log.info("wrote %s (%d items, %d distinct SIDs)", out_dir, len(sm), stats["distinct_sids"])
    return out_dir
