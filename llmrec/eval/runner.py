"""Evaluate any `Ranker` on held-out examples: resumable predictions, metrics.json and a PNG chart.

A `Ranker` is any object with a `name` and `rank(examples, k) -> list[list[str]]` (item ids, best
first; may be shorter than k). Optionally `config() -> dict`, recorded in metrics.json.

Resuming: predictions are appended to `out_dir/predictions.jsonl` one chunk (`batch_size`
examples) at a time, next to `predictions.meta.json` (ranker name + config, k, hash of the
examples). A rerun with the same meta skips the examples already predicted; a different meta (other
examples, k or ranker config) or `resume=False` starts over. A half-written last line (a crash
mid-write) is dropped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tqdm.auto import tqdm

from llmrec.data.records import Example, Item
from llmrec.decode import GenerativeRecommender
from llmrec.eval.metrics import DEFAULT_KS, compute_metrics
from llmrec.eval.report import (  # noqa: F401 (the report tables live in report.py; re-exported)
    breakdown_table,
    compare_table,
    paired_comparisons,
    significance_table,
)
from llmrec.io import LlmrecError, read_json, sha256_json, weights_fingerprint, write_json

log = logging.getLogger(__name__)
PREDICTIONS = "predictions.jsonl"
PREDICTIONS_META = "predictions.meta.json"
METRICS = "metrics.json"
PLOT = "metrics.png"


@runtime_checkable
class Ranker(Protocol):
    name: str

    def rank(self, examples: list[Example], k: int) -> list[list[str]]: ...


def ranker_config(ranker: Ranker) -> dict:
    cfg = getattr(ranker, "config", None)
    if callable(cfg):
        return dict(cfg())
    return dict(cfg) if isinstance(cfg, Mapping) else {}


def examples_hash(examples: Sequence[Example]) -> str:
    return sha256_json([[e.user, e.history, e.target] for e in examples])[:16]


def _read_done(path: Path, examples: Sequence[Example]) -> dict[int, list[str]]:
    """Rows already predicted (index -> ranked ids); truncates a half-written tail."""
    done: dict[int, list[str]] = {}
    good_bytes = 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                row = json.loads(raw)
                i = int(row["i"])
                ok = 0 <= i < len(examples) and row["target"] == examples[i].target
            except (ValueError, KeyError, TypeError):
                break
            if not ok:
                raise LlmrecError(f"{path}: row {i} does not match the examples being evaluated; "
                                  "delete the file or pass resume=False (--no-resume).")
            done[i] = [str(x) for x in row["ranked"]]
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        log.warning("%s: dropping a half-written tail (%d bytes)", path, path.stat().st_size - good_bytes)
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return done


def predict(ranker: Ranker, examples: Sequence[Example], k: int, *, out_dir: str | Path | None = None,
            batch_size: int = 256, resume: bool = True, progress: bool = True) -> tuple[list[list[str]], int]:
    """Ranked lists for all examples (resuming from out_dir); returns (rankings, n newly predicted)."""
    examples = list(examples)
    done: dict[int, list[str]] = {}
    pred_file = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        pred_path, meta_path = out_dir / PREDICTIONS, out_dir / PREDICTIONS_META
        meta = {"ranker": ranker.name, "config": ranker_config(ranker), "k": k,
                "examples": examples_hash(examples), "n": len(examples)}
        old_meta = read_json(meta_path) if meta_path.exists() else None
        if resume and old_meta == meta and pred_path.exists():
            done = _read_done(pred_path, examples)
            if done:
                log.info("%s: resuming, %d/%d examples already predicted", pred_path, len(done), len(examples))
        else:
            pred_path.unlink(missing_ok=True)
            write_json(meta_path, meta)
        pred_file = open(pred_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in the finally below)
    todo = [i for i in range(len(examples)) if i not in done]
    try:
        with tqdm(total=len(examples), initial=len(done), desc=f"eval {ranker.name}", unit="ex",
                  disable=not progress) as bar:
            for lo in range(0, len(todo), batch_size):
                idx = todo[lo:lo + batch_size]
                ranked = ranker.rank([examples[i] for i in idx], k)
                if len(ranked) != len(idx):
                    raise LlmrecError(f"ranker {ranker.name!r} returned {len(ranked)} lists for {len(idx)} examples")
                for i, r in zip(idx, ranked):
                    done[i] = [str(x) for x in r]
                if pred_file is not None:
                    pred_file.write("".join(
                        json.dumps({"i": i, "user": examples[i].user, "target": examples[i].target,
                                    "ranked": done[i]}, ensure_ascii=False) + "\n" for i in idx))
                    pred_file.flush()
                    os.fsync(pred_file.fileno())
                bar.update(len(idx))
    finally:
        if pred_file is not None:
            pred_file.close()
    return [done[i] for i in range(len(examples))], len(todo)


def evaluate(ranker: Ranker, examples: Sequence[Example], *, ks: Sequence[int] = DEFAULT_KS,
             catalogue: Sequence[str], popularity: Mapping[str, int], out_dir: str | Path | None = None,
             batch_size: int = 256, resume: bool = True, split: str = "test", data_fingerprint: str | None = None,
             head_frac: float = 0.2, tail_frac: float = 0.5, k: int | None = None, plot: bool = True,
             progress: bool = True, extra: dict[str, Any] | None = None,
             transitions: Sequence[str] | None = None,
             return_rankings: bool = False) -> dict | tuple[dict, list[list[str]]]:
    """Rank every example (top max(ks), or `k`), compute all metrics, write metrics.json + PNG to out_dir.
    `transitions` (metrics.transition_labels, one per example) adds metrics per transition group.
    With `return_rankings` returns (result, ranked lists) so callers can compare rankers per example."""
    ks = sorted({int(x) for x in ks})
    if not ks or ks[0] < 1:
        raise LlmrecError(f"evaluation cutoffs must be positive integers (got {list(ks)})")
    k = int(k or ks[-1])
    examples = list(examples)
    t0 = time.time()
    rankings, n_new = predict(ranker, examples, k, out_dir=out_dir, batch_size=batch_size, resume=resume,
                              progress=progress)
    seconds = time.time() - t0
    result = compute_metrics(rankings, [e.target for e in examples], ks=ks, catalogue=catalogue,
                             popularity=popularity, behaviors=[e.target_behavior for e in examples],
                             head_frac=head_frac, tail_frac=tail_frac, transitions=transitions)
    result = {
        "format": "llmrec.eval/1",
        "ranker": ranker.name,
        "split": split,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": {"examples": len(examples), "users": len({e.user for e in examples}),
                   "newly_predicted": n_new, "catalogue": len(set(catalogue))},
        "config": {"k": k, "ks": ks, "batch_size": batch_size, "head_frac": head_frac, "tail_frac": tail_frac,
                   "ranker": ranker_config(ranker)},
        "data_fingerprint": data_fingerprint,
        "examples_hash": examples_hash(examples),
        "seconds": {"ranking_this_run": round(seconds, 3)},
        **result,
        **(extra or {}),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json(out_dir / METRICS, result)
        if plot:
            from llmrec.eval.plots import plot_metrics

            plot_metrics([result], out_dir / PLOT, title=f"{ranker.name} ({split}, n={len(examples)})")
    return (result, rankings) if return_rankings else result


def llm_ranker_name(model_dir: str | Path) -> str:
    """'llm-sft' for RUN/sft/model (the stage folder names the model), else 'llm-<folder>'."""
    p = Path(model_dir)
    return f"llm-{p.parent.name if p.name == 'model' else p.name}"


class LLMRanker:
    """`Ranker` over a fine-tuned LLM: the seqrec prompt -> trie-constrained beam search -> item ids
    (through decode.GenerativeRecommender). Loads the model on first use. Its config carries a
    fingerprint of the weights, so predictions saved for an older model in the same folder are
    never reused."""

    def __init__(self, model_dir: str | Path, items: Mapping[str, Item] | None = None, *, num_beams: int = 20,
                 exclude_history: bool = False, name: str | None = None, max_history: int | None = None,
                 device: str | None = None):
        self.model_dir = Path(model_dir)
        self.items = items
        self.num_beams = num_beams
        self.exclude_history = exclude_history
        self.max_history = max_history
        self.device = device
        self.name = name or llm_ranker_name(self.model_dir)
        self._rec: GenerativeRecommender | None = None
        self._weights: str | None = None

    @classmethod
    def from_loaded(cls, rec: GenerativeRecommender, *, name: str = "llm", **kwargs) -> LLMRanker:
        """A ranker over a recommender already in memory (e.g. the policy during GRPO)."""
        ranker = cls(Path(name), rec.items, name=name, num_beams=kwargs.pop("num_beams", rec.num_beams),
                     max_history=kwargs.pop("max_history", rec.max_history), **kwargs)
        ranker._rec = rec
        ranker._weights = "in-memory"
        return ranker

    def config(self) -> dict:
        if self._weights is None:
            self._weights = weights_fingerprint(self.model_dir)
        return {"type": "LLM", "model_dir": self.model_dir.name, "weights": self._weights,
                "num_beams": self.num_beams, "exclude_history": self.exclude_history,
                "max_history": self.max_history}

    @property
    def recommender(self) -> GenerativeRecommender:
        if self._rec is None:
            self._rec = GenerativeRecommender.from_dir(self.model_dir, self.items, device=self.device,
                                                       num_beams=self.num_beams, max_history=self.max_history)
        return self._rec

    def rank(self, examples: list[Example], k: int) -> list[list[str]]:
        if k > self.num_beams:
            raise LlmrecError(f"LLM ranker: k={k} needs num_beams >= k (got --num-beams {self.num_beams}).")
        rec = self.recommender
        out = rec.recommend([e.history for e in examples], k, exclude_history=self.exclude_history,
                            num_beams=self.num_beams)
        return [[item for item, _score in row] for row in out]
