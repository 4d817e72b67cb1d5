"""`llmrec sid build|encode|stats|methods`: build Semantic IDs for a run (RUN/data -> RUN/sid), encode
items added later, inspect SID maps, list the methods.

`llmrec sid build --run runs/NAME [--config recipes/sid/rqvae.yaml] [--method NAME] [--set rqvae.steps=500]`
reads runs/NAME/data (from `llmrec data prepare`) and writes runs/NAME/sid/ (sid_map.json,
embeddings.npy, codebooks.npz, quantizer/, config.yaml, stats.json, utilization.png, loss.png) as
one atomic folder. `--dataset NAME` loads a dataset directly instead (collaborative vectors then
see all interactions, not just the training split).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmrec.config import add_config_arguments, config_from_args
from llmrec.io import LlmrecError, prepare_output

BUILD_FLAGS = ("method", "source", "levels", ("codebook_size", "--codebook"), "collision", "identity", "seed",
               "encoder", "fields", "max_seq_length", "max_chars", ("vectors_path", "--vectors"),
               "vectors_ids", ("rkmeans.balanced", "--balanced"))


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.sid.config import SidConfig

    p = subparsers.add_parser("sid", help="build Semantic IDs (embed + quantize) and show SID stats",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="sid_command", metavar="ACTION")

    b = sub.add_parser("build", help="build RUN/sid from RUN/data (or from --dataset)")
    b.add_argument("--run", required=True, help="run directory; reads RUN/data, writes RUN/sid")
    b.add_argument("--dataset", default=None, help="load this dataset name/path instead of RUN/data")
    add_config_arguments(b, SidConfig, BUILD_FLAGS, example="recipes/sid/rqvae.yaml")
    b.add_argument("--no-cache", action="store_true", help="do not read/write the embedding cache")
    b.add_argument("--json", action="store_true", help="print the stats as JSON only")
    b.set_defaults(func=run_build)

    e = sub.add_parser("encode", help="give SIDs to items added after the build (the saved quantizer encodes them)")
    e.add_argument("--sid", required=True, help="a RUN/sid folder written by `llmrec sid build`")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--items", help="LC-Rec style X.item.json ({item_id: {title, ...}}) with the new items")
    src.add_argument("--dataset", help="a dataset name/path whose items not yet in the map are added")
    e.add_argument("--out", required=True, help="folder for the extended sid_map.json and encode_report.json")
    e.set_defaults(func=run_encode)

    s = sub.add_parser("stats", help="stats of a sid_map.json, an index.json or RUN/sid")
    s.add_argument("path", help="sid_map.json, LC-Rec/MiniOneRec *.index.json, or a folder holding one")
    s.add_argument("--json", action="store_true", help="print JSON only")
    s.set_defaults(func=run_stats)

    m = sub.add_parser("methods", help="list the SID construction methods and their settings")
    m.set_defaults(func=run_methods)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def run_build(args: argparse.Namespace) -> int:
    from llmrec.sid.build import build_sids
    from llmrec.sid.config import SidConfig

    config = config_from_args(SidConfig, args, {"use_cache": False} if args.no_cache else None)
    config.make_quantizer()  # the method's own settings are checked before any data is read
    run = Path(args.run)
    prepare_output(run / "sid", "sid", protect=[run, run / "data"], flag="--run")  # before any heavy work
    if args.dataset:
        from llmrec.data.loaders import load_dataset

        items = load_dataset(args.dataset)
    else:
        from llmrec.data.store import load_prepared

        items = load_prepared(run / "data")
    sm = build_sids(items, config, out_dir=run / "sid")
    st = sm.build_stats
    if args.json:
        print(json.dumps(st, default=str))
        return 0
    t = st["timings"]
    print(f"wrote {run / 'sid'}: method {st['method']}, {st['items']} items, {st['distinct_sids']} distinct SIDs, "
          f"levels {st['levels']}")
    print(f"collisions: {st['collisions_before']} before -> {st['collisions_after']} after "
          f"({st['collision_method']}, {st['items_touched']} items touched)")
    print("utilization per level: " + ", ".join(f"{u:.1%}" for u in st["utilization_quantizer"]))
    if st.get("reconstruction_mse") is not None:
        print(f"reconstruction mse: {st['reconstruction_mse']:.4g}")
    print(f"time: vectors {t['embed_s']:.1f}s, quantize {t['quantize_s']:.1f}s, collisions {t['collisions_s']:.1f}s")
    return 0


def run_encode(args: argparse.Namespace) -> int:
    from llmrec.io import write_json
    from llmrec.sid.encode import encode_new_items

    if args.items:
        from llmrec.sid.encode import load_item_json

        items = load_item_json(args.items)
    else:
        from llmrec.data.loaders import load_dataset

        items = load_dataset(args.dataset)
    out = prepare_output(args.out, "sid", protect=[args.sid])  # never over the map it extends
    sm, report = encode_new_items(args.sid, items)
    out.mkdir(parents=True, exist_ok=True)
    sm.save(out / "sid_map.json")
    write_json(out / "encode_report.json", report)
    print(f"wrote {out / 'sid_map.json'}: {len(sm)} items; new {report['items_new']}: kept their code "
          f"{report['kept']}, moved {report['moved']}, unplaced {len(report['unplaced'])}")
    print(json.dumps({k: (v if k != "unplaced" else len(v)) for k, v in report.items()}))
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


def run_methods(args: argparse.Namespace) -> int:
    from llmrec.config import describe
    from llmrec.sid.quantizers import QUANTIZERS

    for name in QUANTIZERS.names():
        cls = QUANTIZERS.get(name)
        import sys

        doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        print(f"{name}: {doc}")
        settings = getattr(cls, "Settings", None)
        for key, helptext, default in describe(settings) if settings else []:
            print(f"    {name}.{key} = {default!r}  {helptext}")
    return 0
