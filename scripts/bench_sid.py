"""Benchmark SID construction: embed + quantize (any method) + collision handling.

    python scripts/bench_sid.py --dataset amazon18_scientific [--no-cache] [--quality]
    python scripts/bench_sid.py --synthetic 1000000        # 1M x 384 clustered vectors, quantize only
    python scripts/bench_sid.py --synthetic 1000000 --method rqvae [--config recipes/sid/rqvae.yaml] [--set rqvae.steps=500]

The last line printed is one JSON object (dataset, items, embed_s, quantize_s, distinct_sids,
collisions_before, collisions_after, utilization, ..., wall_s: the whole run, and peak_rss_gb: the
process's peak resident memory). `--quality` adds a check of
the embeddings themselves: for consecutive item pairs (a, b) in the training part of each user's
sequence (last two items held out), the rank of b among all items by cosine similarity to a
(next_item_r10, next_item_r50, next_item_mrr). It is how the default encoder token limit was chosen.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
T_START = time.perf_counter()


def wall_s() -> float:
    """Seconds since the script started (imports, data, quantize, collisions: the whole run)."""
    return round(time.perf_counter() - T_START, 2)


def peak_rss_gb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return round(kb / (1 << 20), 3)


def clustered(n: int, dim: int, centers: int = 2048, seed: int = 0, chunk: int = 1 << 16) -> np.ndarray:
    """n x dim float32 points around random centres (built in chunks, no float64 copies)."""
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((centers, dim), dtype=np.float32)
    X = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        X[s:s + m] = C[rng.integers(0, centers, m)]
        X[s:s + m] += 0.5 * rng.standard_normal((m, dim), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def _torch_threads() -> int | None:
    if "torch" not in sys.modules:
        return None
    return sys.modules["torch"].get_num_threads()


def next_item_retrieval(emb: np.ndarray, ids: list[str], seqs: dict[str, list[str]], chunk: int = 4096) -> dict:
    """R@10, R@50 and MRR of item b given item a, over consecutive training pairs (a != b)."""
    row = {i: k for k, i in enumerate(ids)}
    pairs = [(row[a], row[b]) for s in seqs.values() for a, b in itertools.pairwise(s[:-2])
             if a != b and a in row and b in row]
    if not pairs:
        return {}
    P = np.asarray(pairs)
    ranks = []
    for s in range(0, len(P), chunk):
        a, b = P[s:s + chunk, 0], P[s:s + chunk, 1]
        S = emb[a] @ emb.T
        S[np.arange(len(a)), a] = -np.inf
        ranks.append((S > S[np.arange(len(a)), b][:, None]).sum(1))
    r = np.concatenate(ranks)
    return {"next_item_pairs": len(r), "next_item_r10": round(float((r < 10).mean()), 4),
            "next_item_r50": round(float((r < 50).mean()), 4), "next_item_mrr": round(float((1 / (r + 1)).mean()), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="amazon18_scientific")
    ap.add_argument("--synthetic", type=int, default=0, help="quantize N x --dim random clustered vectors")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--method", default=None, help="SID method (default: the config's, rkmeans)")
    ap.add_argument("--config", default=None, help="a recipes/sid/*.yaml for the method's settings")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE config override")
    ap.add_argument("--levels", type=int, default=None)
    ap.add_argument("--codebook", type=int, default=None)
    ap.add_argument("--no-balanced", dest="balanced", action="store_false")
    ap.add_argument("--collision", default="reassign", choices=["reassign", "extra_token"])
    ap.add_argument("--max-seq-length", type=int, default=None, help="encoder token limit (SidConfig default)")
    ap.add_argument("--quality", action="store_true", help="also score next-item retrieval by embedding")
    ap.add_argument("--no-cache", dest="cache", action="store_false", help="re-embed (honest embed timing)")
    ap.add_argument("--out", default=None, help="also write the sid folder here")
    args = ap.parse_args(argv)

    from llmrec.config import load_config
    from llmrec.sid.collisions import resolve_collisions
    from llmrec.sid.config import SidConfig
    from llmrec.sid.rkmeans import utilization

    values = {"collision": args.collision, "use_cache": args.cache}
    for key, val in (("method", args.method), ("levels", args.levels), ("codebook_size", args.codebook),
                     ("max_seq_length", args.max_seq_length)):
        if val is not None:
            values[key] = val
    if not args.balanced:
        values["rkmeans.balanced"] = False
    cfg = load_config(SidConfig, args.config, args.overrides, values)
    q = cfg.make_quantizer()  # settings checked before any data is made

    if args.synthetic:
        t0 = time.perf_counter()
        X = clustered(args.synthetic, args.dim)
        gen_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        codes = q.fit_encode(X)
        quant_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        cost = (lambda rows: q.last_level_costs(X, rows, codes)) if hasattr(q, "last_level_costs") else None
        _, rep = resolve_collisions(codes, q.level_sizes, cfg.collision if q.supports_reassign else "extra_token",
                                    cost)
        coll_s = time.perf_counter() - t2
        caps = [int(np.bincount(codes[:, i][codes[:, i] >= 0]).max()) for i in range(codes.shape[1])]
        out = {"dataset": f"synthetic_{args.synthetic}x{args.dim}", "method": cfg.method, "items": args.synthetic,
               "embed_s": 0.0, "generate_s": round(gen_s, 2), "quantize_s": round(quant_s, 2),
               "collisions_s": round(coll_s, 2), "total_s": round(quant_s + coll_s, 2),
               "distinct_sids": int(args.synthetic - rep.collisions_after),
               "collisions_before": rep.collisions_before, "collisions_after": rep.collisions_after,
               "collision_method": rep.used, "items_touched": rep.items_touched,
               "utilization": utilization(np.maximum(codes, 0), q.level_sizes), "max_per_code": caps,
               "reconstruction_mse": q.reconstruction_mse,
               "loss_first": q.history[0] if q.history else None, "loss_last": q.history[-1] if q.history else None,
               "quantizer": q.config, "cpus": os.cpu_count(), "torch_threads": _torch_threads(),
               "wall_s": wall_s(), "peak_rss_gb": peak_rss_gb()}
        print(json.dumps(out))
        return 0

    from llmrec.data.loaders import load_dataset
    from llmrec.sid.build import build_sids

    ds = load_dataset(args.dataset)
    out_dir = args.out or (tempfile.mkdtemp(prefix="bench_sid_") if args.quality else None)
    t0 = time.perf_counter()
    sm = build_sids(ds, cfg, out_dir=out_dir)
    total = time.perf_counter() - t0
    st = sm.build_stats
    out = {"dataset": args.dataset, "method": cfg.method, "items": len(sm), "embed_s": st["timings"]["embed_s"],
           "embed_cache_enabled": args.cache, "quantize_s": st["timings"]["quantize_s"],
           "collisions_s": st["timings"]["collisions_s"], "total_s": round(total, 2),
           "distinct_sids": st["distinct_sids"], "collisions_before": st["collisions_before"],
           "collisions_after": st["collisions_after"], "collision_method": st["collision_method"],
           "items_touched": st["items_touched"], "utilization": st["utilization_quantizer"],
           "max_seq_length": cfg.max_seq_length, "common_category_share": cfg.common_category_share,
           "reconstruction_mse": st["reconstruction_mse"], "balanced": args.balanced, "cpus": os.cpu_count(),
           "load_avg_1m": round(os.getloadavg()[0], 2), "wall_s": wall_s(), "peak_rss_gb": peak_rss_gb()}
    if args.quality:
        emb = np.load(os.path.join(out_dir, "embeddings.npy"))  # rows in SidMap order
        seqs = {u: [x.item for x in s] for u, s in ds.sequences().items()}
        out.update(next_item_retrieval(emb, sm.item_ids, seqs))
        if not args.out:
            shutil.rmtree(out_dir, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
