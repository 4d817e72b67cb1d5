"""`llmrec bundle` (write a reloadable model bundle) and `llmrec push` (upload it to the Hugging Face Hub)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from llmrec.io import LlmrecError


def register(subparsers: argparse._SubParsersAction) -> None:
    b = subparsers.add_parser(
        "bundle", help="write a model bundle (model, tokenizer, SID map, catalogue, card)",
        description="Bundle a run's newest model (RUN/grpo/model, else sft_rec/model, else sft/model) with its "
                    "catalogue, SID map, behaviours, metrics and model card into a new folder (safetensors only, "
                    "no local paths). A non-empty folder that is not a bundle is never replaced.")
    b.add_argument("--run", required=True, help="run directory (runs/NAME) or a model folder inside a run")
    b.add_argument("--out", required=True, help="output folder: new, empty, or an existing bundle with --force")
    b.add_argument("--merge", action="store_true", help="merge a LoRA adapter into full weights")
    b.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    b.add_argument("--license", default="apache-2.0", help="license of the weights, for the model card")
    b.set_defaults(func=run_bundle)

    p = subparsers.add_parser(
        "push", help="upload a bundle (or a run, bundled on the fly) to the Hugging Face Hub",
        description="Upload a bundle to a Hub model repo (created if missing). Token from HF_TOKEN or "
                    "`hf auth login`; HF_ENDPOINT selects another Hub endpoint. The uploaded card's usage "
                    "snippet names the repo.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle", help="bundle folder written by `llmrec bundle` / save_pretrained")
    src.add_argument("--run", help="run directory: bundled into a temporary folder first")
    p.add_argument("--repo-id", required=True, help="USER/NAME on the Hub")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--merge", action="store_true", help="merge a LoRA adapter into full weights before upload")
    p.add_argument("--message", default=None, help="commit message")
    p.set_defaults(func=run_push)


def run_bundle(args: argparse.Namespace) -> int:
    from llmrec.bundle import bundle_from_run

    out = bundle_from_run(args.run, args.out, merge=True if args.merge else None, replace=args.force,
                          license=args.license)
    print(out)
    return 0


def run_push(args: argparse.Namespace) -> int:
    from llmrec.bundle import bundle_from_run, push_bundle, read_bundle, save_bundle

    with tempfile.TemporaryDirectory(prefix="llmrec-push-") as tmp:
        if args.bundle:
            bundle = Path(args.bundle)
            if not bundle.is_dir():
                raise LlmrecError(f"--bundle {bundle}: no such folder; write one with `llmrec bundle --run RUN "
                                  "--out FOLDER`.")
            if args.merge:
                config, _, items = read_bundle(bundle)
                bundle = save_bundle(Path(tmp) / bundle.name, items=items, model_dir=bundle, merge=True,
                                     generation=config.get("generation"), metrics=config.get("metrics"),
                                     data_manifest=config.get("data"), name=config.get("name"),
                                     behaviors=config.get("behaviors"), model_ranker=config.get("model_ranker"),
                                     license=config.get("license"), repo_id=args.repo_id)
        else:
            bundle = bundle_from_run(args.run, Path(tmp) / Path(args.run).name, merge=True if args.merge else None,
                                     repo_id=args.repo_id)
        url = push_bundle(bundle, args.repo_id, private=args.private, commit_message=args.message)
    print(url)
    return 0
