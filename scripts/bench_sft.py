"""Benchmark LoRA/full SFT throughput: tokens/s and loss over N steps on a real dataset.

    .venv/bin/python scripts/bench_sft.py --preset tiny --dataset amazon18_scientific --steps 50 [--sid-softmax level]

Builds (or reuses) runs/bench_<dataset>/{data,sid,corpus}, then trains N steps into a scratch
folder. Presets: tiny (full fine-tune), smollm2-135m or any HF id/path (LoRA). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmrec.pipeline import ensure_corpus, ensure_data, ensure_sids
from llmrec.train.config import AdapterConfig, ModelConfig, SFTRecipe, TrainConfig
from llmrec.train.sft import run_sft


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--dataset", default="amazon18_scientific")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--mode", default=None, choices=["full", "lora", "embeddings"],
                    help="default: full for tiny, lora otherwise")
    ap.add_argument("--run", default=None, help="run folder to build/reuse (default runs/bench_<dataset>)")
    ap.add_argument("--sid-softmax", default="vocab", choices=["vocab", "level"],
                    help="level: SID targets normalised over their own level's tokens (model.sid_softmax)")
    args = ap.parse_args()
    run = Path(args.run or f"runs/bench_{args.dataset}")
    t0 = time.time()
    prepared = ensure_data(args.dataset, run)
    sid_map = ensure_sids(prepared, run)
    ensure_corpus(prepared, sid_map, run)
    setup_s = time.time() - t0
    mode = args.mode or ("full" if args.preset == "tiny" else "lora")
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_sft(SFTRecipe(
            run=str(run), output=tmp, model=ModelConfig(preset=args.preset, sid_softmax=args.sid_softmax), adapter=AdapterConfig(mode=mode),
            train=TrainConfig(max_steps=args.steps, learning_rate=1e-3 if mode == "full" else 5e-4,
                              lr_scheduler="constant", warmup_ratio=0.0, batch_size=args.batch_size,
                              max_length=args.max_length, logging_steps=max(1, args.steps // 10),
                              save_steps=10**9, report_to=[], max_eval_samples=64)))
    print(json.dumps({
        "preset": args.preset, "mode": mode, "sid_softmax": args.sid_softmax, "dataset": args.dataset, "steps": summary["global_step"],
        "batch_size": args.batch_size, "tokens_per_s": summary["tokens_per_s"],
        "s_per_step": round(summary["train_seconds"] / max(1, summary["global_step"]), 3),
        "loss_first": summary["loss_first"], "loss_last": summary["loss_last"],
        "eval_loss_seqrec": summary["eval_loss_seqrec"], "model_load_s": summary["model_load_seconds"],
        "setup_s": round(setup_s, 1), "trainable_params": summary["trainable_params"],
    }))


if __name__ == "__main__":
    main()
