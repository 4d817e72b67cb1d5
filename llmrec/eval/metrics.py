"""Item-level ranking metrics for leave-one-out next-item evaluation.

Conventions (the numbers reported by `llmrec eval` follow these exactly):

* A hit is the target **item id**; an item that merely shares the target's SID string is a miss.
* Duplicates in a ranked list count once: later repeats are removed before scoring, so
  `["a", "a", "b"]` is scored as `["a", "b"]` (the target "b" is at rank 2).
* A target that is missing from the list scores 0 on every metric.
* K larger than the list: the list is used as is (HR@20 of a 5-item list = HR@5 of it).
* Ties: rankers return ordered lists, so ties are theirs to break; the score-based baselines in
  `llmrec.eval` break ties by item index (catalogue order), lower index first.
* NDCG with one relevant item: 1 / log2(rank + 1) for a 1-based rank <= K, else 0.
* MRR: 1 / rank over the whole returned list; MRR@K: the same, 0 when rank > K.
* Popularity groups (head / torso / tail) are built from *training* interaction counts over the
  whole catalogue: items are sorted by (count descending, catalogue index ascending); the first
  `head_frac` of them are head, the last `tail_frac` are tail, the rest torso. Items never seen in
  training count 0 and so land in the tail.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 20)
GROUPS = ("head", "torso", "tail")


def dedupe(ranked: Iterable[str]) -> list[str]:
    """Keep the first occurrence of every id, in order."""
    seen: set[str] = set()
    out = []
    for x in ranked:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def target_rank(ranked: Sequence[str], target: str) -> int | None:
    """1-based rank of `target` in the de-duplicated list, or None when it is absent."""
    for i, x in enumerate(dedupe(ranked), 1):
        if x == target:
            return i
    return None


def hit_at_k(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def ndcg_at_k(rank: int | None, k: int) -> float:
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int | None = None) -> float:
    if rank is None or (k is not None and rank > k):
        return 0.0
    return 1.0 / rank


def example_metrics(ranked: Sequence[str], target: str, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """HR@K, NDCG@K, MRR@K for every K, plus MRR, for one example."""
    rank = target_rank(ranked, target)
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = hit_at_k(rank, k)
        out[f"NDCG@{k}"] = ndcg_at_k(rank, k)
        out[f"MRR@{k}"] = reciprocal_rank(rank, k)
    out["MRR"] = reciprocal_rank(rank)
    return out


def _mean_rows(rows: list[dict[str, float]], keys: list[str]) -> dict[str, float]:
    n = len(rows)
    return {key: (sum(r[key] for r in rows) / n if n else 0.0) for key in keys}


def metric_keys(ks: Sequence[int]) -> list[str]:
    keys = [f"{m}@{k}" for m in ("HR", "NDCG") for k in ks]
    return keys + [f"MRR@{k}" for k in ks] + ["MRR"]


def ranking_metrics(rankings: Sequence[Sequence[str]], targets: Sequence[str],
                    ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean HR@K / NDCG@K / MRR@K / MRR over examples (0.0 for no examples)."""
    if len(rankings) != len(targets):
        raise ValueError(f"{len(rankings)} rankings for {len(targets)} targets")
    rows = [example_metrics(r, t, ks) for r, t in zip(rankings, targets)]
    return _mean_rows(rows, metric_keys(ks))


def valid_rate(rankings: Sequence[Sequence[str]], catalogue: Iterable[str]) -> float:
    """Fraction of all returned ids (duplicates included) that are catalogue items (1.0 if none returned)."""
    cat = set(catalogue)
    total = sum(len(r) for r in rankings)
    if total == 0:
        return 1.0
    return sum(1 for r in rankings for x in r if x in cat) / total


def coverage_at_k(rankings: Sequence[Sequence[str]], catalogue: Iterable[str], k: int) -> float:
    """Distinct catalogue items in any top-K list / catalogue size (non-catalogue ids ignored)."""
    cat = set(catalogue)
    if not cat:
        return 0.0
    seen = {x for r in rankings for x in dedupe(r)[:k] if x in cat}
    return len(seen) / len(cat)


def popularity_groups(popularity: Mapping[str, int], catalogue: Sequence[str],
                      head_frac: float = 0.2, tail_frac: float = 0.5) -> dict[str, str]:
    """item id -> 'head' | 'torso' | 'tail' by training popularity (see module docstring).

    Group sizes are round(frac * n_items); items outside `catalogue` but in `popularity` are added
    after the catalogue (so every target gets a group).
    """
    if not (0.0 <= head_frac <= 1.0 and 0.0 <= tail_frac <= 1.0 and head_frac + tail_frac <= 1.0):
        raise ValueError(f"need 0 <= head_frac, tail_frac and head_frac + tail_frac <= 1 "
                         f"(got head_frac={head_frac}, tail_frac={tail_frac})")
    order = list(dict.fromkeys(list(catalogue) + sorted(set(popularity) - set(catalogue))))
    index = {x: i for i, x in enumerate(order)}
    ranked = sorted(order, key=lambda x: (-popularity.get(x, 0), index[x]))
    n = len(ranked)
    n_head = round(head_frac * n)
    n_tail = min(round(tail_frac * n), n - n_head)
    groups = {}
    for i, x in enumerate(ranked):
        groups[x] = "head" if i < n_head else ("tail" if i >= n - n_tail else "torso")
    return groups


