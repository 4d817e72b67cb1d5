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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmrec", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"llmrec.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"llmrec.commands.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
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
