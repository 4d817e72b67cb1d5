"""GPU smoke test of the training stack: SFT (full / LoRA / QLoRA), constrained decoding, GRPO and
`accelerate launch`, on a small real run (Amazon Scientific, the tiny preset, a hand-made SidMap so
no faiss is needed). Each section is timed and reports loss, tokens/s and peak GPU memory; a failing
section is recorded with its traceback and the others still run.

    LLMREC_DATA_DIR=../shared/data python scripts/gpu_smoke.py --work /tmp/gpu_smoke --out gpu_smoke.json

On a machine without the pinned packages, carry them as wheels and put them first on PYTHONPATH
(pip install --no-deps --target /tmp/site ...; PYTHONPATH=/tmp/site:$PWD). Sections: --only NAME ...
Prints one JSON summary as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the gpu_smoke_* section modules beside this file

from gpu_smoke_common import RESULTS, build_run, env
from gpu_smoke_launch import launch_multi_cpu, launch_probes, launch_single_gpu
from gpu_smoke_train import (
    grpo_full,
    grpo_full_bf16,
    grpo_lora,
    sft_full,
    sft_full_bf16,
    sft_lora,
    sft_qlora,
    warmup,
)

SECTIONS = ["env", "warmup", "sft_full_bf16_weights", "sft_full", "sft_lora", "sft_qlora", "grpo_full",
            "grpo_full_bf16_weights", "grpo_lora", "launch_probes", "accelerate_single_gpu",
            "accelerate_multi_cpu_torchrun"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/llmrec_gpu_smoke")
    ap.add_argument("--out", default=None, help="write the full results JSON here")
    ap.add_argument("--n-items", type=int, default=300)
    ap.add_argument("--sft-steps", type=int, default=60)
    ap.add_argument("--grpo-steps", type=int, default=6)
    ap.add_argument("--only", nargs="*", default=None, help=f"sections among {SECTIONS}")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    repo = Path(__file__).resolve().parents[1]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    want = set(args.only or SECTIONS)
    t0 = time.time()
    run = work / "run"
    if not (run / "corpus").exists():
        build_run(run, args.n_items)
    RESULTS["build_run_s"] = round(time.time() - t0, 1)
    calls = {"env": lambda: env(), "warmup": lambda: warmup(run, work),
             "launch_probes": lambda: launch_probes(run, work, repo), "sft_full": lambda: sft_full(run, work, args.sft_steps),
             "sft_full_bf16_weights": lambda: sft_full_bf16(run, work, args.sft_steps),
             "sft_lora": lambda: sft_lora(run, work, args.sft_steps),
             "sft_qlora": lambda: sft_qlora(run, work, args.sft_steps),
             "grpo_full": lambda: grpo_full(run, work, args.grpo_steps),
             "grpo_full_bf16_weights": lambda: grpo_full_bf16(run, work, args.grpo_steps),
             "grpo_lora": lambda: grpo_lora(run, work, args.grpo_steps),
             "accelerate_single_gpu": lambda: launch_single_gpu(run, work, repo),
             "accelerate_multi_cpu_torchrun": lambda: launch_multi_cpu(run, work, repo)}
    for name in SECTIONS:
        if name in want:
            calls[name]()
            if args.out:
                Path(args.out).write_text(json.dumps(RESULTS, indent=1, default=str))
    RESULTS["total_s"] = round(time.time() - t0, 1)
    if args.out:
        Path(args.out).write_text(json.dumps(RESULTS, indent=1, default=str))
    brief = {k: ({kk: vv for kk, vv in v.items() if kk not in ("traceback", "tail")} if isinstance(v, dict) else v)
             for k, v in RESULTS.items()}
    brief["failed"] = [k for k, v in RESULTS.items() if isinstance(v, dict) and not v.get("ok", True)]
    print(json.dumps(brief, default=str))
    return 1 if brief["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