TRANSITION_GROUPS = ("seen", "new", "no_history")


def transition_labels(histories: Sequence[Sequence[str]], targets: Sequence[str],
                      train_sequences: Iterable[Sequence[str]]) -> list[str]:
    """Per example: 'seen' when (last history item -> target) is a step of some training sequence,
    'new' when it is not, 'no_history' for an empty history. Separates what a model can recall from
    training transitions from what it has to generalise to."""
    steps = {(a, b) for seq in train_sequences for a, b in pairwise(seq)}
    return ["no_history" if not h else ("seen" if (h[-1], t) in steps else "new")
            for h, t in zip(histories, targets)]


def grouped_metrics(rankings: Sequence[Sequence[str]], targets: Sequence[str], labels: Sequence[str],
                    ks: Sequence[int] = DEFAULT_KS, order: Sequence[str] | None = None) -> dict[str, dict]:
    """Metrics per label (e.g. popularity group or target behavior), each with its count `n`."""
    buckets: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        buckets[lab].append(i)
    names = list(order) if order is not None else sorted(buckets)
    out = {}
    for name in names:
        idx = buckets.get(name, [])
        m = ranking_metrics([rankings[i] for i in idx], [targets[i] for i in idx], ks)
        out[name] = {"n": len(idx), **m}
    return out


def compute_metrics(rankings: Sequence[Sequence[str]], targets: Sequence[str], *,
                    ks: Sequence[int] = DEFAULT_KS, catalogue: Sequence[str] | None = None,
                    popularity: Mapping[str, int] | None = None, behaviors: Sequence[str] | None = None,
                    head_frac: float = 0.2, tail_frac: float = 0.5,
                    transitions: Sequence[str] | None = None) -> dict:
    """Everything `llmrec eval` reports for one ranker, as a JSON-ready dict. `transitions`: one
    transition_labels() label per example."""
    ks = sorted({int(k) for k in ks})
    out: dict = {"n_examples": len(targets), "ks": ks, "metrics": ranking_metrics(rankings, targets, ks)}
    if catalogue is not None:
        out["valid_rate"] = valid_rate(rankings, catalogue)
        out["coverage"] = {f"@{k}": coverage_at_k(rankings, catalogue, k) for k in ks}
        out["catalogue_size"] = len(set(catalogue))
        if popularity is not None:
            groups = popularity_groups(popularity, catalogue, head_frac, tail_frac)
            labels = [groups.get(t, "tail") for t in targets]
            sizes = {g: sum(1 for v in groups.values() if v == g) for g in GROUPS}
            out["popularity"] = {
                "head_frac": head_frac, "tail_frac": tail_frac, "items_per_group": sizes,
                "groups": grouped_metrics(rankings, targets, labels, ks, order=GROUPS),
            }
    if behaviors is not None and len(set(behaviors)) > 1:
        out["behaviors"] = grouped_metrics(rankings, targets, behaviors, ks)
    if transitions is not None:
        out["transitions"] = grouped_metrics(rankings, targets, transitions, ks, order=TRANSITION_GROUPS)
    return out


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = 1000, seed: int = 0) -> dict:
    """Paired comparison of two rankers' per-example scores on the same examples.

    Returns the mean difference a - b, a percentile-bootstrap 95% interval of it (examples resampled
    with replacement, the same resample for both rankers), and `p_not_better`: the share of
    resamples where a does not beat b (a one-sided bootstrap p-value for "a is better").
    """
    import numpy as np

    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired_bootstrap needs two equally long, non-empty score lists ({len(a)} vs {len(b)})")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(n_boot)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"diff": float(d.mean()), "ci95": [float(lo), float(hi)],
            "p_not_better": float((means <= 0).mean()), "n": len(d), "n_boot": n_boot}


def translation_accuracy(predictions: Sequence[str | None], references: Sequence[str], *,
                         normalize: bool = False) -> float:
    """Exact-match accuracy for translation tasks.

    item2sid: predictions are the item ids decoded from generated SIDs, references the true ids.
    sid2item: predictions are generated titles, references the catalogue titles. Surrounding
    whitespace is always stripped; `normalize=True` also casefolds and collapses inner whitespace.
    A None prediction (nothing parsable) is wrong.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        return 0.0

    def norm(s: str) -> str:
        s = s.strip()
        return " ".join(s.casefold().split()) if normalize else s

    ok = sum(1 for p, r in zip(predictions, references) if p is not None and norm(str(p)) == norm(str(r)))
    return ok / len(references)
