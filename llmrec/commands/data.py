"""`llmrec data prepare|stats|download`: turn a dataset into runs/NAME/data/ and inspect it.

`--out runs/NAME` writes runs/NAME/data/ (items, interactions, split, manifest.json with the input
files' sha256, loader options, every counted drop and the content fingerprint). A failing prepare
leaves an existing runs/NAME/data/ untouched; preparing other data into a run that already has
sid/, corpus/, models or eval built from its data is refused unless --force.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from llmrec.io import LlmrecError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="prepare datasets (load, filter, split) and show their stats",
                              description=__doc__)
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")

    pr = sub.add_parser("prepare", help="load + filter + split a dataset into RUN/data/")
    pr.add_argument("--dataset", required=True,
                    help="known name (amazon18_scientific, movielens_100k, ...) or a path to a file/folder")
    pr.add_argument("--out", required=True, help="run directory; data goes to OUT/data/")
    pr.add_argument("--format", default=None,
                    help="force the format: lcrec, movielens, taobao, minionerec, amazon2018 (default: detect)")
    pr.add_argument("--split", choices=["auto", "loo", "time", "native"], default="auto",
                    help="auto = the source's own split when it ships one (MiniOneRec), else loo")
    pr.add_argument("--ratios", default="8:1:1", help="train:valid:test ratios for --split time (default 8:1:1)")
    pr.add_argument("--max-history", type=int, default=20, help="items kept in valid/test histories (0 = all)")
    pr.add_argument("--short-users", choices=["drop", "train"], default="drop",
                    help="loo: users with < 3 events are dropped (counted) or kept in train only")
    pr.add_argument("--min-user-interactions", type=int, default=0, help="drop users with fewer events")
    pr.add_argument("--min-item-interactions", type=int, default=0,
                    help="drop items with fewer events (iterated k-core with the user minimum)")
    pr.add_argument("--dedupe-consecutive", action="store_true", help="drop immediate repeats of the same item")
    pr.add_argument("--unknown-items", choices=["error", "drop"], default="error",
                    help="events whose item is not in the catalogue: error (default) or drop and count")
    pr.add_argument("--force", action="store_true",
                    help="replace RUN/data even when the run holds sid/corpus/models/eval built from other data "
                         "(they become stale and are refused until rebuilt)")
    pr.add_argument("--rating-behavior", choices=["none", "levels", "binary"], default="none",
                    help="MovieLens: map ratings to behaviors rating_1..rating_5 (levels) or liked/disliked")
    pr.set_defaults(func=run_prepare)

    st = sub.add_parser("stats", help="print the stats of a prepared run (or of a dataset name/path)")
    st.add_argument("target", help="runs/NAME, runs/NAME/data, or a dataset name/path")
    st.add_argument("--json", action="store_true", help="print JSON only")
    st.set_defaults(func=run_stats)

    dl = sub.add_parser("download", help="download a public dataset into the cache (needs internet)")
    dl.add_argument("name", help="movielens_100k, or amazon2018:<Category> (e.g. amazon2018:Industrial_and_Scientific)")
    dl.add_argument("--base-url", default=None, help="mirror serving the files by name (or $LLMREC_DOWNLOAD_BASE)")
    dl.add_argument("--force", action="store_true", help="download again even if cached")
    dl.set_defaults(func=run_download)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _parse_ratios(text: str) -> list[float]:
    try:
        vals = [float(x) for x in text.replace(",", ":").split(":")]
    except ValueError:
        vals = []
    if len(vals) != 3:
        raise LlmrecError(f"--ratios {text!r}: expected three numbers train:valid:test, e.g. 8:1:1")
    return vals


def run_prepare(args: argparse.Namespace) -> int:
    from llmrec.data.prepare import prepare_and_summarize

    opts = {"min_user_interactions": args.min_user_interactions,
            "min_item_interactions": args.min_item_interactions,
            "dedupe_consecutive": args.dedupe_consecutive, "unknown_items": args.unknown_items}
    if args.rating_behavior != "none":
        opts["rating_behavior"] = args.rating_behavior
    if args.format:
        opts["format"] = args.format
    t0 = time.perf_counter()
    out, s = prepare_and_summarize(args.dataset, args.out, split=args.split,
                                   max_history=args.max_history or None, short_users=args.short_users,
                                   ratios=_parse_ratios(args.ratios), force=args.force, **opts)
    print(f"prepared {s['name']} -> {out} in {time.perf_counter() - t0:.1f}s")
    _print_summary(s)
    if s.get("stale"):
        print("  now stale (rebuild before use): " + "; ".join(s["stale"]))
    return 0


def _print_summary(s: dict) -> None:
    sp = s["split"]
    print(f"  users {s['users']:,}  items {s['items']:,}  interactions {s['interactions']:,}")
    print(f"  behaviors {s['behaviors']}")
    if s.get("seq_len"):
        q = s["seq_len"]
        print(f"  events/user min {q['min']} median {q['median']} mean {q['mean']} max {q['max']}")
    print(f"  split {sp['method']}: train {sp['train_users']:,} users / {sp['train_events']:,} events, "
          f"valid {sp['valid']:,}, test {sp['test']:,}")
    print(f"  dropped {s['dropped'] or 'nothing'}")
    if s.get("fingerprint"):
        print(f"  fingerprint {s['fingerprint']}")


def run_stats(args: argparse.Namespace) -> int:
    from llmrec.data.loaders import dataset_summary, load_dataset
    from llmrec.data.prepare import data_dir_of, summarize
    from llmrec.data.store import MANIFEST

    target = Path(args.target)
    if (data_dir_of(target) / MANIFEST).exists():
        s = summarize(target)
    elif target.exists() and target.is_dir() and (target.name == "data" or not any(target.iterdir())):
        raise LlmrecError(f"{target}: no {MANIFEST}; run `llmrec data prepare --out ...` first.")
    else:
        ds = load_dataset(args.target)
        s = {**dataset_summary(ds), "name": ds.name,
             "split": {"method": "none", "train_users": 0, "train_events": 0, "valid": 0, "test": 0}}
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"{s['name']} ({args.target})")
        _print_summary(s)
    return 0


def run_download(args: argparse.Namespace) -> int:
    from llmrec.data.download import download_amazon2018, download_movielens_100k

    if args.name == "movielens_100k":
        path = download_movielens_100k(base_url=args.base_url, force=args.force)
        print(f"MovieLens-100K ready at {path}; use `llmrec data prepare --dataset {path} --out runs/ml`")
    elif args.name.startswith("amazon2018:"):
        folder = download_amazon2018(args.name.split(":", 1)[1], base_url=args.base_url, force=args.force)
        print(f"Amazon 2018 files ready in {folder}; use `llmrec data prepare --dataset {folder} --out runs/NAME`")
    else:
        raise LlmrecError(f"no download known for {args.name!r}; use movielens_100k or amazon2018:<Category>.")
    return 0
