"""`run_eval(EvalConfig) -> EvalReport`: the `llmrec eval` stage as a library call (the CLI, the demo
and users' Python all call this).

Writes RUN/eval/<ranker>/{metrics.json,metrics.png,predictions.jsonl} and the combined
RUN/eval/{metrics.json,comparison.md,metrics.png}; `split: valid` writes under RUN/eval/valid/, and a
`limit` run under .../limit-N/ so a quick check never overwrites a full evaluation. Baselines are
trained on first use and cached under RUN/baselines/.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.baselines.registry import BaselineContext, build_baseline, get_spec
from llmrec.config import save_config, validate_config
from llmrec.data.pairing import check_model_for_run
from llmrec.data.store import PreparedData, load_prepared
from llmrec.eval.config import EvalConfig
from llmrec.eval.metrics import transition_labels
from llmrec.eval.plots import plot_metrics
from llmrec.eval.report import comparison_report, target_groups
from llmrec.eval.runner import LLMRanker, evaluate, llm_ranker_name
from llmrec.eval.translation import run_translation
from llmrec.io import LlmrecError, atomic_path, write_json
from llmrec.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass
class EvalReport:
    """What one evaluation produced (also written to `out_dir`)."""

    out_dir: Path
    split: str
    n_examples: int
    results: list[dict]
    paired: list[dict] = field(default_factory=list)
    translation: dict[str, Any] = field(default_factory=dict)
    table: str = ""

    def metrics(self, ranker: str) -> dict[str, float]:
        for r in self.results:
            if r["ranker"] == ranker:
                return r["metrics"]
        raise KeyError(f"no ranker {ranker!r}; have {[r['ranker'] for r in self.results]}")


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _rankers(cfg: EvalConfig, run: RunDir, prepared: PreparedData,
             progress: bool = True) -> list[tuple[Any, dict, int]]:
    """(ranker, extra metrics fields, default batch size) for every baseline and model asked for."""
    for model_dir in cfg.models:  # a model trained on other data is refused before anything runs
        check_model_for_run(model_dir, prepared=prepared, run=run.root)
    out: list[tuple[Any, dict, int]] = []
    ctx = BaselineContext(run=run.root, prepared=prepared, exclude_history=cfg.exclude_history,
                          retrain=cfg.retrain_baselines, progress=progress)
    for b in cfg.baselines:  # by name from llmrec.baselines.registry (trained ones cached in RUN/baselines/)
        built = build_baseline(b, ctx, cfg.settings_for(b))
        out.append((built.ranker, built.info, built.batch_size))
    for model_dir in cfg.models:
        out.append((LLMRanker(model_dir, prepared.items, num_beams=cfg.num_beams, name=llm_ranker_name(model_dir),
                              exclude_history=cfg.exclude_history), {}, 16))
    return out


def run_eval(cfg: EvalConfig, *, progress: bool = True) -> EvalReport:
    """Evaluate every baseline and model of `cfg` on the same examples; write the combined report."""
    validate_config(cfg)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    run = RunDir(cfg.run)
    prepared = load_prepared(run.data)
    split = prepared.split
    examples = {"test": split.test, "valid": split.valid, "tune": split.tune}[cfg.split]
    out_root = run.eval(cfg.split)
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
        out_root = out_root / f"limit-{cfg.limit}"
    if not examples:
        hint = " (prepare the data with --tune-users N to hold one out)" if cfg.split == "tune" else ""
        raise LlmrecError(f"{run.data}: the {cfg.split} split has no examples{hint}.")
    ks = sorted(set(cfg.ks))
    catalogue = list(prepared.items)
    common = {"ks": ks, "catalogue": catalogue, "popularity": split.item_popularity(), "split": cfg.split,
              "data_fingerprint": prepared.fingerprint, "resume": cfg.resume, "head_frac": cfg.head_frac,
              "tail_frac": cfg.tail_frac, "progress": progress,
              "transitions": transition_labels([e.history for e in examples], [e.target for e in examples],
                                               [[x.item for x in seq] for seq in split.train.values()])}
    rankers = _rankers(cfg, run, prepared, progress)
    results, rankings = [], {}
    for ranker, extra, default_bs in rankers:
        t0 = time.time()
        res, rankings[ranker.name] = evaluate(ranker, examples, out_dir=out_root / safe_name(ranker.name),
                                              batch_size=cfg.batch_size or default_bs, extra=extra,
                                              return_rankings=True, **common)
        results.append(res)
        m = res["metrics"]
        log.info("%s: %s  (%.1fs)", ranker.name, "  ".join(
            f"{key}={m[key]:.4f}" for key in [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks]), time.time() - t0)
    translation = {}
    if cfg.translation:
        translation = run_translation(cfg.models, prepared.items, cfg.translation, cfg.seed,
                                      {llm_ranker_name(m): out_root / safe_name(llm_ranker_name(m)) for m in cfg.models},
                                      corpus_dir=run.corpus)
    references = [r.name for (r, _, _), b in zip(rankers, cfg.baselines) if get_spec(b).reference]
    targets = [e.target for e in examples]
    table, paired = comparison_report(results, rankings, targets, references, ks=ks, seed=cfg.seed,
                                      groups=target_groups(targets, common["popularity"], catalogue,
                                                           cfg.head_frac, cfg.tail_frac))
    write_json(out_root / "metrics.json", {"format": "llmrec.eval-combined/1", "split": cfg.split,
                                           "data_fingerprint": prepared.fingerprint, "rankers": results,
                                           "paired": paired, "translation": translation})
    title = f"{prepared.manifest.get('name', run.name)} — {cfg.split}"
    with atomic_path(out_root / "comparison.md") as tmp:
        tmp.write_text(f"# {title} (n={len(examples)}, full ranking over {len(catalogue)} items)\n\n{table}",
                       encoding="utf-8")
    plot_metrics(results, out_root / "metrics.png", title=f"{run.name} ({cfg.split}, n={len(examples)})")
    save_config(cfg, out_root / "eval_config.yaml")
    return EvalReport(out_dir=out_root, split=cfg.split, n_examples=len(examples), results=results,
                      paired=paired, translation=translation, table=table)
