"""`llmrec bundle` (write a reloadable model bundle) and `llmrec push` (upload it to the Hugging Face Hub)."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from llmrec.io import LlmrecError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    b = subparsers.add_parser("bundle", help="write a model bundle (model, tokenizer, SID map, catalogue, card)",
                              description="Bundle a run's newest model (RUN/grpo/model, else RUN/sft/model) with "
                                          "its catalogue, SID map, metrics and model card.")
    b.add_argument("--run", required=True, help="run directory (runs/NAME)")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--merge", action="store_true", help="merge a LoRA adapter into full weights")
    b.set_defaults(func=run_bundle)

    p = subparsers.add_parser("push", help="upload a bundle (or a run, bundled on the fly) to the Hugging Face Hub",
                              description="Token from HF_TOKEN or `huggingface-cli login`; HF_ENDPOINT selects "
                                          "another Hub endpoint.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle", help="bundle folder written by save_pretrained / llmrec bundle")
    src.add_argument("--run", help="run directory: bundled into a temporary folder first")
    p.add_argument("--repo-id", required=True, help="USER/NAME on the Hub")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--merge", action="store_true", help="merge a LoRA adapter into full weights before upload")
    p.add_argument("--message", default=None, help="commit message")
    p.set_defaults(func=run_push)


def run_bundle(args: argparse.Namespace) -> int:
    from llmrec.hub import bundle_from_run

    out = bundle_from_run(args.run, args.out, merge=True if args.merge else None)
    print(out)
    return 0


def run_push(args: argparse.Namespace) -> int:
    from llmrec.hub import bundle_from_run, push_bundle, read_bundle, save_bundle

    if args.bundle:
        bundle = Path(args.bundle)
        if not bundle.is_dir():
            raise LlmrecError(f"--bundle {bundle}: no such folder.")
        if args.merge:
            with tempfile.TemporaryDirectory(prefix="llmrec-push-") as tmp:
                config, _, items = read_bundle(bundle)
                merged = save_bundle(Path(tmp) / bundle.name, items=items, model_dir=bundle, merge=True,
                                     generation=config.get("generation"), metrics=config.get("metrics"),
                                     data_manifest=config.get("data"), name=config.get("name"),
                                     repo_id=args.repo_id)
                url = push_bundle(merged, args.repo_id, private=args.private, commit_message=args.message)
        else:
            url = push_bundle(bundle, args.repo_id, private=args.private, commit_message=args.message)
    else:
        with tempfile.TemporaryDirectory(prefix="llmrec-push-") as tmp:
            bundle = bundle_from_run(args.run, Path(tmp) / Path(args.run).name,
                                     merge=True if args.merge else None, repo_id=args.repo_id)
            url = push_bundle(bundle, args.repo_id, private=args.private, commit_message=args.message)
    print(url)
    return 0
