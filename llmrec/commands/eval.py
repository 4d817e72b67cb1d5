"""`llmrec eval`: evaluate baselines and fine-tuned models on a prepared run (see llmrec.eval.run)."""

from __future__ import annotations

import argparse

from llmrec.config import add_config_arguments, config_from_args
from llmrec.eval.config import EvalConfig

FLAGS = ("run", ("models", "--model"), "split", "baselines", ("ks", "--k"), "num_beams", "limit", "batch_size",
         "exclude_history", "head_frac", "tail_frac", "resume", "retrain_baselines", "sasrec_epochs", "translation",
         "seed", "threads")


def _list_baselines() -> int:
    """Each registered baseline with its settings (what `baseline_settings.NAME.FIELD` accepts)."""
    from llmrec.baselines.registry import BASELINES, get_spec
    from llmrec.config import describe

    for name in BASELINES.names():
        spec = get_spec(name)
        print(f"{name}: {spec.config_class.__doc__.strip().splitlines()[0] if spec.config_class else 'no settings'}")
        for key, helptext, default in describe(spec.config_class) if spec.config_class else []:
            print(f"    baseline_settings.{name}.{key} = {default!r}  {helptext}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.list_baselines:
        return _list_baselines()
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
    add_config_arguments(p, EvalConfig, FLAGS, example="--set ks=[1,5,10] --set baseline_settings.sasrec.hidden=128")
    p.add_argument("--list-baselines", action="store_true", help="list the baselines and their settings, then exit")
    p.set_defaults(func=_run)
