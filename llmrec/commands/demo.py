"""`llmrec demo`: the end-to-end pipeline on the embedded defaults."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from llmrec.demo import DemoConfig, run_demo

    run_demo(DemoConfig(out=args.out, dataset=args.dataset, sft_minutes=args.sft_minutes,
                        grpo_minutes=args.grpo_minutes, eval_users=args.eval_users))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from llmrec.demo import DEFAULT_DATASET, DemoConfig

    d = DemoConfig()
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded defaults (~15 min on 2 CPU cores)")
    p.add_argument("--out", default=d.out, help=f"run directory (default {d.out})")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="dataset name under LLMREC_DATA_DIR, or a path")
    p.add_argument("--sft-minutes", type=float, default=d.sft_minutes)
    p.add_argument("--grpo-minutes", type=float, default=d.grpo_minutes)
    p.add_argument("--eval-users", type=int, default=d.eval_users)
    p.set_defaults(func=_run)
