"""build_sids: items -> vectors -> quantizer codes -> distinct SIDs -> runs/NAME/sid/."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.data.records import Interaction, Item, RecDataset
from llmrec.data.store import PreparedData
from llmrec.io import LlmrecError, atomic_path, save_npy, sha256_json, write_json
from llmrec.sid.collisions import resolve_collisions
from llmrec.sid.embed import DEFAULT_ENCODER, DEFAULT_FIELDS, embed_items
from llmrec.sid.rkmeans import make_quantizer, utilization
from llmrec.sid.sidmap import SidMap
from llmrec.sid.vectors import category_vectors, collaborative_vectors, load_npy_vectors, random_vectors

log = logging.getLogger(__name__)

SOURCES = ("text", "npy", "collaborative", "category", "random")


@dataclass
class SidConfig:
    """How Semantic IDs are built (every field is recorded in stats.json and the SidMap meta)."""

    source: str = "text"  # text | npy | collaborative | category | random
    encoder: str = DEFAULT_ENCODER  # sentence-transformers id or path (source=text)
    fields: list[str] = field(default_factory=lambda: list(DEFAULT_FIELDS))
    max_chars: int | None = 1000
    # Encoder tokens per item. Title, brand and categories come first; on Amazon Scientific a
    # next-item retrieval check over training pairs (scripts/bench_sid.py --quality) scores 32 tokens
    # as well as 64 or 128 (R@10 0.115 / 0.116 / see note), at half the encoder time.
    max_seq_length: int | None = 32
    common_category_share: float | None = 0.5  # categories on more items than this are left out
    batch_size: int = 64
    device: str | None = None
    use_cache: bool = True
    vectors_path: str | None = None  # source=npy
    vectors_ids: str | None = None  # optional id list for the .npy rows
    vector_dim: int = 64  # collaborative / category / random
    quantizer: str = "rkmeans"  # rkmeans | random
    levels: int = 3
    codebook_size: int | list[int] = 256
    balanced: bool = True
    collision: str = "reassign"  # reassign | extra_token
    seed: int = 42
    niter: int = 20
    max_points_per_centroid: int = 256

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise LlmrecError(f"sid source {self.source!r} unknown; choose one of {', '.join(SOURCES)}")
        if self.source == "npy" and not self.vectors_path:
            raise LlmrecError("sid source 'npy' needs vectors_path (a .npy file, one row per item)")
        self.fields = list(self.fields)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SidConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise LlmrecError(f"unknown sid config key(s) {unknown}; valid keys: {sorted(names)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _unpack(items: Any, interactions: Any) -> tuple[dict[str, Item], dict[str, list[str]] | None, str, str]:
    """(items, training sequences or None, input fingerprint, where interactions came from)."""
    seqs: dict[str, list[str]] | None = None
    origin = "none"
    if isinstance(items, PreparedData):
        fp = items.fingerprint
        seqs = {u: [x.item for x in s] for u, s in items.split.train.items()}
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


def item_vectors(config: SidConfig, item_map: dict[str, Item], seqs: dict[str, list[str]] | None) -> np.ndarray:
    """float32 [items, dim] in item_map order, from the configured source."""
    ids = list(item_map)
    if config.source == "text":
        if not any(it.title or it.description for it in item_map.values()):
            raise LlmrecError("sid source 'text' but no item has a title or description; use "
                              "--source collaborative, category, npy or random")
        return embed_items(item_map, encoder=config.encoder, fields=config.fields, max_chars=config.max_chars,
                           common_category_share=config.common_category_share, max_seq_length=config.max_seq_length, batch_size=config.batch_size,
                           device=config.device, use_cache=config.use_cache)
    if config.source == "npy":
        return load_npy_vectors(config.vectors_path, ids, ids_path=config.vectors_ids)
    if config.source == "collaborative":
        if not seqs:
            raise LlmrecError("sid source 'collaborative' needs interactions (a RecDataset, PreparedData "
                              "or interactions=)")
        return collaborative_vectors(seqs, ids, dim=config.vector_dim, seed=config.seed)
    if config.source == "category":
        return category_vectors(item_map, ids, dim=config.vector_dim, seed=config.seed)
    return random_vectors(len(ids), dim=config.vector_dim, seed=config.seed)


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
    """Build a collision-free SidMap; with `out_dir` also write sid_map.json, codebooks.npz,
    embeddings.npy (rows in sid_map order), stats.json and utilization.png atomically.

    With PreparedData, collaborative vectors use only the training split.
    """
    config = config or SidConfig()
    t0 = time.perf_counter()
    item_map, seqs, fingerprint, origin = _unpack(items, interactions)
    ids = list(item_map)
    X = item_vectors(config, item_map, seqs)
    t_embed = time.perf_counter()
    qkw: dict[str, Any] = {"levels": config.levels, "codebook_size": config.codebook_size, "seed": config.seed}
    if config.quantizer == "rkmeans":
        qkw.update(balanced=config.balanced, niter=config.niter,
                   max_points_per_centroid=config.max_points_per_centroid)
    q = make_quantizer(config.quantizer, **qkw)
    codes = q.fit_encode(X)
    t_quant = time.perf_counter()
    cost_fn = (lambda rows: q.last_level_costs(X, rows, codes)) if hasattr(q, "last_level_costs") else None
    sids, report = resolve_collisions(codes, q.level_sizes, config.collision, cost_fn)
    t_coll = time.perf_counter()
    level_sizes = list(q.level_sizes) + ([report.extra_level_size] if report.extra_level_size else [])
    build = {
        "config": config.to_dict(), "quantizer": q.config, "input_fingerprint": fingerprint,
        "interactions": origin if config.source == "collaborative" else None,
        "vector_dim": int(X.shape[1]),
        "collision": report.to_dict(),
        "utilization_quantizer": utilization(codes, q.level_sizes),
        "level_mse": getattr(q, "level_mse", None),
        "timings": {"embed_s": round(t_embed - t0, 3), "quantize_s": round(t_quant - t_embed, 3),
                    "collisions_s": round(t_coll - t_quant, 3)},
    }
    sm = SidMap(dict(zip(ids, sids)), level_sizes=level_sizes,
                meta={"built_by": "llmrec.sid.build", "source": config.source, "encoder": config.encoder,
                      "input_fingerprint": fingerprint, "config": config.to_dict(), "collision": report.to_dict()})
    sm.validate()
    stats = {**sm.stats(), "collisions_before": report.collisions_before,
             "collisions_after": report.collisions_after, "collision_method": report.used,
             "items_touched": report.items_touched, "sid_fingerprint": sm.fingerprint, **build}
    sm.build_stats = stats  # type: ignore[attr-defined]
    if out_dir is not None:
        write_outputs(Path(out_dir), sm, X, q.codebooks() if hasattr(q, "codebooks") else {}, stats)
    return sm


def write_outputs(out_dir: Path, sm: SidMap, X: np.ndarray, codebooks: dict[str, np.ndarray],
                  stats: dict[str, Any]) -> Path:
    """The runs/NAME/sid folder, written to a temp dir and renamed into place."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        sm.save(tmp / "sid_map.json")
        save_npy(tmp / "embeddings.npy", np.asarray(X, dtype=np.float32))
        with open(tmp / "codebooks.npz", "wb") as f:
            np.savez(f, **codebooks)
        try:
            plot_utilization(list(sm.codes.values()), sm.level_sizes, tmp / "utilization.png",
                             title=f"{len(sm)} items, {stats['distinct_sids']} SIDs")
        except Exception as e:  # noqa: BLE001 - a plot must never fail a build
            log.warning("utilization plot skipped: %s", e)
        write_json(tmp / "stats.json", stats)
    log.info("wrote %s (%d items, %d distinct SIDs)", out_dir, len(sm), stats["distinct_sids"])
    return out_dir
