"""`llmrec serve`: HTTP server with an OpenAI-compatible /v1/chat/completions, /recommend and /health."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve a model over HTTP (OpenAI-compatible chat + /recommend)",
                              description=__doc__)
    p.add_argument("--model", required=True, help="bundle folder or Hub id")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--device", default=None)
    p.add_argument("--name", default=None, help="model name reported in responses (default: --model)")
    p.add_argument("--max-body", type=int, default=64 * 1024, help="largest request body in bytes")
    p.add_argument("--no-embeddings", action="store_true", help="fuzzy title matching only (no MiniLM)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from llmrec.serve import Recommender
    from llmrec.serve.http import serve

    rec = Recommender.from_pretrained(args.model, device=args.device, use_embeddings=not args.no_embeddings)
    serve(rec, host=args.host, port=args.port, model_name=args.name or str(args.model), max_body=args.max_body)
    return 0
