"""`llmrec` command line: one sub-command group per stage.

Each stage's commands live in `llmrec/commands/<stage>.py` and expose `register(subparsers)`;
handlers are imported lazily so `llmrec --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from llmrec.io import LlmrecError

# Modules under llmrec.commands, in help order. A module that is missing is skipped, so a
# partial install (or a stage still being built) does not break the other commands.
COMMAND_MODULES = ["data", "sid", "corpus", "train", "eval", "recommend", "serve", "hub", "demo"]


# Third-party loggers that talk at INFO on every start (faiss's AVX512 probe, sentence-transformers, httpx).
NOISY = ("faiss", "faiss.loader", "sentence_transformers", "transformers", "datasets", "httpx", "httpcore",
         "huggingface_hub", "accelerate", "torch", "urllib3", "filelock", "uvicorn.error")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llmrec")
    except PackageNotFoundError:
        return "unknown"


def setup_logging(verbose: bool) -> None:
    """llmrec's own logger at INFO (DEBUG with -v); other libraries at WARNING unless -v."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", force=True)
    logging.getLogger("llmrec").setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        import os

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _describe(parser: argparse.ArgumentParser) -> None:
    """Every sub-command gets a description (its help line when it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name][0].upper() + helps[name][1:] + "."
                _describe(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmrec", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging for llmrec, INFO logs and progress bars of the libraries it uses")
    parser.add_argument("--version", action="version", version=f"llmrec {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"llmrec.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"llmrec.commands.{name}":
                continue
            raise
        mod.register(sub)
    _describe(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except LlmrecError as e:
        print(f"llmrec: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("llmrec: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
