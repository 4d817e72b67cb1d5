"""Which SID construction works best here? The tutorial's table (GRID: same generative model, same data).

    python scripts/bench_sid_methods.py --dataset amazon18_scientific [--minutes 3] [--methods rkmeans,rvq]
                                        [--eval-users 3000]   # a seeded sample of test users (default: all)

For every method (recipes/sid/METHOD.yaml): build the SIDs from the training split, then train THE
SAME generative recommender from scratch on SID sequences only (TIGER style: next item's SID from
the history's SIDs; the `tiny` decoder, randomly initialised SID rows, a seqrec-only corpus
through llmrec.corpus and llmrec.train.sft) for the same wall-clock budget, and evaluate it with
llmrec.eval's evaluator on the test split (full ranking, item-level hits, constrained beam search).
Prints the table (Recall@5/10, NDCG@5/10, head/tail NDCG@10, collisions before resolution,
utilization, build time), writes OUT/sid_methods.png and OUT/sid_methods.md, and prints one JSON
object last (`methods`: one entry per method, `paired_vs`: paired bootstrap of every method against
the first, `grid_order`: R-VQ - RK-Means and RQ-VAE - R-VQ with intervals). Run it under the shared
CPU lock.

Nothing stale is reused: each method folder records what its SIDs, corpus, model and evaluation
were made with (minutes, seed, batch size, beams, evaluated users, overrides, the git tree hashes of
llmrec/, recipes/ and this script, and a hash of uncommitted changes there); when any of it differs,
the method's sid/, corpus/, sft/ and eval/ are removed and made again. Every module the loop uses is
imported before the first method, so one invocation runs one code state (recorded as `commit`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["rkmeans", "rvq", "rqvae", "hybrid", "pq", "opq", "hierarchical", "words"]
COLUMNS = ["Recall@5", "Recall@10", "NDCG@5", "NDCG@10", "head NDCG@10", "tail NDCG@10"]


def code_state() -> dict:
    """The git commit, the code it holds (tree hashes of llmrec/, recipes/ and this script) and a hash of
    uncommitted changes there; `code` and `dirty` decide staleness (commits elsewhere do not)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""
    paths = ("llmrec", "recipes", "scripts/bench_sid_methods.py")
    trees = git("rev-parse", *[f"HEAD:{p}" for p in paths])
    diff = git("diff", "HEAD", "--", *paths)
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or None,
            "code": hashlib.sha256(trees.encode()).hexdigest()[:12] if trees else None,
            "dirty": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None}


def fresh(run: Path, key: dict) -> None:
    """Remove the method's artifacts unless they were made with exactly `key` (see the docstring)."""
    path = run / "bench_key.json"
    if path.exists() and json.loads(path.read_text()) == key:
        return
    for sub in ("sid", "corpus", "sft", "eval"):
        shutil.rmtree(run / sub, ignore_errors=True)
    path.write_text(json.dumps(key, indent=1), encoding="utf-8")


def sample_users(test: list, n: int | None, seed: int) -> list:
    """All test examples, or a seeded sample of n of them (in split order)."""
    if not n or n >= len(test):
        return list(test)
    keep = sorted(random.Random(seed).sample(range(len(test)), n))
    return [test[i] for i in keep]


def build(method: str, prepared, run: Path, overrides: list[str]):
    from llmrec.config import load_config
    from llmrec.pipeline import ensure_sids
    from llmrec.sid.config import SidConfig

    recipe = ROOT / "recipes" / "sid" / f"{method}.yaml"
    cfg = load_config(SidConfig, recipe, overrides)
    t0 = time.time()
    sm = ensure_sids(prepared, run, cfg)
    stats = json.loads((run / "sid" / "stats.json").read_text())
    return sm, stats, time.time() - t0


def train(run: Path, minutes: float, seed: int, batch_size: int) -> dict:
    from llmrec.train.config import AdapterConfig, ModelConfig, SFTRecipe, TrainConfig
    from llmrec.train.sft import run_sft

    return run_sft(SFTRecipe(
        run=str(run), output=str(run / "sft"), model=ModelConfig(preset="tiny", init="random"),
        adapter=AdapterConfig(mode="full"),
        train=TrainConfig(epochs=100, max_minutes=minutes, schedule_by="time", learning_rate=1e-3,
                          lr_scheduler="cosine", warmup_ratio=0.05, batch_size=batch_size, max_length=512,
                          logging_steps=50, save_steps=10**9, report_to=[], max_eval_samples=64, seed=seed)))


