"""Shared builder for the training tests (no tests here): a small real run directory
(Amazon Scientific items and users restricted to a few hundred events) with data, SidMap and corpus."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_MODEL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "vocab_size": 800}


def build_small_run(run_dir: Path, n_items: int = 120, tune_users: int = 0) -> Path:
    """runs/X/{data,sid,corpus} over the `n_items` most popular Scientific items (`tune_users`: a tune
    split held out of training)."""
    from collections import Counter

    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest, save_corpus
    from llmrec.data.loaders import load_dataset
    from llmrec.data.records import RecDataset
    from llmrec.data.splits import hold_out_tune, leave_one_out
    from llmrec.data.store import load_prepared, save_prepared
    from llmrec.sid.sidmap import SidMap

    full = load_dataset("amazon18_scientific")
    top = {i for i, _ in Counter(x.item for x in full.interactions).most_common(n_items)}
    inter = [x for x in full.interactions if x.item in top]
    users = Counter(x.user for x in inter)
    inter = [x for x in inter if users[x.user] >= 3]
    ds = RecDataset(name="sci-small", items={i: full.items[i] for i in sorted(top, key=int)},
                    interactions=inter, source={"subset_of": "amazon18_scientific", "n_items": n_items})
    save_prepared(run_dir / "data", ds, hold_out_tune(leave_one_out(ds, max_history=10), tune_users))
    prepared = load_prepared(run_dir / "data")
    ids = list(prepared.items)
    sid_map = SidMap({i: (j // 16, (j // 4) % 4, j % 4) for j, i in enumerate(ids)}, level_sizes=[8, 4, 4])
    (run_dir / "sid").mkdir(parents=True, exist_ok=True)
    sid_map.save(run_dir / "sid" / "sid_map.json")
    cfg = CorpusConfig(tasks=["seqrec", "item2sid_title", "sid2item_title"], max_history=10)
    corpus, manifest = build_corpus_with_manifest(prepared, sid_map, cfg)
    save_corpus(run_dir / "corpus", corpus, manifest)
    return run_dir


def short_sft(run_dir: Path, corpus_dir: Path, out_dir: Path, max_length: int = 512, **model_fields) -> dict:
    """Six full fine-tuning steps of the TINY_MODEL on `corpus_dir` (run_sft's summary);
    `model_fields` set other ModelConfig fields (e.g. sid_softmax)."""
    from llmrec.train.config import AdapterConfig, ModelConfig, SFTRecipe, TrainConfig
    from llmrec.train.sft import run_sft

    recipe = SFTRecipe(run=str(run_dir), output=str(out_dir), corpus=str(corpus_dir),
                       model=ModelConfig(preset="tiny", init="semantic", tiny=TINY_MODEL, **model_fields),
                       adapter=AdapterConfig(mode="full"),
                       train=TrainConfig(max_steps=6, learning_rate=3e-3, lr_scheduler="constant", warmup_ratio=0.0,
                                         batch_size=8, logging_steps=1, save_steps=100, report_to=[],
                                         max_length=max_length, seed=3))
    return run_sft(recipe)
