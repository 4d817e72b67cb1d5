"""`llmrec eval`: evaluate baselines (and optionally a fine-tuned LLM) on a prepared run.

Writes runs/NAME/eval/<ranker>/{metrics.json,metrics.png,predictions.jsonl} and the combined
runs/NAME/eval/{metrics.json,comparison.md,metrics.png}. With `--split valid` everything goes under
runs/NAME/eval/valid/ instead. SASRec is trained on first use (early stopping on the valid split)
and cached under runs/NAME/baselines/sasrec/ (retrained when the data fingerprint or config changes).
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path

from llmrec.io import LlmrecError

log = logging.getLogger(__name__)
KNOWN_BASELINES = ("popular", "sasrec")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate baselines and/or a model (HR/NDCG/MRR, head/tail)",
                              description=__doc__)
    p.add_argument("--run", required=True, help="run directory (reads RUN/data, writes RUN/eval)")
    p.add_argument("--model", action="append", default=[],
                   help="fine-tuned model folder (e.g. runs/NAME/sft/model); repeat to compare several")
    p.add_argument("--split", choices=["test", "valid"], default="test")
    p.add_argument("--baselines", default="popular,sasrec",
                   help=f"comma list from {','.join(KNOWN_BASELINES)}, or 'none' (default: popular,sasrec)")
    p.add_argument("--k", default="1,3,5,10,20", help="comma list of cutoffs (default 1,3,5,10,20)")
    p.add_argument("--num-beams", type=int, default=20, help="beams for the LLM ranker (>= max K)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N examples")
    p.add_argument("--batch-size", type=int, default=None, help="examples per ranking chunk")
    p.add_argument("--exclude-history", action="store_true", help="never recommend items already in the history")
    p.add_argument("--head-frac", type=float, default=0.2, help="top fraction of items that are 'head'")
    p.add_argument("--tail-frac", type=float, default=0.5, help="bottom fraction of items that are 'tail'")
    p.add_argument("--no-resume", action="store_true", help="ignore earlier predictions and start over")
    p.add_argument("--retrain-sasrec", action="store_true", help="retrain SASRec even if a cached one fits")
    p.add_argument("--sasrec-epochs", type=int, default=None, help="max SASRec epochs (default 50)")
    p.add_argument("--translation", type=int, default=0, metavar="N",
                   help="also score item2sid / sid2item greedy accuracy of each --model on N training items")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (on a busy shared machine 1 can be several times faster)")
    p.set_defaults(func=run_eval)


def llm_ranker_name(model_dir: str | Path) -> str:
    """'llm-sft' for runs/X/sft/model (the stage folder names the model), else 'llm-<folder>'."""
    p = Path(model_dir)
    return f"llm-{p.parent.name if p.name == 'model' else p.name}"


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise LlmrecError(f"--k {text!r}: expected a comma list of positive integers, e.g. 1,5,10") from None
    if not ks or ks[0] < 1:
        raise LlmrecError(f"--k {text!r}: expected a comma list of positive integers, e.g. 1,5,10")
    return ks


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def run_translation(model_dirs: list[str], prepared, n: int, seed: int, out_root: Path,
                    corpus_dir: Path | None = None) -> dict:
    """item2sid / sid2item greedy accuracy per model on n training items (written beside the metrics).

    Titles are clipped as the run's corpus clipped them (its manifest), so the check asks for
    exactly the text the model was taught."""
    from llmrec.eval.translation import evaluate_translation, sample_items
    from llmrec.io import write_json
    from llmrec.llm import load_model

    max_title_chars = None
    if corpus_dir is not None and (corpus_dir / "manifest.json").exists():
        from llmrec.corpus import load_corpus_manifest

        max_title_chars = load_corpus_manifest(corpus_dir).get("config", {}).get("max_title_chars")
    out = {}
    for model_dir in model_dirs:
        model, tokenizer, sid_map = load_model(model_dir)
        ids = sample_items(prepared.items, sid_map, n, seed=seed)
        res = evaluate_translation(model, tokenizer, sid_map, prepared.items, ids, max_title_chars=max_title_chars)
        name = llm_ranker_name(model_dir)
        write_json(out_root / _safe_name(name) / "translation.json", res)
        out[name] = {k: res[k] for k in ("n", "item2sid_acc", "sid2item_acc", "sid2item_constrained_acc")}
        print(f"{name}: item2sid {res['item2sid_acc']:.3f}  sid2item {res['sid2item_acc']:.3f} free text, "
              f"{res['sid2item_constrained_acc']:.3f} over catalogue titles  (n={res['n']})")
    return out


def run_eval(args: argparse.Namespace) -> int:
    from llmrec.data.store import load_prepared
    from llmrec.baselines.popular import MostPopular
    from llmrec.eval.metrics import transition_labels
    from llmrec.eval.plots import plot_metrics
    from llmrec.eval.runner import (
        LLMRanker,
        breakdown_table,
        compare_table,
        evaluate,
        paired_comparisons,
        significance_table,
    )
    from llmrec.baselines.sasrec import cached_sasrec
    from llmrec.io import write_json

    run = Path(args.run)
    ks = parse_ks(args.k)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    names = [] if args.baselines.strip().lower() in ("", "none") else \
        [b.strip().lower() for b in args.baselines.split(",") if b.strip()]
    unknown = [b for b in names if b not in KNOWN_BASELINES]
    if unknown:
        raise LlmrecError(f"--baselines: unknown {unknown}; choose from {list(KNOWN_BASELINES)} or 'none'.")
    if not names and not args.model:
        raise LlmrecError("nothing to evaluate: give --model and/or --baselines.")
    prepared = load_prepared(run / "data")
    split = prepared.split
    examples = split.test if args.split == "test" else split.valid
    if args.limit is not None:
        examples = examples[: max(0, args.limit)]
    if not examples:
        raise LlmrecError(f"{run / 'data'}: the {args.split} split has no examples.")
    catalogue = list(prepared.items)
    popularity = split.item_popularity()
    out_root = run / "eval" if args.split == "test" else run / "eval" / "valid"
    common = {"ks": ks, "catalogue": catalogue, "popularity": popularity, "split": args.split,
                  "data_fingerprint": prepared.fingerprint, "resume": not args.no_resume,
                  "head_frac": args.head_frac, "tail_frac": args.tail_frac,
                  "transitions": transition_labels([e.history for e in examples], [e.target for e in examples],
                                                   [[x.item for x in seq] for seq in split.train.values()])}

    rankers = []
    for b in names:
        if b == "popular":
            rankers.append((MostPopular(popularity, catalogue, exclude_history=args.exclude_history), {}, 4096))
        elif b == "sasrec":
            from llmrec.baselines.sasrec import SASRecRanker

            model, info = cached_sasrec(run, prepared, epochs=args.sasrec_epochs, seed=args.seed,
                                     retrain=args.retrain_sasrec)
            rankers.append((SASRecRanker(model, exclude_history=args.exclude_history),
                            {"train": {k: v for k, v in info.items() if k != "history"}}, 512))
    for model_dir in args.model:
        rankers.append((LLMRanker(model_dir, prepared.items, num_beams=args.num_beams, name=llm_ranker_name(model_dir),
                                  exclude_history=args.exclude_history), {}, 16))

    results, rankings = [], {}
    for ranker, extra, default_bs in rankers:
        t0 = time.time()
        res, rankings[ranker.name] = evaluate(ranker, examples, out_dir=out_root / _safe_name(ranker.name),
                                              batch_size=args.batch_size or default_bs, extra=extra,
                                              return_rankings=True, **common)
        results.append(res)
        m = res["metrics"]
        print(f"{ranker.name}: " + "  ".join(f"{key}={m[key]:.4f}" for key in
                                             [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks])
              + f"  ({time.time() - t0:.1f}s)")
    translation = {}
    if getattr(args, "translation", 0):
        translation = run_translation(args.model, prepared, args.translation, args.seed, out_root,
                                      corpus_dir=run / "corpus")
    table = compare_table(results, ks)
    metric = f"NDCG@{10 if 10 in ks else max(ks)}"
    paired = paired_comparisons(rankings, [e.target for e in examples], [r.name for r, _, _ in rankers[:len(names)]],
                                metric=metric, seed=args.seed)
    if paired:
        table += "\n" + significance_table(paired)
    table += "\n" + breakdown_table(results, metric)
    write_json(out_root / "metrics.json", {"format": "llmrec.eval-combined/1", "split": args.split,
                                           "data_fingerprint": prepared.fingerprint, "rankers": results,
                                           "paired": paired, "translation": translation})
    from llmrec.io import atomic_path

    with atomic_path(out_root / "comparison.md") as tmp:
        tmp.write_text(f"# {prepared.manifest.get('name', run.name)} — {args.split} "
                       f"(n={len(examples)}, full ranking over {len(catalogue)} items)\n\n{table}",
                       encoding="utf-8")
    plot_metrics(results, out_root / "metrics.png", title=f"{run.name} ({args.split}, n={len(examples)})")
    print()
    print(table)
    print(f"wrote {out_root / 'metrics.json'}, {out_root / 'comparison.md'}, {out_root / 'metrics.png'}")
    return 0