def evaluate_model(run: Path, prepared, examples, num_beams: int) -> dict:
    from llmrec.eval.metrics import transition_labels
    from llmrec.eval.runner import LLMRanker, evaluate

    split = prepared.split
    ranker = LLMRanker(run / "sft" / "model", prepared.items, num_beams=num_beams, name="llm")
    return evaluate(ranker, examples, ks=[1, 5, 10], catalogue=list(prepared.items), return_rankings=True,
                    popularity=split.item_popularity(), out_dir=run / "eval", batch_size=32, split="test",
                    data_fingerprint=prepared.fingerprint,
                    transitions=transition_labels([e.history for e in examples], [e.target for e in examples],
                                                  [[x.item for x in s] for s in split.train.values()]))


def paired_vs(reference: str, rankings: dict[str, list[list[str]]], targets: list[str], seed: int) -> dict:
    """Paired bootstrap of Recall@10 and NDCG@10, every method minus `reference` (same test users)."""
    from llmrec.eval.report import paired_comparisons

    out: dict[str, dict] = {}
    for key in ("HR@10", "NDCG@10"):
        for p in paired_comparisons(rankings, targets, [reference], metric=key, seed=seed):
            out.setdefault(p["ranker"], {})[key] = p
    return out


def grid_order(rankings: dict[str, list[list[str]]], targets: list[str], seed: int) -> dict:
    """Recall@10 differences along GRID's ordering: rvq - rkmeans and rqvae - rvq (paired bootstrap)."""
    if not {"rkmeans", "rvq", "rqvae"} <= set(rankings):
        return {}
    pairs = {"rvq - rkmeans": ("rvq", "rkmeans"), "rqvae - rvq": ("rqvae", "rvq")}
    return {name: paired_vs(ref, {m: rankings[m], ref: rankings[ref]}, targets, seed)[m]["HR@10"]
            for name, (m, ref) in pairs.items()}


def row(method: str, res: dict, stats: dict, build_s: float, train: dict) -> dict:
    m, g = res["metrics"], res["popularity"]["groups"]
    return {"method": method, "Recall@5": m["HR@5"], "Recall@10": m["HR@10"], "NDCG@5": m["NDCG@5"],
            "NDCG@10": m["NDCG@10"], "head NDCG@10": g["head"]["NDCG@10"], "tail NDCG@10": g["tail"]["NDCG@10"],
            "valid_rate": res.get("valid_rate"), "collisions_before": stats["collisions_before"],
            "utilization": [round(u, 3) for u in stats["utilization_quantizer"]],
            "levels": len(stats["levels"]), "variable_length": stats.get("variable_length"),
            "tokens": int(sum(stats["levels"])), "reconstruction_mse": stats.get("reconstruction_mse"),
            "build_s": round(build_s, 1), "sid_build_s": stats["timings"]["build_s"],
            "embed_s": stats["timings"]["embed_s"], "quantize_s": stats["timings"]["quantize_s"],
            "train_steps": train.get("global_step"), "train_s": train.get("train_seconds"),
            "eval_s": res.get("seconds", {}).get("ranking_this_run"), "n_test": res["n_examples"]}


