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

from llmrec.config import add_config_arguments, config_from_args, save_config
from llmrec.data.config import DataConfig
from llmrec.io import LlmrecError

FLAGS = ("dataset", "out", "format", "split", "ratios", "max_history", "tune_users", "seed", "short_users",
         "min_user_interactions", "min_item_interactions", "dedupe_consecutive", "unknown_items", "rating_behavior")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="prepare datasets (load, filter, split) and show their stats",
                              description=__doc__)
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")

    pr = sub.add_parser("prepare", help="load + filter + split a dataset into RUN/data/",
                        description="Load a dataset (any supported format), clean it and split it into RUN/data/.")
    add_config_arguments(pr, DataConfig, FLAGS)
    pr.add_argument("--force", action="store_true",
                    help="replace RUN/data even when the run holds sid/corpus/models/eval built from other data "
                         "(they become stale and are refused until rebuilt)")
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


def run_prepare(args: argparse.Namespace) -> int:
    if args.cfg__ratios:  # the documented train:valid:test form (yaml would read 8:1:1 as one base-60 number)
        args.cfg__ratios = [r.replace(":", ",") for r in args.cfg__ratios]
    cfg = config_from_args(DataConfig, args)  # checked before any file is read
    from llmrec.data.prepare import DATA_CONFIG, prepare_and_summarize

    t0 = time.perf_counter()
    out, s = prepare_and_summarize(cfg.dataset, cfg.out, split=cfg.split, max_history=cfg.max_history or None,
                                   short_users=cfg.short_users, ratios=cfg.ratios, tune_users=cfg.tune_users,
                                   seed=cfg.seed, force=args.force,
                                   **cfg.load_options())
    save_config(cfg, Path(out) / DATA_CONFIG)
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
          + (f"tune {sp['tune']:,}, " if sp.get("tune") else "") + f"valid {sp['valid']:,}, test {sp['test']:,}")
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
