"""`llmrec recommend` (one history -> top-K items) and `llmrec chat` (interactive REPL on stdin)."""

from __future__ import annotations

import argparse
import json
import sys

from llmrec.io import LlmrecError

MODEL_HELP = "bundle folder, run folder (runs/NAME: its newest model), model folder inside a run, or Hub id"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("recommend", help="recommend items after a history (ids or titles)",
                              description="Top-K items after a history, by trie-constrained beam search over "
                                          "the catalogue. A list never names one title twice.")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--history", help="comma-separated item ids, oldest first: 'id1,id2'")
    src.add_argument("--titles", help="semicolon-separated titles, oldest first: 'title 1;title 2'")
    p.add_argument("-k", "--k", type=int, default=10, help="number of items (default 10)")
    p.add_argument("--behavior", default=None, help="target behavior (models trained with behaviours, e.g. buy)")
    p.add_argument("--include-seen", action="store_true", help="allow items already in the history")
    p.add_argument("--show-sids", action="store_true", help="print Semantic IDs next to titles")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: where the model loads)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_recommend)

    c = subparsers.add_parser("chat", help="chat with a model: name items you have, get recommendations",
                              description="Interactive chat on stdin: name items you have (by title), get "
                                          "recommendations. Commands: :sids toggles Semantic IDs, :reset clears "
                                          "the history, :quit exits.")
    c.add_argument("--model", required=True, help=MODEL_HELP)
    c.add_argument("-k", "--k", type=int, default=5, help="items per answer (default 5)")
    c.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: where the model loads)")
    c.add_argument("--no-embeddings", action="store_true", help="fuzzy title matching only (no MiniLM)")
    c.set_defaults(func=run_chat)


def quiet_loading(args: argparse.Namespace) -> None:
    """No weight-loading bars or library warnings while a model loads (unless -v)."""
    if getattr(args, "verbose", False):
        return
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    disable_progress_bars()


def _split(text: str, sep: str) -> list[str]:
    parts = [t.strip() for t in text.split(sep) if t.strip()]
    if not parts:
        raise LlmrecError(f"empty history: give at least one entry separated by '{sep}'.")
    return parts


def run_recommend(args: argparse.Namespace) -> int:
    from llmrec.serve import Recommender

    kind = "id" if args.history is not None else "title"
    history = _split(args.history, ",") if args.history is not None else _split(args.titles, ";")
    quiet_loading(args)
    rec = Recommender.from_pretrained(args.model, device=args.device)
    rec.check_behavior(args.behavior)
    resolved = rec.resolve_history(history, kind=kind)
    items = rec.recommend([m.item_id for m in resolved], behavior=args.behavior, k=args.k,
                          exclude_seen=not args.include_seen, kind="id")
    if args.json:
        print(json.dumps({"history": [m.to_dict() for m in resolved], "items": [r.to_dict() for r in items]},
                         ensure_ascii=False))
        return 0
    for n, r in enumerate(items, 1):
        sid = f"  {r.sid}" if args.show_sids else ""
        print(f"{n:>3}. {r.score:9.4f}  {r.item_id:<12} {r.title}{sid}")
    return 0


def run_chat(args: argparse.Namespace) -> int:
    from llmrec.serve import Recommender
    from llmrec.serve.chat import repl

    quiet_loading(args)
    rec = Recommender.from_pretrained(args.model, device=args.device, use_embeddings=not args.no_embeddings)
    return repl(rec, sys.stdin, sys.stdout, k=args.k)
