"""`llmrec eval`: evaluate baselines and fine-tuned models on a prepared run (see llmrec.eval.run)."""

from __future__ import annotations

import argparse

from llmrec.config import add_config_arguments, config_from_args
from llmrec.eval.config import EvalConfig

FLAGS = ("run", ("models", "--model"), "split", "baselines", ("ks", "--k"), "num_beams", "limit", "batch_size",
         "exclude_history", "head_frac", "tail_frac", "resume", "retrain_baselines", "sasrec_epochs", "translation",
         "seed", "threads")


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(EvalConfig, args)  # checked before torch and the models are imported
    from llmrec.eval.run import run_eval

    report = run_eval(cfg)
    print(report.table)
    print(f"wrote {report.out_dir / 'metrics.json'}, {report.out_dir / 'comparison.md'}, "
          f"{report.out_dir / 'metrics.png'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate baselines and/or models (HR/NDCG/MRR, head/tail, paired bootstrap)",
                              description="Rank every held-out example with each baseline and model (full ranking "
                                          "over the catalogue); writes RUN/eval (or RUN/eval/valid).")
    add_config_arguments(p, EvalConfig, FLAGS, example="--set ks=[1,5,10]")
    p.set_defaults(func=_run)
