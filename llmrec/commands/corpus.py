"""`llmrec corpus build|show`: the instruction corpus of a run (runs/NAME/corpus)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmrec.config import add_config_arguments, config_from_args, save_config
from llmrec.corpus.config import CorpusConfig
from llmrec.io import LlmrecError, prepare_output
from llmrec.rundir import RunDir


def _load_tokenizer(path: str | None):
    if not path:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise LlmrecError(f"--tokenizer {path}: cannot load a tokenizer there ({e}).") from e


def _build(args: argparse.Namespace) -> int:
    config = config_from_args(CorpusConfig, args)  # checked before anything heavy is imported or read
    from llmrec.corpus.build import build_corpus_with_manifest, save_corpus
    from llmrec.data.pairing import check_sid_for_data
    from llmrec.data.store import load_prepared
    from llmrec.sid.sidmap import SidMap

    run = RunDir(args.run)
    out = prepare_output(args.out or run.corpus, "corpus", protect=[run.root, run.data, run.sid])
    if not run.sid_map.exists():
        raise LlmrecError(f"{run.sid_map} not found; run `llmrec sid build --run {run}` first.")
    prepared = load_prepared(run.data)
    sid_map = SidMap.load(run.sid_map)
    check_sid_for_data(sid_map, prepared, run=run)
    corpus, manifest = build_corpus_with_manifest(prepared, sid_map, config, tokenizer=_load_tokenizer(args.tokenizer))
    save_corpus(out, corpus, manifest)
    save_config(config, out / "corpus_config.yaml")
    print(json.dumps({"corpus": str(out), "style": manifest["style"], "counts": manifest["counts"],
                      "skipped": manifest["skipped"]}, indent=2))
    return 0


def _show(args: argparse.Namespace) -> int:
    from llmrec.corpus.build import load_corpus
    from llmrec.corpus.render import render_example

    if not (args.run or args.corpus):
        raise LlmrecError("corpus show: give --run runs/NAME or --corpus FOLDER.")
    corpus_dir = Path(args.corpus) if args.corpus else Path(args.run) / "corpus"
    corpus = load_corpus(corpus_dir)
    if args.split not in corpus:
        raise LlmrecError(f"{corpus_dir}: no split {args.split!r}; splits are {list(corpus)}.")
    ds = corpus[args.split]
    tasks = ds["task"]
    rows = [i for i, t in enumerate(tasks) if args.task in (None, t)][: args.n]
    if not rows:
        raise LlmrecError(f"{corpus_dir}: split {args.split} has no rows for task {args.task!r}; "
                          f"tasks present: {sorted(set(tasks))}.")
    tokenizer = _load_tokenizer(args.tokenizer)
    for i in rows:
        r = ds[i]
        print(f"=== {args.split}[{i}] task={r['task']} user={r['user']} target={r['target']}")
        print(render_example(tokenizer, r["prompt"], r["completion"]))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="build or inspect the instruction corpus (LC-Rec style tasks)",
                       description="The instruction corpus of a run: build it, or print rendered rows.")
    cmds = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)

    b = cmds.add_parser("build", help="runs/NAME/data + runs/NAME/sid/sid_map.json -> runs/NAME/corpus",
                        description="Build the instruction corpus (a datasets DatasetDict per split) from the "
                                    "run's data and SIDs.")
    b.add_argument("--run", required=True, help="run folder (runs/NAME)")
    add_config_arguments(b, CorpusConfig, ("tasks", "max_history", "seed", "paraphrases", "prompts_dir"),
                         example="recipes/tiny-cpu/corpus.yaml")
    b.add_argument("--tokenizer", help="tokenizer/model folder: plain-text rows if it has no chat template")
    b.add_argument("--out", help="output folder (default runs/NAME/corpus)")
    b.set_defaults(func=_build)

    s = cmds.add_parser("show", help="print rendered examples", description="Print rendered rows of a corpus.")
    s.add_argument("--run", help="run folder (reads runs/NAME/corpus)")
    s.add_argument("--corpus", help="corpus folder (instead of --run)")
    s.add_argument("--task", help="only this task (default: any)")
    s.add_argument("--split", default="train", choices=["train", "valid", "test"])
    s.add_argument("-n", type=int, default=3, help="how many examples")
    s.add_argument("--tokenizer", help="render through this tokenizer's chat template (default: plain format)")
    s.set_defaults(func=_show)

