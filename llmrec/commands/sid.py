"""`llmrec sid build|stats`: build Semantic IDs for a run (RUN/data -> RUN/sid) and inspect SID maps.

`llmrec sid build --run runs/NAME` reads runs/NAME/data (from `llmrec data prepare`) and writes
runs/NAME/sid/ (sid_map.json, codebooks.npz, embeddings.npy, stats.json, utilization.png) as one
atomic folder. `--dataset NAME` loads a dataset directly instead (collaborative vectors then see
all interactions, not just the training split).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmrec.io import LlmrecError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sid", help="build Semantic IDs (embed + residual k-means) and show SID stats",
                              description=__doc__)
    sub = p.add_subparsers(dest="sid_command", metavar="ACTION")

    b = sub.add_parser("build", help="build RUN/sid from RUN/data (or from --dataset)")
    b.add_argument("--run", required=True, help="run directory; reads RUN/data, writes RUN/sid")
    b.add_argument("--dataset", default=None, help="load this dataset name/path instead of RUN/data")
    b.add_argument("--source", default="text", choices=["text", "npy", "collaborative", "category", "random"],
                   help="item vectors: text embeddings (default), a .npy file, co-occurrence SVD, "
                        "category features or random")
    b.add_argument("--vectors", default=None, help="--source npy: .npy file with one row per item")
    b.add_argument("--vectors-ids", default=None, help="--source npy: item ids of the rows (.json list or .txt)")
    b.add_argument("--encoder", default=None, help="sentence-transformers path or id (default all-MiniLM-L6-v2)")
    b.add_argument("--fields", default=None, help="comma list of item fields for the text "
                                                  "(default title,brand,categories,description)")
    b.add_argument("--max-seq-length", type=int, default=None, help="encoder token limit (default 32: title, brand and categories come first)")
    b.add_argument("--max-chars", type=int, default=None, help="cut item text to this many characters (1000)")
    b.add_argument("--quantizer", default="rkmeans", choices=["rkmeans", "random"])
    b.add_argument("--levels", type=int, default=3)
    b.add_argument("--codebook", default="256", help="codes per level: one int or a comma list (256,256,256)")
    b.add_argument("--balanced", action=argparse.BooleanOptionalAction, default=True,
                   help="cap each code at ceil(N/K) items (default on)")
    b.add_argument("--collision", default="reassign", choices=["reassign", "extra_token"],
                   help="make SIDs distinct by moving last-level codes (default) or adding a level")
    b.add_argument("--seed", type=int, default=42)
    b.add_argument("--no-cache", action="store_true", help="do not read/write the embedding cache")
    b.add_argument("--json", action="store_true", help="print the stats as JSON only")
    b.set_defaults(func=run_build)

    s = sub.add_parser("stats", help="stats of a sid_map.json, an index.json or RUN/sid")
    s.add_argument("path", help="sid_map.json, LC-Rec/MiniOneRec *.index.json, or a folder holding one")
    s.add_argument("--json", action="store_true", help="print JSON only")
    s.set_defaults(func=run_stats)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _codebook(text: str, levels: int) -> int | list[int]:
    try:
        sizes = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise LlmrecError(f"--codebook {text!r}: expected an int or a comma list of ints") from None
    if len(sizes) == 1:
        return sizes[0]
    if len(sizes) != levels:
        raise LlmrecError(f"--codebook lists {len(sizes)} sizes but --levels is {levels}")
    return sizes


def run_build(args: argparse.Namespace) -> int:
    from llmrec.sid.build import SidConfig, build_sids

    run = Path(args.run)
    if args.dataset:
        from llmrec.data.loaders import load_dataset

        items = load_dataset(args.dataset)
    else:
        from llmrec.data.store import load_prepared

        items = load_prepared(run / "data")
    kw = {"source": args.source, "quantizer": args.quantizer, "levels": args.levels,
          "codebook_size": _codebook(args.codebook, args.levels), "balanced": args.balanced,
          "collision": args.collision, "seed": args.seed, "use_cache": not args.no_cache}
    if args.encoder:
        kw["encoder"] = args.encoder
    if args.fields:
        kw["fields"] = [f.strip() for f in args.fields.split(",") if f.strip()]
    if args.max_seq_length:
        kw["max_seq_length"] = args.max_seq_length
    if args.max_chars:
        kw["max_chars"] = args.max_chars
    if args.vectors:
        kw["vectors_path"] = args.vectors
        kw["vectors_ids"] = args.vectors_ids
    sm = build_sids(items, SidConfig(**kw), out_dir=run / "sid")
    st = sm.build_stats
    if args.json:
        print(json.dumps(st, default=str))
    else:
        t = st["timings"]
        print(f"wrote {run / 'sid'}: {st['items']} items, {st['distinct_sids']} distinct SIDs, levels {st['levels']}")
        print(f"collisions: {st['collisions_before']} before -> {st['collisions_after']} after "
              f"({st['collision_method']}, {st['items_touched']} items touched)")
        print("utilization per level: " + ", ".join(f"{u:.1%}" for u in st["utilization_quantizer"]))
        print(f"time: vectors {t['embed_s']:.1f}s, quantize {t['quantize_s']:.1f}s, "
              f"collisions {t['collisions_s']:.1f}s")
    return 0


def load_any_map(path: str | Path):
    """A SidMap from sid_map.json, an index.json, or a folder holding sid_map.json / *.index.json."""
    from llmrec.io import read_json
    from llmrec.sid.sidmap import SidMap

    path = Path(path)
    if path.is_dir():
        cands = [path / "sid_map.json", path / "sid" / "sid_map.json", *sorted(path.glob("*.index.json"))]
        found = [c for c in cands if c.exists()]
        if not found:
            raise LlmrecError(f"{path}: no sid_map.json or *.index.json inside; pass the file itself")
        path = found[0]
    obj = read_json(path, "SID map")
    if isinstance(obj, dict) and "items" in obj and "format" in obj:
        return SidMap.from_json(obj, source=str(path))
    return SidMap.from_index_json(path)


def run_stats(args: argparse.Namespace) -> int:
    sm = load_any_map(args.path)
    st = sm.stats()
    if args.json:
        print(json.dumps(st))
        return 0
    print(f"{args.path}: {st['items']} items, {st['distinct_sids']} distinct SIDs, {st['collisions']} collisions")
    print(f"levels: {st['levels']}   items with extra level: {st['items_with_extra_level']}")
    print("utilization: " + ", ".join(f"{u:.1%}" for u in st["utilization"]))
    print("entropy bits: " + ", ".join(f"{e:.2f}" for e in st["entropy_bits"]))
    for k, v in st["items_per_prefix"].items():
        print(f"  {k}: {v['distinct']} prefixes, items per prefix max {v['max']}, mean {v['mean']:.2f}")
    print(json.dumps(st))
    return 0
