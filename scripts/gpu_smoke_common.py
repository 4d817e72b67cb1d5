"""Shared parts of the GPU smoke test (scripts/gpu_smoke.py): section timing/recording, the small
real run it trains on, decode checks and the environment report."""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import torch

RESULTS: dict = {}


def log(*a):
    print(f"[gpu_smoke {time.strftime('%H:%M:%S')}]", *a, flush=True)


def section(name):
    def wrap(fn):
        def run(*a, **k):
            log(f"--- {name}")
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            t0 = time.time()
            try:
                res = fn(*a, **k) or {}
                res["ok"] = True
            except Exception as e:  # noqa: BLE001 - a smoke test reports and goes on
                res = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()}
                log(res["traceback"])
            res["wall_s"] = round(time.time() - t0, 1)
            if torch.cuda.is_available():
                res["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            RESULTS[name] = res
            log(name, json.dumps({k: v for k, v in res.items() if k != "traceback"}, default=str)[:1500])
            return res
        return run
    return wrap


def build_run(run_dir: Path, n_items: int) -> Path:
    """runs/X/{data,sid,corpus} over the n_items most popular items (as tests/train_fixture.py)."""
    import numpy as np

    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest, save_corpus
    from llmrec.data.loaders import load_dataset
    from llmrec.data.records import RecDataset
    from llmrec.data.splits import leave_one_out
    from llmrec.data.store import load_prepared, save_prepared
    from llmrec.sid.sidmap import SidMap

    full = load_dataset("amazon18_scientific")
    top = {i for i, _ in Counter(x.item for x in full.interactions).most_common(n_items)}
    inter = [x for x in full.interactions if x.item in top]
    users = Counter(x.user for x in inter)
    inter = [x for x in inter if users[x.user] >= 3]
    ds = RecDataset(name="sci-gpu", items={i: full.items[i] for i in sorted(top, key=int)}, interactions=inter,
                    source={"subset_of": "amazon18_scientific", "n_items": n_items})
    save_prepared(run_dir / "data", ds, leave_one_out(ds, max_history=10))
    prepared = load_prepared(run_dir / "data")
    ids = list(prepared.items)
    sid_map = SidMap({i: (j // 64, (j // 8) % 8, j % 8) for j, i in enumerate(ids)},
                     level_sizes=[max(1, (len(ids) + 63) // 64), 8, 8])
    (run_dir / "sid").mkdir(parents=True, exist_ok=True)
    sid_map.save(run_dir / "sid" / "sid_map.json")
    np.save(run_dir / "sid" / "embeddings.npy", np.random.default_rng(0).normal(size=(len(sid_map), 16)))
    cfg = CorpusConfig(tasks=["seqrec", "item2sid_title", "sid2item_title"], max_history=10)
    corpus, manifest = build_corpus_with_manifest(prepared, sid_map, cfg)
    save_corpus(run_dir / "corpus", corpus, manifest)
    return run_dir


def sft_recipe(run: Path, out: Path, *, mode="full", steps=60, dtype="float32", load_in_4bit=False, lr=3e-3,
               batch=32):
    from llmrec.train.config import AdapterConfig, ModelConfig, SFTRecipe, TrainConfig

    adapter = AdapterConfig(mode=mode) if mode != "lora" else AdapterConfig(mode="lora", r=8, alpha=16)
    return SFTRecipe(run=str(run), output=str(out),
                     model=ModelConfig(preset="tiny", init="semantic", dtype=dtype, load_in_4bit=load_in_4bit),
                     adapter=adapter,
                     train=TrainConfig(max_steps=steps, learning_rate=lr, lr_scheduler="constant", warmup_ratio=0.0,
                                       batch_size=batch, logging_steps=5, save_steps=10_000, report_to=[],
                                       max_length=192, seed=3, eval_steps=None))


def prompts_for(run: Path, tok, sid_map, n=64):
    from llmrec.corpus import render_prompt, seqrec_messages
    from llmrec.data.store import load_prepared

    prepared = load_prepared(run / "data")
    ex = prepared.split.valid[:n]
    return [render_prompt(tok, seqrec_messages(e.history, sid_map, prepared.items, template_index=0)) for e in ex], \
        [e.target for e in ex]


def check_decode(run: Path, model_dir: Path, k=10) -> dict:
    from llmrec.decode import SidTrie, recommend
    from llmrec.llm import load_model

    cuda = torch.cuda.is_available()
    model, tok, sid_map = load_model(model_dir, device_map="cuda" if cuda else None)
    dev = next(model.parameters()).device
    trie = SidTrie(sid_map, tok, device=dev)
    texts, targets = prompts_for(run, tok, sid_map)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.time()
    ranked = recommend(model, tok, trie, texts, k=k, num_beams=20)
    if cuda:
        torch.cuda.synchronize()
    dt = time.time() - t0
    valid = all(it in sid_map.codes for r in ranked for it, _ in r)
    distinct = all(len({it for it, _ in r}) == len(r) for r in ranked)
    hits = sum(t in [it for it, _ in r] for r, t in zip(ranked, targets))
    return {"device": str(dev), "dtype": str(next(model.parameters()).dtype), "prompts": len(texts),
            "per_prompt": [len(r) for r in ranked][:3], "all_valid": valid, "all_distinct": distinct,
            f"HR@{k}": round(hits / len(texts), 3), "decode_s": round(dt, 2),
            "prompts_per_s": round(len(texts) / dt, 1)}


def sft_summary(s: dict) -> dict:
    keep = ("global_step", "train_seconds", "model_load_seconds", "tokens_per_s", "loss_first", "loss_last",
            "trainable_params")
    return {k: s.get(k) for k in keep}


@section("env")
def env():
    import accelerate
    import peft
    import transformers
    import trl

    from llmrec.train.common import precision_kwargs

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
           "trl": trl.__version__, "peft": peft.__version__, "accelerate": accelerate.__version__,
           "cuda": torch.cuda.is_available(), "precision_kwargs": precision_kwargs()}
    try:
        import bitsandbytes

        out["bitsandbytes"] = bitsandbytes.__version__
    except Exception as e:  # noqa: BLE001
        out["bitsandbytes"] = f"missing: {e}"
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out
