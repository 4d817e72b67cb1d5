"""Benchmark GRPO after SFT: seconds per step, reward trend and distinct items per group.

    .venv/bin/python scripts/bench_grpo.py --preset tiny --dataset amazon18_scientific --steps 10

Starts from --init-model (default: runs/bench_<dataset>/sft/model, trained first for
--sft-steps if missing). Rollouts: trie-constrained beam search, G distinct items. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmrec.pipeline import ensure_corpus, ensure_data, ensure_sids
from llmrec.train.config import (
    AdapterConfig,
    GRPORecipe,
    GRPOSettings,
    ModelConfig,
    SFTRecipe,
    TrainConfig,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--dataset", default="amazon18_scientific")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--prompts-per-step", type=int, default=4)
    ap.add_argument("--init-model", default=None)
    ap.add_argument("--sft-steps", type=int, default=100, help="SFT steps when no init model exists")
    ap.add_argument("--run", default=None)
    args = ap.parse_args()
    run = Path(args.run or f"runs/bench_{args.dataset}")
    prepared = ensure_data(args.dataset, run)
    sid_map = ensure_sids(prepared, run)
    ensure_corpus(prepared, sid_map, run)
    init = Path(args.init_model or run / "sft" / "model")
    if not (init / "config.json").exists():
        from llmrec.train.sft import run_sft

        mode = "full" if args.preset == "tiny" else "lora"
        run_sft(SFTRecipe(run=str(run), output=str(init.parent), model=ModelConfig(preset=args.preset),
                          adapter=AdapterConfig(mode=mode),
                          train=TrainConfig(max_steps=args.sft_steps, learning_rate=1e-3, batch_size=32,
                                            lr_scheduler="constant", warmup_ratio=0.0, save_steps=10**9,
                                            report_to=[], logging_steps=10, max_eval_samples=64)))
    from llmrec.train.grpo import run_grpo

    G = args.generations
    # The tiny recipe's reward: SASRec's NDCG-shaped rank of each item (SASRec is trained if missing).
    rewards = {"collaborative": 1.0, "valid": 1.0}
    with tempfile.TemporaryDirectory() as tmp:
        s = run_grpo(GRPORecipe(
            run=str(run), init_model=str(init), output=tmp,
            adapter=AdapterConfig(mode="full" if args.preset == "tiny" else "lora"),
            train=TrainConfig(max_steps=args.steps, learning_rate=2e-5, lr_scheduler="constant", warmup_ratio=0.0,
                              batch_size=G * args.prompts_per_step, logging_steps=1, save_steps=10**9,
                              report_to=[]),
            grpo=GRPOSettings(num_generations=G, num_seqrec=2000, num_item2sid=0, eval_every=0, rewards=rewards)))
    print(json.dumps({
        "preset": args.preset, "dataset": args.dataset, "steps": s["global_step"], "s_per_step": s["s_per_step"],
        "num_generations": G, "prompts_per_step": args.prompts_per_step,
        "reward_mean_first": s["reward_mean_first"], "reward_mean_last": s["reward_mean_last"],
        "distinct_per_group": s["distinct_per_group"], "valid_rate": s["valid_rate"], "kl_last": s["kl_last"],
        "rewards": rewards,
    }))


if __name__ == "__main__":
    main()
