"""SidMap: the bijection between catalogue items and Semantic ID token sequences."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.io import LlmrecError, read_json, sha256_json, write_json

FORMAT = "llmrec.sidmap/1"
_TOKEN_RE = re.compile(r"^<([a-z])_(\d+)>$")


def level_letter(level: int) -> str:
    """Letter used for a level's tokens: a, b, c, ... (level 0 -> 'a')."""
    if not 0 <= level < 26:
        raise ValueError(f"SID level {level} out of range 0..25")
    return string.ascii_lowercase[level]


def sid_token(level: int, code: int) -> str:
    """`<a_12>` for level 0, code 12."""
    return f"<{level_letter(level)}_{int(code)}>"


def parse_sid_token(token: str) -> tuple[int, int]:
    """Inverse of sid_token: '<b_7>' -> (1, 7). Raises ValueError on anything else."""
    m = _TOKEN_RE.match(token)
    if not m:
        raise ValueError(f"not a SID token: {token!r} (expected '<a_12>' style)")
    return string.ascii_lowercase.index(m.group(1)), int(m.group(2))


class SidMap:
    """Items <-> code tuples (one code per level; lengths may differ by one disambiguation level).

    `codes[item_id]` is a tuple of ints; token strings are derived (`<a_12><b_3>...`). Every item
    has a distinct full SID and no SID is a proper prefix of another (so the trie is prefix-free).
    """

    def __init__(self, codes: dict[str, Iterable[int]], level_sizes: list[int] | None = None,
                 meta: dict[str, Any] | None = None):
        self.codes: dict[str, tuple[int, ...]] = {str(k): tuple(int(c) for c in v) for k, v in codes.items()}
        if not self.codes:
            raise LlmrecError("SidMap is empty: no item has a Semantic ID.")
        depth = max(len(c) for c in self.codes.values())
        observed = [0] * depth
        for c in self.codes.values():
            for lvl, code in enumerate(c):
                observed[lvl] = max(observed[lvl], code + 1)
        if level_sizes is None:
            level_sizes = observed
        elif len(level_sizes) < depth or any(o > s for o, s in zip(observed, level_sizes)):
            raise LlmrecError(f"SidMap level_sizes {level_sizes} do not cover the codes (need {observed}).")
        self.level_sizes = [int(s) for s in level_sizes]
        self.meta: dict[str, Any] = dict(meta or {})
        self._by_codes: dict[tuple[int, ...], str] | None = None

    # ---- lookups -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.codes)

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self.codes

    @property
    def item_ids(self) -> list[str]:
        return list(self.codes)

    @property
    def num_levels(self) -> int:
        return len(self.level_sizes)

    def tokens(self, item_id: str) -> list[str]:
        """['<a_12>', '<b_3>', '<c_7>'] for an item."""
        try:
            code = self.codes[str(item_id)]
        except KeyError:
            raise KeyError(f"item {item_id!r} has no Semantic ID in this SidMap") from None
        return [sid_token(lvl, c) for lvl, c in enumerate(code)]

    def sid_string(self, item_id: str) -> str:
        """'<a_12><b_3><c_7>' (no spaces: byte-level BPE would add a 'Ġ' token)."""
        return "".join(self.tokens(item_id))

    def all_tokens(self) -> list[str]:
        """Every possible SID token, level by level, code by code (the vocabulary to add)."""
        return [sid_token(lvl, c) for lvl, size in enumerate(self.level_sizes) for c in range(size)]

    def item_for_codes(self, codes: Iterable[int]) -> str | None:
        if self._by_codes is None:
            self._by_codes = {v: k for k, v in self.codes.items()}
        return self._by_codes.get(tuple(int(c) for c in codes))

    def item_for_tokens(self, tokens: Iterable[str]) -> str | None:
        """Item whose SID is exactly these tokens, or None."""
        try:
            codes = []
            for lvl, tok in enumerate(tokens):
                tl, code = parse_sid_token(tok)
                if tl != lvl:
                    return None
                codes.append(code)
        except ValueError:
            return None
        return self.item_for_codes(codes)

    def item_for_string(self, text: str) -> str | None:
        """Item for a '<a_1><b_2><c_3>' string (used only at user-facing edges, never in scoring)."""
        return self.item_for_tokens(re.findall(r"<[a-z]_\d+>", text))

    # ---- identity ------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """sha256 of the item -> codes mapping; a model records it to refuse a different map."""
        return sha256_json({"levels": self.level_sizes, "codes": sorted(self.codes.items())})[:16]

    def collisions(self) -> int:
        """Items sharing a full SID with an earlier item (0 for a valid map)."""
        counts = Counter(self.codes.values())
        return sum(n - 1 for n in counts.values() if n > 1)

    def validate(self) -> None:
        """Raise if two items share a SID or one SID is a prefix of another."""
        if self.collisions():
            raise LlmrecError(f"SidMap has {self.collisions()} colliding items; rebuild with collision handling.")
        full = set(self.codes.values())
        for c in full:
            for k in range(1, len(c)):
                if c[:k] in full:
                    raise LlmrecError(f"SID {c[:k]} is a prefix of {c}: the trie would be ambiguous.")

    # ---- stats ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Items, distinct SIDs, per-level utilisation and entropy, items per prefix."""
        arr_levels = []
        for lvl in range(self.num_levels):
            arr_levels.append([c[lvl] for c in self.codes.values() if len(c) > lvl])
        util, entropy = [], []
        for lvl, codes in enumerate(arr_levels):
            counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=self.level_sizes[lvl])
            util.append(float((counts > 0).mean()))
            p = counts[counts > 0] / counts.sum()
            entropy.append(float(-(p * np.log2(p)).sum()))
        per_prefix = {}
        base_depth = min(len(c) for c in self.codes.values())
        for k in range(1, base_depth + 1):
            counts = Counter(c[:k] for c in self.codes.values())
            per_prefix[f"level_{k}"] = {"max": max(counts.values()),
                                        "mean": float(np.mean(list(counts.values()))),
                                        "distinct": len(counts)}
        return {
            "items": len(self),
            "distinct_sids": len(set(self.codes.values())),
            "collisions": self.collisions(),
            "levels": self.level_sizes,
            "utilization": util,
            "entropy_bits": entropy,
            "items_per_prefix": per_prefix,
            "items_with_extra_level": sum(1 for c in self.codes.values() if len(c) > base_depth),
        }

    # ---- persistence ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "levels": self.level_sizes,
            "fingerprint": self.fingerprint,
            "meta": self.meta,
            "items": {k: self.tokens(k) for k in self.codes},
        }

    def save(self, path: str | Path) -> Path:
        """Atomic json write (`sid_map.json`)."""
        return write_json(path, self.to_json(), indent=None)

    @classmethod
    def from_json(cls, obj: dict[str, Any], source: str = "SidMap") -> SidMap:
        if not isinstance(obj, dict) or "items" not in obj:
            raise LlmrecError(f"{source}: not a llmrec SidMap (no 'items' field); for an index.json use "
                              "SidMap.from_index_json.")
        sm = cls._from_token_lists(obj["items"], source, level_sizes=obj.get("levels"), meta=obj.get("meta"))
        if obj.get("fingerprint") and obj["fingerprint"] != sm.fingerprint:
            raise LlmrecError(f"{source}: fingerprint mismatch (file edited by hand?); rebuild the SidMap.")
        return sm

    @classmethod
    def load(cls, path: str | Path) -> SidMap:
        return cls.from_json(read_json(path, "SidMap"), source=str(path))

    @classmethod
    def _from_token_lists(cls, mapping: dict, source: str, level_sizes=None, meta=None) -> SidMap:
        codes = {}
        for item_id, toks in mapping.items():
            if isinstance(toks, str):
                toks = re.findall(r"<[^<>]+>", toks)
            row = []
            for lvl, tok in enumerate(toks):
                try:
                    tl, code = parse_sid_token(tok)
                except ValueError as e:
                    raise LlmrecError(f"{source}: item {item_id}: {e}") from None
                if tl != lvl:
                    raise LlmrecError(f"{source}: item {item_id}: token {tok} at level {lvl} "
                                      f"(expected prefix '<{level_letter(lvl)}_')")
                row.append(code)
            codes[str(item_id)] = row
        return cls(codes, level_sizes=level_sizes, meta=meta)

    @classmethod
    def from_index_json(cls, path: str | Path, level_sizes: list[int] | None = None) -> SidMap:
        """Import an LC-Rec / MiniOneRec `index.json` ({item_id: ['<a_1>', '<b_2>', ...]}).

        Reference maps may contain collisions; call `.collisions()` / `.validate()` as needed.
        """
        obj = read_json(path, "index.json")
        if not isinstance(obj, dict):
            raise LlmrecError(f"{path}: expected an object {{item_id: [tokens]}}")
        return cls._from_token_lists(obj, str(path), level_sizes=level_sizes,
                                     meta={"imported_from": str(path)})

    def to_index_json(self, path: str | Path) -> Path:
        """Export in LC-Rec / MiniOneRec index.json form."""
        return write_json(path, {k: self.tokens(k) for k in self.codes}, indent=None)
