"""GRPO's validation callback: HR/NDCG on a fixed validation subset during training, keeping the best step."""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

from llmrec.eval.runner import evaluate

log = logging.getLogger(__name__)


class ValidationCallback(TrainerCallback):
    """Every `every` steps: HR/NDCG on a fixed validation subset with the same evaluator as `llmrec eval`.

    With `keep_best`, the trainable weights of the best-scoring step (by `metric`) are kept in CPU
    memory, so `restore_best` can put them back before saving: GRPO on a small policy can peak and
    then drift (measured on the tiny preset), and validation is the split meant for that choice.
    """

    def __init__(self, make_ranker, examples, every: int, catalogue, popularity, ks=(1, 5, 10, 20),
                 keep_best: bool = False, metric: str = "NDCG@10"):
        self.make_ranker = make_ranker
        self.examples = examples
        self.every = every
        self.catalogue = list(catalogue)
        self.popularity = popularity
        self.ks = ks
        self.keep_best = keep_best
        self.metric = metric
        self.history: list[dict] = []
        self.best: dict | None = None
        self._best_state: dict[str, torch.Tensor] | None = None

    def run(self, step: int, model) -> dict:
        result = evaluate(self.make_ranker(model), self.examples, ks=self.ks, catalogue=self.catalogue,
                          popularity=self.popularity, split="valid", plot=False, progress=False)
        row = {"step": step, **result["metrics"]}
        self.history.append(row)
        log.info("validation at step %d: %s", step,
                 {k: round(v, 4) for k, v in row.items() if k in ("HR@10", "NDCG@10")})
        if self.keep_best and (self.best is None or row.get(self.metric, 0.0) > self.best.get(self.metric, 0.0)):
            self.best = row
            self._best_state = {n: p.detach().to("cpu", copy=True)
                                for n, p in model.named_parameters() if p.requires_grad}
        return row

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
