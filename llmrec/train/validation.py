"""GRPO's validation callback: HR/NDCG on a fixed validation subset during training, keeping the best step."""

from __future__ import annotations

import logging
import math

import torch
from transformers import TrainerCallback

from llmrec.eval.metrics import example_metrics
from llmrec.eval.runner import evaluate

log = logging.getLogger(__name__)


class ValidationCallback(TrainerCallback):
    """Every `every` steps: HR/NDCG on a fixed validation subset with the same evaluator as `llmrec eval`.

    With `keep_best`, the trainable weights of the best-scoring step (by `metric`) are kept in CPU
    memory, so `restore_best` can put them back before saving: GRPO on a small policy can peak and
    then drift (measured on the tiny preset), and validation is the split meant for that choice.
    `margin_z` > 0: a step replaces the kept one only when its per-user gain over it (paired: same users)
    exceeds `margin_z` standard errors of that gain, so a step that is better by validation noise alone
    (a few hundred users, a short run) does not displace the starting policy.
    """

    def __init__(self, make_ranker, examples, every: int, catalogue, popularity, ks=(1, 5, 10, 20),
                 keep_best: bool = False, metric: str = "NDCG@10", margin_z: float = 0.0):
        self.make_ranker = make_ranker
        self.examples = examples
        self.every = every
        self.catalogue = list(catalogue)
        self.popularity = popularity
        self.ks = ks
        self.keep_best = keep_best
        self.metric = metric
        self.margin_z = margin_z
        self.history: list[dict] = []
        self.best: dict | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self._best_scores: list[float] = []

    def run(self, step: int, model) -> dict:
        result, rankings = evaluate(self.make_ranker(model), self.examples, ks=self.ks, catalogue=self.catalogue,
                                    popularity=self.popularity, split="valid", plot=False, progress=False,
                                    return_rankings=True)
        row = {"step": step, **result["metrics"]}
        self.history.append(row)
        log.info("validation at step %d: %s", step,
                 {k: round(v, 4) for k, v in row.items() if k in ("HR@10", "NDCG@10")})
        if not self.keep_best:
            return row
        scores = [example_metrics(r, e.target, self.ks).get(self.metric, 0.0) for r, e in zip(rankings, self.examples)]
        if self.best is None or self._beats_best(scores):
            self.best = row
            self._best_scores = scores
            self._best_state = {n: p.detach().to("cpu", copy=True)
                                for n, p in model.named_parameters() if p.requires_grad}
        return row

    def _beats_best(self, scores: list[float]) -> bool:
        """Mean per-user gain over the kept step > 0 and > margin_z standard errors of it."""
        d = [a - b for a, b in zip(scores, self._best_scores)]
        if not d:
            return False
        mean = sum(d) / len(d)
        se = math.sqrt(sum((x - mean) ** 2 for x in d) / max(1, len(d) - 1) / len(d))
        beats = mean > 0 and mean > self.margin_z * se
        if mean > 0 and not beats:
            log.info("not kept: %s gain %.4f over step %d is within %.1f standard errors (%.4f)", self.metric, mean,
                     self.best["step"], self.margin_z, se)
        return beats

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

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.every and model is not None and state.global_step == 0:
            self.run(0, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and model is not None and state.global_step % self.every == 0:
            self.run(state.global_step, model)
