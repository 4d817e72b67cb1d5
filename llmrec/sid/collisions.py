"""Make every item's Semantic ID distinct (and the set prefix-free).

Two methods:
- 'extra_token' (TIGER): items whose full SID collides get one more level, 0, 1, 2, ... within
  their group; all other items keep their SID. Lengths vary by one but stay prefix-free, because
  every member of a colliding group (the first one too) gets the extra token.
- 'reassign' (LC-Rec style, fixed length): under each prefix (all levels but the last) the
  colliding items are moved to free last-level codes by a minimum-cost assignment
  (scipy linear_sum_assignment on distances to the last-level centroids); a prefix with more
  colliding items than free codes falls back to 'extra_token' for its colliding groups.

Variable-length codes (hierarchical clustering) come padded with -1; they are resolved with
'extra_token' only (the extra token goes right after each row's last real code) and the result is
checked to be prefix-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from llmrec.io import LlmrecError

METHODS = ("extra_token", "reassign")

# cost_fn(rows) -> float array [len(rows), K_last]: cost of giving each row each last-level code
CostFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class CollisionReport:
    method: str  # what was asked
    used: str  # what was done: none | extra_token | reassign | reassign+extra_token
    collisions_before: int
    collisions_after: int
    items_touched: int
    colliding_groups: int
    extra_level_size: int  # 0 when no extra level was added
    fallback_prefixes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def count_collisions(codes: np.ndarray | list[tuple[int, ...]]) -> int:
    """Items sharing a full SID with another, minus one per shared SID (same as SidMap.collisions)."""
    if isinstance(codes, np.ndarray):
        if len(codes) == 0:
            return 0
        return int(len(codes) - np.unique(codes, axis=0).shape[0])
    return len(codes) - len(set(map(tuple, codes)))


def _group_ids(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group id per row for identical rows, and size of each row's group."""
    if codes.shape[1] == 0:
        inv = np.zeros(len(codes), dtype=np.int64)
    else:
        _, inv = np.unique(codes, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
    counts = np.bincount(inv)
    return inv, counts[inv]


def _extra_tokens(rows: np.ndarray, group: np.ndarray) -> dict[int, int]:
    """0, 1, 2, ... within each group, in row order."""
    out: dict[int, int] = {}
    seen: dict[int, int] = {}
    for r in sorted(int(x) for x in rows):
        g = int(group[r])
        out[r] = seen.get(g, 0)
        seen[g] = out[r] + 1
    return out


def resolve_collisions(codes: np.ndarray, level_sizes: list[int], method: str = "reassign",
                       cost_fn: CostFn | None = None) -> tuple[list[tuple[int, ...]], CollisionReport]:
    """Distinct, prefix-free code tuples for `codes` [N, L] and a report of what changed.

    `cost_fn` (reassign only) prices last-level codes per row; without it any free code is as
    good as another (the lowest free codes are used).
    """
    if method not in METHODS:
        raise LlmrecError(f"unknown collision method {method!r}; choose one of {METHODS}")
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] < 1:
        raise LlmrecError(f"codes must be [items, levels], got shape {codes.shape}")
    padded = bool((codes < 0).any())
    if padded and method == "reassign":
        method_used = "extra_token"  # a variable-length row has no fixed last level to move
    else:
        method_used = method
    before = count_collisions(codes)
    full_group, full_size = _group_ids(codes)
    colliding = np.flatnonzero(full_size > 1)
    n_groups = int(np.unique(full_group[colliding]).size)
    new = codes.copy()
    extra: dict[int, int] = {}
    used = "none"
    fallback = 0
    if colliding.size and method_used == "extra_token":
        extra = _extra_tokens(colliding, full_group)
        used = "extra_token"
    elif colliding.size:
        from scipy.optimize import linear_sum_assignment

        used = "reassign"
        K = int(level_sizes[codes.shape[1] - 1])
        prefix_group, _ = _group_ids(codes[:, :-1])
        costs_all = cost_fn(colliding) if cost_fn is not None else None
        cost_row = {int(r): i for i, r in enumerate(colliding)}
        by_prefix: dict[int, list[int]] = {}
        for r in colliding:
            by_prefix.setdefault(int(prefix_group[r]), []).append(int(r))
        # codes of non-colliding rows, per prefix (they stay fixed)
        fixed = np.flatnonzero(full_size == 1)
        taken: dict[int, set[int]] = {}
        for r in fixed[np.isin(prefix_group[fixed], list(by_prefix))]:
            taken.setdefault(int(prefix_group[r]), set()).add(int(codes[r, -1]))
        for p, rows in by_prefix.items():
            free = np.array([c for c in range(K) if c not in taken.get(p, set())], dtype=np.int64)
            if len(rows) > free.size:
                extra.update(_extra_tokens(np.array(rows), full_group))
                fallback += 1
                continue
            if costs_all is None:
                cost = np.zeros((len(rows), free.size), dtype=np.float64)
                cost += np.arange(free.size)[None, :] * 1e-9  # prefer low codes, deterministic
                own = codes[rows, -1]
                cost[free[None, :] == own[:, None]] -= 1.0  # keep own code where possible
            else:
                cost = costs_all[[cost_row[r] for r in rows]][:, free].astype(np.float64)
            ri, ci = linear_sum_assignment(cost)
            new[np.array(rows)[ri], -1] = free[ci]
        if fallback:
            used = "reassign+extra_token"
    out: list[tuple[int, ...]] = []
    touched = 0
    for r in range(len(new)):
        t = tuple(int(c) for c in new[r] if c >= 0)
        if r in extra:
            t = t + (extra[r],)
        if r in extra or new[r, -1] != codes[r, -1]:
            touched += 1
        out.append(t)
    after = count_collisions(out)
    report = CollisionReport(method=method, used=used, collisions_before=before, collisions_after=after,
                             items_touched=touched, colliding_groups=n_groups,
                             extra_level_size=(max(extra.values()) + 1) if extra else 0,
                             fallback_prefixes=fallback)
    if after:
        raise LlmrecError(f"collision resolution ({used}) left {after} collisions; this is a bug, please report it")
    if padded and not is_prefix_free(out):
        raise LlmrecError("variable-length codes are not prefix-free: one item's SID is the start of another's; "
                          "the quantizer must end every path at a leaf")
    return out, report


def is_prefix_free(sids: list[tuple[int, ...]]) -> bool:
    """True when no SID equals or is a proper prefix of another."""
    full = set(sids)
    if len(full) != len(sids):
        return False
    lengths = {len(s) for s in full}
    if len(lengths) == 1:
        return True
    return not any(s[:k] in full for s in full for k in lengths if k < len(s))
