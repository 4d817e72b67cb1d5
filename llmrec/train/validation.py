"""Validation during training (SFT and GRPO): HR/NDCG on a fixed validation subset, keeping the best step."""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from llmrec.decode import GenerativeRecommender
from llmrec.eval.metrics import example_metrics
from llmrec.eval.runner import LLMRanker, evaluate
from llmrec.io import LlmrecError, atomic_path, read_json, write_json
from llmrec.train.checkpoints import checkpoint_folder

log = logging.getLogger(__name__)

STATE_FILE = "llmrec_validation.json"  # in each checkpoint: the runs so far and the kept step
BEST_FILE = "llmrec_validation_best.safetensors"  # the kept step's trainable weights (keep_best)


class ValidationCallback(TrainerCallback):
    """HR/NDCG on a fixed validation subset with the same evaluator as `llmrec eval`: at step 0, then
    every `every` steps, or every `every_s` seconds of wall time (runs bound by a time budget), or
    `runs` times spread over the planned steps; `finish` adds a run for the final step.

    With `keep_best`, the trainable weights of the best-scoring step (by `metric`) are kept in CPU
    memory, so `restore_best` can put them back before saving: GRPO on a small policy can peak and
    then drift (measured on the tiny preset), and validation is the split meant for that choice.
    `margin_z` > 0: a step replaces the kept one only when its per-user gain over it (paired: same users)
    exceeds `margin_z` standard errors of that gain, so a step that is better by validation noise alone
    (a few hundred users, a short run) does not displace the starting policy. With `favour_last` the
    margin protects the final step instead (SFT, whose schedule ends annealed): any gain makes a run the
    best so far, and at `finish` the final weights stay unless that best beats them by the margin.
    """

    def __init__(self, make_ranker, examples, every: int, catalogue, popularity, ks=(1, 5, 10, 20),
                 keep_best: bool = False, metric: str = "NDCG@10", margin_z: float = 0.0, every_s: float = 0.0,
                 runs: int = 0, favour_last: bool = False, split: str = "valid"):
        self.make_ranker = make_ranker
        self.examples = examples
        self.split = split
        self.every = every
        self.every_s = every_s
        self.runs = runs
        self._next_due = math.inf
        self.catalogue = list(catalogue)
        self.popularity = popularity
        self.ks = ks
        self.keep_best = keep_best
        self.metric = metric
        self.margin_z = margin_z
        self.favour_last = favour_last
        self.history: list[dict] = []
        self.best: dict | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self._best_scores: list[float] = []
        self._last_scores: list[float] = []

    def run(self, step: int, model) -> dict:
        result, rankings = evaluate(self.make_ranker(model), self.examples, ks=self.ks, catalogue=self.catalogue,
                                    popularity=self.popularity, split=self.split, plot=False, progress=False,
                                    return_rankings=True)
        row = {"step": step, **result["metrics"]}
        self.history.append(row)
        log.info("validation (%s) at step %d: %s", self.split, step,
                 {k: round(v, 4) for k, v in row.items() if k in ("HR@10", "NDCG@10")})
        if not self.keep_best:
            return row
        self._last_scores = [example_metrics(r, e.target, self.ks).get(self.metric, 0.0)
                             for r, e in zip(rankings, self.examples)]
        margin = 0.0 if self.favour_last else self.margin_z
        if self.best is None or _paired_gain(self._last_scores, self._best_scores, margin, self.best["step"]):
            self.best = row
            self._best_scores = self._last_scores
            self._best_state = {n: p.detach().to("cpu", copy=True)
                                for n, p in model.named_parameters() if p.requires_grad}
        return row

    @classmethod
    def for_policy(cls, prepared, tokenizer, sid_map, trie, library, *, samples: int, beams: int, seed: int,
                   name: str, max_history: int | None = None, **kwargs) -> ValidationCallback:
        """The callback over a model being trained: `samples` users of the split's tune examples (its
        valid examples when it holds none) drawn with `seed`, each run ranking them by trie-constrained
        beam search over the current weights (`kwargs`: when to run and what to keep)."""
        split, pool = prepared.split.tuning_examples()
        examples = random.Random(seed).sample(pool, min(samples, len(pool))) if pool else []

        def make_ranker(model):
            rec = GenerativeRecommender(model, tokenizer, sid_map, prepared.items, trie=trie,
                                        max_history=max_history, num_beams=beams, library=library)
            return LLMRanker.from_loaded(rec, name=name)

        return cls(make_ranker, examples, kwargs.pop("every", 0), catalogue=list(prepared.items) if examples else [],
                   popularity=prepared.split.item_popularity() if examples else {},
                   ks=tuple(k for k in (1, 5, 10, 20) if k <= beams), split=split, **kwargs)

    @property
    def enabled(self) -> bool:
        return bool(self.examples) and bool(self.every or self.every_s or self.runs)

    def finish(self, step: int, model) -> dict | None:
        """Validate the final step (unless it just was), then `restore_best`; returns the kept row."""
        if self.enabled and (not self.history or self.history[-1]["step"] != step):
            self.run(step, model)
        if (self.favour_last and self.best is not None and self.best["step"] != step
                and not _paired_gain(self._best_scores, self._last_scores, self.margin_z, step,
                                     f"step {self.best['step']} not kept")):
            self.best, self._best_scores = self.history[-1], self._last_scores  # the final weights stay
            self._best_state = None
            log.info("kept the final weights (step %d)", step)
            return self.history[-1]
        return self.restore_best(model)

    def restore_best(self, model) -> dict | None:
        """Load the best step's trainable weights into `model`; returns that step's row (None: nothing kept)."""
        if not self.keep_best or self._best_state is None:
            return None
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in self._best_state:
                    p.copy_(self._best_state[n].to(p.device, p.dtype))
        log.info("kept the policy of step %d (validation %s %.4f)", self.best["step"], self.metric,
                 self.best[self.metric])
        return self.best

    def on_save(self, args, state, control, **kwargs):
        """Write the runs so far and the kept weights into the checkpoint, so a resumed run still knows
        which earlier step was best (without them it would keep a worse final step)."""
        folder = checkpoint_folder(args.output_dir, state.global_step)
        if self.enabled and state.is_world_process_zero and folder.is_dir():
            self.save_state(folder)

    def save_state(self, folder: str | Path) -> None:
        """`STATE_FILE` (and `BEST_FILE` while an earlier step's weights are kept) into `folder`."""
        from safetensors.torch import save_file

        folder = Path(folder)
        if self._best_state is not None:
            with atomic_path(folder / BEST_FILE) as tmp:
                save_file({n: t.contiguous() for n, t in self._best_state.items()}, str(tmp))
        write_json(folder / STATE_FILE, {
            "history": self.history, "best_step": self.best["step"] if self.best else None,
            "best_scores": self._best_scores, "last_scores": self._last_scores,
            "examples": [e.user for e in self.examples], "weights_saved": self._best_state is not None})

    def resume_from(self, folder: str | Path) -> bool:
        """Take back the runs and kept weights saved in checkpoint `folder` (False: none saved there).
        A checkpoint whose runs ranked other validation users is refused: its scores are not comparable."""
        from safetensors.torch import load_file

        path = Path(folder) / STATE_FILE
        if not self.enabled:
            return False
        if not path.is_file():  # written last (after BEST_FILE), so a cut-off save leaves none
            log.warning("%s has no %s: validation starts afresh, the runs before it are forgotten", folder,
                        STATE_FILE)
            return False
        saved = read_json(path, "validation state")
        if saved.get("examples") != [e.user for e in self.examples]:
            raise LlmrecError(f"{path}: its validation runs ranked other users (validation.samples or the seed "
                              "changed since); resume with the settings it was trained with, or start a new output.")
        self.history = list(saved["history"])
        self.best = next((r for r in self.history if r["step"] == saved["best_step"]), None)
        self._best_scores, self._last_scores = saved["best_scores"], saved["last_scores"]
        self._best_state = load_file(str(Path(folder) / BEST_FILE)) if saved.get("weights_saved") else None
        log.info("resumed validation: %d runs, kept step %s", len(self.history), saved["best_step"])
        return True

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not self.enabled or model is None:
            return
        if self.runs and not (self.every or self.every_s):
            self.every = max(1, state.max_steps // self.runs)
        if self.every_s:
            self._next_due = time.monotonic() + self.every_s
        if state.global_step == 0:
            self.run(0, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.enabled or model is None:
            return
        step = state.global_step
        if self.every_s:
            if time.monotonic() >= self._next_due:
                self.run(step, model)
                self._next_due = time.monotonic() + self.every_s
        elif self.every and step % self.every == 0:
            self.run(step, model)


def _paired_gain(scores: list[float], reference: list[float], margin_z: float, reference_step: int,
                 what: str = "not kept") -> bool:
    """Mean per-user gain of `scores` over `reference` (same users) > 0 and > margin_z standard errors."""
    d = [a - b for a, b in zip(scores, reference)]
    if not d:
        return False
    mean = sum(d) / len(d)
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / max(1, len(d) - 1) / len(d))
    beats = mean > 0 and mean > margin_z * se
    if mean > 0 and not beats:
        log.info("%s: gain %.4f over step %d is within %.1f standard errors (%.4f)", what, mean, reference_step,
                 margin_z, se)
    return beats


def has_ranking(history: list[dict]) -> bool:
    """Whether validation rows hold a metric `plot_validation` draws."""
    return any("NDCG@10" in v or "HR@10" in v for v in history)


def plot_validation(ax, history: list[dict], kept_step: int | None = None) -> None:
    """Validation HR@10 / NDCG@10 per step on `ax`, the kept step marked."""
    for key in ("NDCG@10", "HR@10"):
        pts = [(v["step"], v[key]) for v in history if key in v]
        if pts:
            ax.plot(*zip(*pts), "o-", label=key)
    if kept_step is not None:
        ax.axvline(kept_step, color="grey", linestyle="--", label=f"kept (step {kept_step})")
    ax.set_xlabel("step")
    ax.set_ylabel("validation metric")
    ax.set_title("validation")
    ax.legend(fontsize=8)
