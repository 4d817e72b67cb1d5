"""SidConfig: how `llmrec sid build` makes Semantic IDs (item vectors, method, its settings, collisions).

One section per method holds that method's own settings (`rvq.steps`, `rqvae.hidden`, ...); only
the section of the chosen `method` is used. Recipes: recipes/sid/METHOD.yaml.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from llmrec.config import option
from llmrec.io import LlmrecError
from llmrec.registry import did_you_mean
from llmrec.sid.collisions import METHODS as COLLISIONS
from llmrec.sid.embed import DEFAULT_ENCODER, DEFAULT_FIELDS
from llmrec.sid.quantizers import QUANTIZERS, BaseQuantizer
from llmrec.sid.quantizers.hierarchical import HierarchicalSettings
from llmrec.sid.quantizers.hybrid import HybridSettings
from llmrec.sid.quantizers.kmeans import RKMeansSettings
from llmrec.sid.quantizers.pq import PQSettings
from llmrec.sid.quantizers.rqvae import RQVAESettings
from llmrec.sid.quantizers.rvq import LearnedSettings
from llmrec.sid.quantizers.words import WordsSettings

SOURCES = ("text", "npy", "collaborative", "category", "random", "fused")
IDENTITY = ("none", "unique", "buckets")
NORMALIZE = ("l2", "zscore", "none")


@dataclass
class FusionConfig:
    """source: fused = text embedding and collaborative vectors side by side."""

    weight: float = option(0.3, help="share of the collaborative part: each part is normalised, then scaled "
                                     "by sqrt(1 - weight) (text) and sqrt(weight) (collaborative)")
    normalize: str = option("l2", help="per-part normalisation before weighting: l2 (rows), zscore (columns, "
                                       "then rows), none", choices=NORMALIZE)

    def validate(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise LlmrecError(f"fusion.weight must be in [0, 1], got {self.weight}")


@dataclass
class SidConfig:
    """How Semantic IDs are built (every field is recorded in stats.json and the SidMap meta)."""

    method: str = option("rkmeans", help="SID construction method (or package.module:Class)", choices=QUANTIZERS)
    source: str = option("text", help="item vectors: text embeddings, a .npy file, co-occurrence SVD of training "
                                      "interactions, category features, random, or fused text + collaborative",
                         choices=SOURCES)
    encoder: str = option(DEFAULT_ENCODER, help="sentence-transformers id or path (source text / fused)")
    fields: list[str] = option(help="item fields in the encoded text", default_factory=lambda: list(DEFAULT_FIELDS))
    max_chars: int | None = option(1000, help="cut item text to this many characters")
    # Title, brand and categories come first; on Amazon Scientific a next-item retrieval check over
    # training pairs (scripts/bench_sid.py --quality) scores 32 tokens as well as 64 or 128, at half
    # the encoder time.
    max_seq_length: int | None = option(32, help="encoder tokens per item")
    common_category_share: float | None = option(0.5, help="leave out categories on more than this share of items")
    batch_size: int = option(64, help="encoder batch size")
    device: str | None = option(None, help="encoder device (default: cuda when available)")
    use_cache: bool = option(True, help="read/write the text-embedding cache")
    vectors_path: str | None = option(None, help="source npy: .npy file, one row per item")
    vectors_ids: str | None = option(None, help="source npy: item ids of the rows (.json list or .txt)")
    vector_dim: int = option(64, help="dimension of collaborative / category / random vectors")
    levels: int | None = option(None, help="code levels (default: the method's own; hierarchical: maximum depth)")
    codebook_size: int | list[int] | None = option(None, help="codes per level, one int or one per level "
                                                              "(default 256; hierarchical: branching 16; "
                                                              "words: 512 words per level)")
    collision: str = option("reassign", help="make SIDs distinct by moving last-level codes (LC-Rec) or adding a "
                                             "disambiguation level (TIGER)", choices=COLLISIONS)
    identity: str = option("none", help="identity token after the SID: none, unique (one code per item, a hash-ID "
                                        "level), buckets (hash of the item id into identity_buckets codes)",
                           choices=IDENTITY)
    identity_buckets: int = option(1024, help="identity: buckets -> codes of the identity level")
    seed: int = option(42, help="seed of every random choice")
    fusion: FusionConfig = option(help="source fused: weights", default_factory=FusionConfig)
    collab_dim: int = option(64, help="dimension of the collaborative vectors used by fused / cf_weight")
    rkmeans: RKMeansSettings = option(help="method rkmeans", default_factory=RKMeansSettings)
    rvq: LearnedSettings = option(help="method rvq", default_factory=LearnedSettings)
    rqvae: RQVAESettings = option(help="method rqvae", default_factory=RQVAESettings)
    hybrid: HybridSettings = option(help="method hybrid", default_factory=HybridSettings)
    pq: PQSettings = option(help="method pq", default_factory=PQSettings)
    opq: PQSettings = option(help="method opq", default_factory=PQSettings)
    hierarchical: HierarchicalSettings = option(help="method hierarchical", default_factory=HierarchicalSettings)
    words: WordsSettings = option(help="method words", default_factory=WordsSettings)
    params: dict[str, Any] = option(help="settings of a method given as package.module:Class", default_factory=dict)

    def __post_init__(self) -> None:
        self.fields = list(self.fields)
        for f in fields(self):  # plain dicts (from_dict / keyword construction) -> the section dataclass
            default = f.default_factory() if callable(f.default_factory) else None  # type: ignore[misc]
            value = getattr(self, f.name)
            if default is not None and hasattr(default, "__dataclass_fields__") and isinstance(value, dict):
                setattr(self, f.name, _section(type(default), value, f.name))
        self.validate()

    def validate(self) -> None:
        if self.method not in QUANTIZERS:
            raise LlmrecError(f"method: unknown sid method {self.method!r}{did_you_mean(self.method, QUANTIZERS.names())}; "
                              f"choose one of {', '.join(QUANTIZERS.names())} or package.module:Class")
        for name, allowed in (("source", SOURCES), ("collision", COLLISIONS), ("identity", IDENTITY)):
            value = getattr(self, name)
            if value not in allowed:
                raise LlmrecError(f"{name}: {value!r} is not one of {', '.join(allowed)}{did_you_mean(value, allowed)}")
        if self.source == "npy" and not self.vectors_path:
            raise LlmrecError("source: 'npy' needs vectors_path (a .npy file, one row per item)")
        if self.identity == "buckets" and self.identity_buckets < 2:
            raise LlmrecError("identity_buckets must be >= 2")
        self.fusion.validate()

    # ---- the method ------------------------------------------------------------------------
    def method_settings(self) -> dict[str, Any]:
        """The chosen method's own settings (its section, or `params` for user code)."""
        section = getattr(self, self.method, None) if self.method in QUANTIZERS.names() else None
        if section is None or not hasattr(section, "__dataclass_fields__"):
            return dict(self.params)
        return asdict(section)

    def make_quantizer(self) -> BaseQuantizer:
        """The configured quantizer (cheap; checks the method's settings before any heavy work)."""
        cls = QUANTIZERS.get(self.method)
        levels = self.levels if self.levels is not None else getattr(cls, "default_levels", 3)
        size = self.codebook_size if self.codebook_size is not None else getattr(cls, "default_codebook", 256)
        try:
            return cls(levels=levels, codebook_size=size, seed=self.seed, **self.method_settings())
        except TypeError as e:
            raise LlmrecError(f"{self.method}: bad settings ({e})") from None

    def needs_collab(self) -> bool:
        return self.source == "fused" or float(self.method_settings().get("cf_weight", 0) or 0) > 0

    # ---- dict round trip -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SidConfig:
        from llmrec.config import load_config

        d = dict(d)
        if "quantizer" in d and "method" not in d:  # the name before methods became a registry
            d["method"] = d.pop("quantizer")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LlmrecError(f"unknown sid config key(s) {unknown}{did_you_mean(unknown[0], sorted(known))}; "
                              f"valid keys: {sorted(known)}")
        return load_config(cls, values=_flatten(d))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _section(tp: type, value: dict[str, Any], where: str) -> Any:
    names = {f.name for f in fields(tp)}
    bad = sorted(set(value) - names)
    if bad:
        raise LlmrecError(f"{where}: unknown key {bad[0]!r}{did_you_mean(bad[0], sorted(names))}; "
                          f"known: {', '.join(sorted(names))}")
    return tp(**value)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "params":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


__all__ = ["IDENTITY", "SOURCES", "FusionConfig", "SidConfig"]
