"""Train/valid/test splits: leave-one-out, global time split, and the source's own split.

Every split keeps training targets strictly before a user's held-out events, so a valid/test
target event is never a training target. Users or events a split cannot use are counted in
`Split.options["dropped"]`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from llmrec.data.records import Example, Interaction, RecDataset, Split
from llmrec.io import LlmrecError

SPLIT_METHODS = ("loo", "time", "native")


def _example(user: str, history: Sequence[Interaction], target: Interaction, max_history: int | None) -> Example:
    hist = list(history) if max_history is None else list(history)[-max_history:] if max_history > 0 else []
    return Example(user=user, history=[x.item for x in hist], history_behaviors=[x.behavior for x in hist],
                   target=target.item, target_behavior=target.behavior, timestamp=target.timestamp)


def _check_max_history(max_history: int | None) -> None:
    if max_history is not None and max_history < 1:
        raise LlmrecError(f"max_history={max_history}: must be a positive number of items (or None for all).")


def leave_one_out(dataset: RecDataset, max_history: int | None = None, short_users: str = "drop") -> Split:
    """Last event = test, second-to-last = valid, the rest = train (per user, in time order).

    Users with fewer than 3 events: short_users='drop' leaves them out (counted), 'train' keeps
    all their events in train only.
    """
    _check_max_history(max_history)
    if short_users not in ("drop", "train"):
        raise LlmrecError(f"short_users={short_users!r}: use 'drop' or 'train'.")
    train: dict[str, list[Interaction]] = {}
    valid, test = [], []
    dropped_users = dropped_events = 0
    for user, seq in dataset.sequences().items():
        if len(seq) < 3:
            if short_users == "drop":
                dropped_users += 1
                dropped_events += len(seq)
            else:
                train[user] = seq
            continue
        train[user] = seq[:-2]
        valid.append(_example(user, seq[:-2], seq[-2], max_history))
        test.append(_example(user, seq[:-1], seq[-1], max_history))
    dropped = {}
    if dropped_users:
        key = "users_with_fewer_than_3_events"
        dropped = {key: dropped_users, f"events_of_{key}": dropped_events}
    return Split(train=train, valid=valid, test=test, method="loo",
                 options={"max_history": max_history, "short_users": short_users, "dropped": dropped})


def time_split(dataset: RecDataset, ratios: Sequence[float] = (8, 1, 1), max_history: int | None = None) -> Split:
    """Global split by timestamp quantiles (train:valid:test ratios, default 8:1:1).

    Every valid/test event becomes an example whose history is all of the user's earlier events
    (train-period and earlier held-out events), truncated to max_history. Held-out events with no
    earlier event are counted as dropped.
    """
    _check_max_history(max_history)
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise LlmrecError(f"ratios={list(ratios)}: need three non-negative numbers train:valid:test, e.g. 8:1:1.")
    missing = sum(1 for x in dataset.interactions if x.timestamp is None)
    if missing:
        raise LlmrecError(f"dataset {dataset.name!r}: {missing} interactions have no timestamp, so a time split "
                          "is impossible; use the leave-one-out split (--split loo).")
    total = float(sum(ratios))
    ts = sorted(x.timestamp for x in dataset.interactions)
    n = len(ts)
    cut_valid = ts[min(n - 1, int(n * ratios[0] / total))]
    cut_test = ts[min(n - 1, int(n * (ratios[0] + ratios[1]) / total))]
    if ratios[2] == 0:
        cut_test = float("inf")
    if ratios[1] == 0:
        cut_valid = cut_test
    train: dict[str, list[Interaction]] = {}
    valid, test = [], []
    no_hist = {"valid": 0, "test": 0}
    for user, seq in dataset.sequences().items():
        tr = [x for x in seq if x.timestamp < cut_valid]
        if tr:
            train[user] = tr
        for k, x in enumerate(seq):
            if x.timestamp < cut_valid:
                continue
            part = "valid" if x.timestamp < cut_test else "test"
            if k == 0:
                no_hist[part] += 1
                continue
            (valid if part == "valid" else test).append(_example(user, seq[:k], x, max_history))
    dropped = {f"{p}_events_without_history": c for p, c in no_hist.items() if c}
    return Split(train=train, valid=valid, test=test, method="time",
                 options={"max_history": max_history, "ratios": [float(r) for r in ratios],
                          "cut_valid": cut_valid, "cut_test": cut_test if cut_test != float("inf") else None,
                          "dropped": dropped})


def native_split(dataset: RecDataset, max_history: int | None = None) -> Split:
    """The held-out examples the source ships (e.g. MiniOneRec valid/test csv).

    Train sequences are each user's known events before their first held-out target, so no
    held-out target is ever a training target.
    """
    _check_max_history(max_history)
    if not dataset.presplit:
        raise LlmrecError(f"dataset {dataset.name!r} ships no split of its own; use --split loo or time.")

    def trunc(e: Example) -> Example:
        if max_history is None or len(e.history) <= max_history:
            return e
        return Example(user=e.user, history=e.history[-max_history:],
                       history_behaviors=e.history_behaviors[-max_history:], target=e.target,
                       target_behavior=e.target_behavior, timestamp=e.timestamp)

    seqs = dataset.sequences()
    first_heldout: dict[str, int] = {}
    for part in ("valid", "test"):
        for e in dataset.presplit.get(part, []):
            if e.user in first_heldout:
                continue
            seq = seqs.get(e.user, [])
            # position of this example's target: the first index where history then target match
            n = len(e.history)
            for k in range(n, len(seq)):
                if seq[k].item == e.target and [x.item for x in seq[k - n:k]] == e.history:
                    first_heldout[e.user] = k
                    break
            else:
                first_heldout[e.user] = max(0, len(seq) - 1)
    train = {u: seq[: first_heldout.get(u, len(seq))] for u, seq in seqs.items()}
    train = {u: s for u, s in train.items() if s}
    return Split(train=train, valid=[trunc(e) for e in dataset.presplit.get("valid", [])],
                 test=[trunc(e) for e in dataset.presplit.get("test", [])], method="native",
                 options={"max_history": max_history, "dropped": {}})


def hold_out_tune(split: Split, users: int, seed: int = 0) -> Split:
    """Take the last two training events of `users` users (a seeded sample of those with at least three)
    out of `train`; `split.tune` gets one example per user: history up to the second of them (the first
    ends it), target the second.

    Why: validation during training (SFT's and GRPO's keep_best) ranks held-out users from a prompt. A
    `valid` prompt is the user's training sequence, which a model trained for many passes has memorised
    token for token; a test prompt ends in the valid event, which it never trained on for that user. A
    tune prompt likewise ends in an event left out of training, and its target was never trained on
    either, so it asks what test asks, one event earlier. Valid and test examples are unchanged (their
    histories keep both events).
    """
    if users < 0:
        raise LlmrecError(f"tune_users={users}: must be >= 0 (0: no tune split).")
    if not users:
        return split
    eligible = sorted(u for u, seq in split.train.items() if len(seq) >= 3)
    chosen = set(random.Random(seed).sample(eligible, min(users, len(eligible))))
    max_history = split.options.get("max_history")
    train, tune = {}, []
    for user, seq in split.train.items():
        if user in chosen:
            tune.append(_example(user, seq[:-1], seq[-1], max_history))
            seq = seq[:-2]
        train[user] = seq
    return replace(split, train=train, tune=tune,
                   options={**split.options, "tune_users": users, "tune_seed": seed})


def make_split(dataset: RecDataset, method: str = "auto", max_history: int | None = None,
               short_users: str = "drop", ratios: Sequence[float] = (8, 1, 1), tune_users: int = 0,
               seed: int = 0) -> Split:
    """Dispatch by name: 'loo', 'time', 'native', or 'auto' (native when the source ships one, else loo);
    `tune_users` > 0 then holds out a tune split (`hold_out_tune`, sampled with `seed`)."""
    if method == "auto":
        method = "native" if dataset.presplit else "loo"
    if method == "loo":
        split = leave_one_out(dataset, max_history=max_history, short_users=short_users)
    elif method == "time":
        split = time_split(dataset, ratios=ratios, max_history=max_history)
    elif method == "native":
        split = native_split(dataset, max_history=max_history)
    else:
        raise LlmrecError(f"split={method!r} is not known; use one of auto, {', '.join(SPLIT_METHODS)}.")
    return hold_out_tune(split, tune_users, seed)


def split_summary(split: Split) -> dict[str, Any]:
    """Sizes of each part, for printing and the manifest."""
    return {"method": split.method, "train_users": len(split.train),
            "train_events": sum(len(s) for s in split.train.values()),
            **({"tune": len(split.tune)} if split.tune else {}),
            "valid": len(split.valid), "test": len(split.test)}
