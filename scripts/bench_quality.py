"""Quality within a training budget: the recommended CPU recipe (recipes/tiny-cpu) on any dataset.

    python scripts/bench_quality.py --dataset amazon18_scientific --minutes 10

Prepares the data (leave-one-out), builds Semantic IDs (recipes/tiny-cpu/sid.yaml: from text embeddings
when most items have text, else from collaborative vectors of the training interactions), builds the
corpus, then trains within
`--minutes` of training wall time in all: one SFT stage (recipes/tiny-cpu/sft.yaml with
schedule_by=time: its learning-rate schedule laid over its share of the budget) and GRPO (grpo.yaml from
that model, best validated step kept). SASRec and
most-popular are trained/evaluated beside it. Every ranker is scored through `run_eval` on all
validation and test users (`--users N`: the first N only, for a quick look), and on the tune users
when the recipe folder's data.yaml holds some out (`tune_users`). The last line is one JSON
object: NDCG@10 and HR@10 per ranker and split, the paired bootstrap of LLM minus SASRec on test,
translation accuracy (item2sid / sid2item on 1,000 training items, when items have titles) and the
minutes of every stage.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from llmrec.baselines.sasrec import cached_sasrec
from llmrec.demo.config import DemoConfig
from llmrec.demo.run import demo_recipes
from llmrec.eval.config import EvalConfig
from llmrec.eval.run import run_eval
from llmrec.pipeline import ensure_corpus, ensure_data, ensure_sids, sid_config_for
from llmrec.train.grpo import run_grpo
from llmrec.train.sft import run_sft

#: share of the training budget given to GRPO (the rest is SFT)
GRPO_SHARE = 0.2


def bench(dataset: str, minutes: float, run: Path, recipes: str = "tiny-cpu", users: int | None = None,
          seed: int = 42, grpo_share: float = GRPO_SHARE, translation: int = 1000) -> dict[str, Any]:
    sft_minutes, grpo_minutes = minutes * (1 - grpo_share), minutes * grpo_share
    # the demo's recipes with this budget: one SFT stage on the time schedule, then GRPO from it
    # keeping its best validated step
    data_cfg, sid_recipe, corpus_cfg, sft_recipe, grpo_recipe = demo_recipes(DemoConfig(
        out=str(run), dataset=dataset, recipes=recipes, sft_minutes=sft_minutes, grpo_minutes=grpo_minutes,
        seed=seed))
    t: dict[str, float] = {}

    def stage(name: str, t0: float) -> None:
        t[name] = round((time.time() - t0) / 60, 2)

    t0 = time.time()
    prepared = ensure_data(dataset, run, config=data_cfg)  # reused when prepared alike
    stage("data", t0)
    t0 = time.time()
    sid_cfg = sid_config_for(prepared, sid_recipe)
    sid_map = ensure_sids(prepared, run, sid_cfg)
    stage("sid", t0)
    t0 = time.time()
    manifest = ensure_corpus(prepared, sid_map, run, corpus_cfg)
    stage("corpus", t0)
    t0 = time.time()
    sft = run_sft(sft_recipe)
    stage("sft", t0)
    t0 = time.time()
    cached_sasrec(run, prepared, seed=seed)
    stage("sasrec", t0)
    t0 = time.time()
    grpo = run_grpo(grpo_recipe)
    stage("grpo", t0)

    t0 = time.time()
    models = [str(run / "sft" / "model"), str(run / "grpo" / "model")]
    has_titles = bool(manifest["counts"]["train"].get("item2sid_title"))
    reports = {}
    for split in (["tune"] if prepared.split.tune else []) + ["valid", "test"]:
        reports[split] = run_eval(EvalConfig(run=str(run), models=models, split=split, limit=users, ks=[1, 5, 10, 20],
                                             seed=seed, translation=translation if split == "test" and has_titles
                                             else 0, resume=False))
    stage("eval", t0)
    out: dict[str, Any] = {"dataset": dataset, "minutes_budget": minutes, "recipes": recipes,
                           "users": {s: r.n_examples for s, r in reports.items()}, "sid_source": sid_cfg.source,
                           "sid_identity": sid_cfg.identity,
                           "seqrec_format": corpus_cfg.seqrec_format}
    for split, rep in reports.items():
        out[split] = {r["ranker"]: {"NDCG@10": round(r["metrics"]["NDCG@10"], 4), "HR@10": round(r["metrics"]["HR@10"], 4)}
                      for r in rep.results}
    paired = [p for p in reports["test"].paired if p["reference"] == "sasrec" and p.get("group", "all") == "all"]
    out["paired_test_vs_sasrec"] = {p["ranker"]: {k: round(p[k], 4) if isinstance(p[k], float) else p[k]
                                                  for k in p if k not in ("ranker", "reference")} for p in paired}
    out["translation"] = {name: {k: round(v, 3) for k, v in tr.items() if k.endswith("_acc")}
                          for name, tr in reports["test"].translation.items()}
    v = out["valid"]
    out["grpo_above_sft_valid"] = v["llm-grpo"]["NDCG@10"] > v["llm-sft"]["NDCG@10"]
    if "tune" in out:
        out["grpo_above_sft_tune"] = out["tune"]["llm-grpo"]["NDCG@10"] > out["tune"]["llm-sft"]["NDCG@10"]
    out["llm_vs_sasrec_test"] = round(out["test"]["llm-grpo"]["NDCG@10"] / max(out["test"]["sasrec"]["NDCG@10"], 1e-9)
                                      - 1, 4)
    out["training_minutes"] = round(sft["train_seconds"] / 60 + grpo.get("train_seconds", 0) / 60, 2)
    out["sft"] = {k: sft.get(k) for k in ("global_step", "kept_step", "train_seconds", "loss_first", "loss_last")}
    out["sft"]["validation_ndcg10"] = {v["step"]: round(v["NDCG@10"], 4) for v in sft.get("validation", [])}
    out["grpo"] = {k: grpo.get(k) for k in ("global_step", "train_seconds", "kept_step")}
    out["minutes"] = t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, help="any dataset `llmrec data prepare` accepts (name or path)")
    ap.add_argument("--minutes", type=float, required=True, help="training budget: SFT + GRPO wall time")
    ap.add_argument("--run", default=None, help="run folder (default runs/bench-DATASET)")
    ap.add_argument("--recipes", default="tiny-cpu", help="recipe folder under recipes/")
    ap.add_argument("--users", type=int, default=None, help="evaluate only the first N users per split")
    ap.add_argument("--grpo-share", type=float, default=GRPO_SHARE, help="share of the budget for GRPO")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    run = Path(a.run or f"runs/bench-{Path(a.dataset).name}")
    out = bench(a.dataset, a.minutes, run, a.recipes, a.users, a.seed, a.grpo_share)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
