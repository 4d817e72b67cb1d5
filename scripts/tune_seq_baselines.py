"""Tune a sequential baseline (sasrec, sasrec-sid, h2rec) on a run's VALIDATION split only.

Every config of the grid is trained on the training split (early stopping on validation NDCG@10,
as always) and scored on the validation examples overall and per head/torso/tail target group; the
test split is never read. Models are not written to the run's cache.

    flock /tmp/llmrec-heavy.lock .venv/bin/python scripts/tune_seq_baselines.py --run runs/sci18 \
        --model h2rec --grid item_align_weight=0,0.1,0.5 --grid temperature=0.1,0.5 --set hidden=64

Prints one JSON line per config; the last line is the JSON summary (configs sorted by validation
NDCG@10).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import asdict

import torch
import yaml

from llmrec.baselines.registry import baseline_config
from llmrec.baselines.sid_embed import load_run_sids, load_run_text_vectors
from llmrec.baselines.train_loop import SequentialRanker
from llmrec.data.store import load_prepared
from llmrec.eval.metrics import compute_metrics


def _train(name: str, cfg, run: str, prepared):
    seqs = [[x.item for x in s] for s in prepared.split.train.values()]
    items = list(prepared.items)
    valid = prepared.split.valid
    if name == "sasrec":
        from llmrec.baselines.sasrec import train_sasrec

        return train_sasrec(seqs, items, valid, cfg)
    codes, levels, sid_map = load_run_sids(run, items)
    if name == "sasrec-sid":
        from llmrec.baselines.sasrec_sid import train_sasrec_sid

        return train_sasrec_sid(seqs, items, codes, levels, valid, cfg)
    from llmrec.baselines.h2rec import train_h2rec

    vectors = load_run_text_vectors(run, items, sid_map) if cfg.hid_init == "text" else None
    return train_h2rec(seqs, items, codes, levels, valid, cfg, vectors)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--model", required=True, choices=["sasrec", "sasrec-sid", "h2rec"])
    p.add_argument("--grid", action="append", default=[], help="key=v1,v2,... (repeat; the cartesian product)")
    p.add_argument("--set", action="append", default=[], help="key=value fixed for every config")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prepared = load_prepared(f"{args.run}/data")
    valid = prepared.split.valid
    fixed = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    axes = [(k, [yaml.safe_load(x) for x in v.split(",")]) for k, v in (g.split("=", 1) for g in args.grid)]
    rows = []
    for combo in itertools.product(*[vals for _, vals in axes]) if axes else [()]:
        values = {**fixed, **dict(zip([k for k, _ in axes], combo))}
        cfg = baseline_config(args.model, values=values)
        t0 = time.time()
        model, res = _train(args.model, cfg, args.run, prepared)
        ranked = SequentialRanker(model, name=args.model).rank(valid, 10)
        m = compute_metrics(ranked, [e.target for e in valid], ks=[10], catalogue=list(prepared.items),
                            popularity=prepared.split.item_popularity())
        groups = {g: round(v["NDCG@10"], 5) for g, v in m["popularity"]["groups"].items()}
        row = {"model": args.model, "values": values, "valid_ndcg@10": round(m["metrics"]["NDCG@10"], 5),
               "valid_hr@10": round(m["metrics"]["HR@10"], 5), "valid_ndcg@10_by_group": groups,
               "best_epoch": res.best_epoch, "epochs_run": res.epochs_run, "seconds": round(time.time() - t0, 1),
               "config": asdict(cfg)}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)
    rows.sort(key=lambda r: -r["valid_ndcg@10"])
    print(json.dumps({"model": args.model, "split": "valid", "n": len(valid),
                      "ranked": [{k: r[k] for k in ("values", "valid_ndcg@10", "valid_ndcg@10_by_group")}
                                 for r in rows]}))


if __name__ == "__main__":
    main()