def table(rows: list[dict]) -> str:
    head = "| method | " + " | ".join(COLUMNS) + " | collisions | utilization | build s | steps |"
    lines = [head, "|---|" + "---:|" * (len(COLUMNS) + 4)]
    for r in rows:
        util = "/".join(f"{u:.0%}" for u in r["utilization"][:4]) + ("/..." if len(r["utilization"]) > 4 else "")
        lines.append(f"| {r['method']} | " + " | ".join(f"{r[c]:.4f}" for c in COLUMNS)
                     + f" | {r['collisions_before']} | {util} | {r['sid_build_s']:.1f} | {r['train_steps']} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows) + 2), 3.6))
    w = 0.8 / len(COLUMNS)
    x = np.arange(len(rows))
    for j, c in enumerate(COLUMNS):
        ax.bar(x + j * w, [r[c] for r in rows], w, label=c)
    ax.set_xticks(x + 0.4 - w / 2, [r["method"] for r in rows])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="amazon18_scientific")
    ap.add_argument("--minutes", type=float, default=3.0, help="SFT wall-clock budget per method")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma list of recipes/sid/*.yaml names")
    ap.add_argument("--eval-users", type=int, default=None,
                    help="evaluate on a seeded sample of N test users, the same for every method (default: all)")
    ap.add_argument("--num-beams", type=int, default=10, help="beams of the constrained search (>= 10)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--run", default=None, help="work folder (default runs/sid_methods_<dataset>)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="SID config override, all methods")
    args = ap.parse_args(argv)

    state = code_state()
    # one code state for the whole loop: everything it runs is imported now, before the first method
    import llmrec.eval.metrics
    import llmrec.eval.runner
    import llmrec.sid.build
    import llmrec.sid.quantizers
    import llmrec.train.config
    import llmrec.train.sft  # noqa: F401
    from llmrec.corpus.config import CorpusConfig
    from llmrec.pipeline import ensure_corpus, ensure_data

    root = Path(args.run or f"runs/sid_methods_{args.dataset}")
    prepared = ensure_data(args.dataset, root / "shared")
    examples = sample_users(prepared.split.test, args.eval_users, args.seed)
    corpus_cfg = CorpusConfig(tasks=["seqrec"], max_history=20, seed=args.seed)
    key = {"dataset": args.dataset, "minutes": args.minutes, "seed": args.seed, "batch_size": args.batch_size,
           "num_beams": args.num_beams, "eval_users": len(examples), "eval_sample_seed": args.seed,
           "overrides": args.overrides, "code": state["code"], "dirty": state["dirty"]}
    print(f"code state {state}; {len(examples)} of {len(prepared.split.test)} test users", flush=True)
    rows, rankings, failed = [], {}, {}
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        run = root / method
        run.mkdir(parents=True, exist_ok=True)
        if not (run / "data").exists():
            (run / "data").symlink_to((root / "shared" / "data").resolve(), target_is_directory=True)
        fresh(run, {**key, "method": method})
        t0 = time.time()
        try:
            sm, stats, build_s = build(method, prepared, run, args.overrides)
            ensure_corpus(prepared, sm, run, corpus_cfg)
            summary = train(run, args.minutes, args.seed, args.batch_size)
            res, rankings[method] = evaluate_model(run, prepared, examples, args.num_beams)
        except Exception as e:  # noqa: BLE001 - one broken method must not lose the others' rows
            traceback.print_exc()
            failed[method] = f"{type(e).__name__}: {e}"
            print(f"[{method}] FAILED: {failed[method]}", flush=True)
            continue
        rows.append(row(method, res, stats, build_s, summary))
        (run / "bench_row.json").write_text(json.dumps(rows[-1], indent=1), encoding="utf-8")
        print(f"[{method}] NDCG@10 {rows[-1]['NDCG@10']:.4f} Recall@10 {rows[-1]['Recall@10']:.4f} "
              f"({time.time() - t0:.0f}s)", flush=True)
    if not rows:
        print(json.dumps({"dataset": args.dataset, "methods": [], "failed": failed}))
        return 1
    md = table(rows)
    if failed:
        md += "\n\nFailed: " + "; ".join(f"{m}: {err}" for m, err in failed.items())
    reference = rows[0]["method"]
    paired = paired_vs(reference, rankings, [e.target for e in examples], args.seed) if len(rows) > 1 else {}
    if paired:
        md += (f"\n\nPaired bootstrap against {reference} (same test users; difference, 95% interval):\n\n"
               "| method | Recall@10 diff | 95% CI | NDCG@10 diff | 95% CI |\n|---|---:|---|---:|---|\n")
        md += "\n".join(f"| {m} | {p['HR@10']['diff']:+.4f} | [{p['HR@10']['ci95'][0]:+.4f}, {p['HR@10']['ci95'][1]:+.4f}]"
                        f" | {p['NDCG@10']['diff']:+.4f} | [{p['NDCG@10']['ci95'][0]:+.4f}, "
                        f"{p['NDCG@10']['ci95'][1]:+.4f}] |" for m, p in paired.items())
    grid = grid_order(rankings, [e.target for e in examples], args.seed)
    if grid:
        md += "\n\nGRID's ordering (RK-Means >= R-VQ >= RQ-VAE on Recall@10), paired differences:\n\n" + "\n".join(
            f"- {name}: {p['diff']:+.4f} [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}]" for name, p in grid.items())
    sample = "all" if len(examples) == len(prepared.split.test) else f"seeded sample (seed {args.seed}) of"
    title = (f"{args.dataset}: tiny decoder, {args.minutes:g} min SFT per method on SID sequences, "
             f"test: {sample} {len(examples)} users, code {state['commit']}{'+dirty' if state['dirty'] else ''}")
    (root / "sid_methods.md").write_text(f"# {title}\n\n{md}\n", encoding="utf-8")
    plot(rows, root / "sid_methods.png", title)
    print(md)
    order = {r["method"]: r["Recall@10"] for r in rows}
    holds = None
    if {"rkmeans", "rvq", "rqvae"} <= set(order):
        holds = order["rkmeans"] >= order["rvq"] >= order["rqvae"]
    print(json.dumps({"dataset": args.dataset, "minutes": args.minutes, "n_test": len(examples),
                      "n_test_all": len(prepared.split.test), **state, "grid_order_holds": holds,
                      "grid_order": grid, "png": str(root / "sid_methods.png"), "methods": rows,
                      "paired_vs": {"reference": reference, **paired}, "failed": failed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
