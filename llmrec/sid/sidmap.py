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
MAX_LEVELS = 26 * 27  # a..z, then aa..zz
_TOKEN_RE = re.compile(r"^<([a-z]{1,2})_(\d+)>$")
_NAMED_RE = re.compile(r"^<([a-z]{1,2})_([a-z0-9]+)>$")
SID_TOKEN_PATTERN = r"<[a-z]{1,2}_[a-z0-9]+>"  # any SID token, numeric or named
_NAME_OK = re.compile(r"^[a-z0-9]*[a-z][a-z0-9]*$")  # a code name: lowercase ascii, not all digits


def level_letter(level: int) -> str:
    """Letters of a level's tokens: a, b, ..., z, then aa, ab, ... (long PQ codes have 16-64 levels)."""
    if not 0 <= level < MAX_LEVELS:
        raise ValueError(f"SID level {level} out of range 0..{MAX_LEVELS - 1}")
    if level < 26:
        return string.ascii_lowercase[level]
    hi, lo = divmod(level - 26, 26)
    return string.ascii_lowercase[hi] + string.ascii_lowercase[lo]


def level_of_letter(letters: str) -> int:
    """Inverse of level_letter: 'a' -> 0, 'aa' -> 26."""
    if len(letters) == 1:
        return string.ascii_lowercase.index(letters)
    return 26 + 26 * string.ascii_lowercase.index(letters[0]) + string.ascii_lowercase.index(letters[1])


def sid_token(level: int, code: int, name: str | None = None) -> str:
    """`<a_12>` for level 0, code 12; `<a_tape>` when the code has a name (word IDs)."""
    return f"<{level_letter(level)}_{name if name is not None else int(code)}>"


def parse_sid_token(token: str) -> tuple[int, int]:
    """Inverse of sid_token for numeric tokens: '<b_7>' -> (1, 7). Raises ValueError on anything else
    (named tokens such as '<a_tape>' need their SidMap: `SidMap.parse_token`)."""
    m = _TOKEN_RE.match(token)
    if not m:
        raise ValueError(f"not a numeric SID token: {token!r} (expected '<a_12>' style)")
    return level_of_letter(m.group(1)), int(m.group(2))


class SidMap:
    """Items <-> code tuples (one code per level; lengths may vary: a disambiguation level, or
    variable-length methods such as hierarchical clustering).

    `codes[item_id]` is a tuple of ints; token strings are derived (`<a_12><b_3>...`). Every item
    has a distinct full SID and no SID is a proper prefix of another (so the trie is prefix-free).
    `names[level]` (optional, word IDs) gives each code of that level a readable name, so the token
    is `<a_tape>` instead of `<a_12>`; levels without names stay numeric.
    """

    def __init__(self, codes: dict[str, Iterable[int]], level_sizes: list[int] | None = None,
                 meta: dict[str, Any] | None = None, names: list[list[str] | None] | None = None):
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
        if len(self.level_sizes) > MAX_LEVELS:
            raise LlmrecError(f"SidMap has {len(self.level_sizes)} levels; at most {MAX_LEVELS} are supported.")
        self.meta: dict[str, Any] = dict(meta or {})
        self.names = self._check_names(names)
        self._by_codes: dict[tuple[int, ...], str] | None = None
        self._by_name: list[dict[str, int] | None] | None = None

    def _check_names(self, names: list[list[str] | None] | None) -> list[list[str] | None] | None:
        if not names or all(n is None for n in names):
            return None
        names = [None if n is None else [str(x) for x in n] for n in names]
        names += [None] * (self.num_levels - len(names))
        if len(names) > self.num_levels:
            raise LlmrecError(f"SidMap names cover {len(names)} levels but the map has {self.num_levels}.")
        for lvl, level_names in enumerate(names):
            if level_names is None:
                continue
            if len(level_names) < self.level_sizes[lvl]:
                raise LlmrecError(f"SidMap level {lvl} has {self.level_sizes[lvl]} codes but {len(level_names)} names.")
            bad = [n for n in level_names if not _NAME_OK.match(n)]
            if bad:
                raise LlmrecError(f"SidMap level {lvl}: code names must be lowercase ascii letters/digits with "
                                  f"at least one letter, got {bad[:3]}")
            if len(set(level_names)) != len(level_names):
                raise LlmrecError(f"SidMap level {lvl}: code names repeat")
        return names

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
        return [self.token(lvl, c) for lvl, c in enumerate(code)]

    def token(self, level: int, code: int) -> str:
        """The token of one (level, code): `<a_12>`, or `<a_tape>` for a named level."""
        name = self.names[level][code] if self.names and level < len(self.names) and self.names[level] else None
        return sid_token(level, code, name)

    def parse_token(self, token: str) -> tuple[int, int]:
        """(level, code) of one of this map's tokens; ValueError if it is not one."""
        m = _NAMED_RE.match(token)
        if not m:
            raise ValueError(f"not a SID token: {token!r} (expected '<a_12>' style)")
        lvl = level_of_letter(m.group(1))
        if self.names and lvl < len(self.names) and self.names[lvl] is not None:
            if self._by_name is None:
                self._by_name = [None if n is None else {x: i for i, x in enumerate(n)} for n in self.names]
            code = self._by_name[lvl].get(m.group(2))  # type: ignore[union-attr]
            if code is None:
                raise ValueError(f"{token!r}: no code named {m.group(2)!r} at level {lvl}")
            return lvl, code
        if not m.group(2).isdigit():
            raise ValueError(f"{token!r}: level {lvl} has numeric codes")
        return lvl, int(m.group(2))

    def sid_string(self, item_id: str) -> str:
        """'<a_12><b_3><c_7>' (no spaces: byte-level BPE would add a 'Ġ' token)."""
        return "".join(self.tokens(item_id))

    def all_tokens(self) -> list[str]:
        """Every possible SID token, level by level, code by code (the vocabulary to add)."""
        return [self.token(lvl, c) for lvl, size in enumerate(self.level_sizes) for c in range(size)]

    def item_for_codes(self, codes: Iterable[int]) -> str | None:
        if self._by_codes is None:
            self._by_codes = {v: k for k, v in self.codes.items()}
        return self._by_codes.get(tuple(int(c) for c in codes))

    def item_for_tokens(self, tokens: Iterable[str]) -> str | None:
        """Item whose SID is exactly these tokens, or None."""
        try:
            codes = []
            for lvl, tok in enumerate(tokens):
                tl, code = self.parse_token(tok)
                if tl != lvl:
                    return None
                codes.append(code)
        except ValueError:
            return None
        return self.item_for_codes(codes)

    def item_for_string(self, text: str) -> str | None:
        """Item for a '<a_1><b_2><c_3>' string (used only at user-facing edges, never in scoring)."""
        return self.item_for_tokens(re.findall(SID_TOKEN_PATTERN, text))

    # ---- identity ------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """sha256 of the item -> codes mapping; a model records it to refuse a different map."""
        obj: dict[str, Any] = {"levels": self.level_sizes, "codes": sorted(self.codes.items())}
        if self.names:
            obj["names"] = self.names
        return sha256_json(obj)[:16]

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
        out = {
            "format": FORMAT,
            "levels": self.level_sizes,
            "fingerprint": self.fingerprint,
            "meta": self.meta,
            "items": {k: self.tokens(k) for k in self.codes},
        }
        if self.names:
            out["names"] = self.names
        return out

    def save(self, path: str | Path) -> Path:
        """Atomic json write (`sid_map.json`)."""
        return write_json(path, self.to_json(), indent=None)

    @classmethod
    def from_json(cls, obj: dict[str, Any], source: str = "SidMap") -> SidMap:
        if not isinstance(obj, dict) or "items" not in obj:
            raise LlmrecError(f"{source}: not a llmrec SidMap (no 'items' field); for an index.json use "
                              "SidMap.from_index_json.")
        sm = cls._from_token_lists(obj["items"], source, level_sizes=obj.get("levels"), meta=obj.get("meta"),
                                   names=obj.get("names"))
        if obj.get("fingerprint") and obj["fingerprint"] != sm.fingerprint:
            raise LlmrecError(f"{source}: fingerprint mismatch (file edited by hand?); rebuild the SidMap.")
        return sm

    @classmethod
    def load(cls, path: str | Path) -> SidMap:
        return cls.from_json(read_json(path, "SidMap"), source=str(path))

    @classmethod
    def _from_token_lists(cls, mapping: dict, source: str, level_sizes=None, meta=None, names=None) -> SidMap:
        codes = {}
        parse = parse_sid_token
        if names:
            lookup = [None if n is None else {x: i for i, x in enumerate(n)} for n in names]

            def parse(tok: str) -> tuple[int, int]:
                m = _NAMED_RE.match(tok)
                if not m:
                    raise ValueError(f"not a SID token: {tok!r}")
                lvl = level_of_letter(m.group(1))
                table = lookup[lvl] if lvl < len(lookup) else None
                if table is None:
                    return parse_sid_token(tok)
                if m.group(2) not in table:
                    raise ValueError(f"{tok!r}: no code named {m.group(2)!r} at level {lvl}")
                return lvl, table[m.group(2)]
        for item_id, toks in mapping.items():
            if isinstance(toks, str):
                toks = re.findall(r"<[^<>]+>", toks)
            row = []
            for lvl, tok in enumerate(toks):
                try:
                    tl, code = parse(tok)
                except ValueError as e:
                    raise LlmrecError(f"{source}: item {item_id}: {e}") from None
                if tl != lvl:
                    raise LlmrecError(f"{source}: item {item_id}: token {tok} at level {lvl} "
                                      f"(expected prefix '<{level_letter(lvl)}_')")
                row.append(code)
            codes[str(item_id)] = row
        return cls(codes, level_sizes=level_sizes, meta=meta, names=names)

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
