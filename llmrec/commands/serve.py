"""`llmrec serve`: HTTP server with an OpenAI-compatible /v1/chat/completions, /recommend, /health, /v1/models."""

from __future__ import annotations

import argparse
import os

from llmrec.io import LlmrecError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="serve a model over HTTP (OpenAI-compatible chat + /recommend)",
        description="Serve a bundle, run or model folder, or Hub repo with FastAPI + uvicorn: POST "
                    "/v1/chat/completions (OpenAI-compatible, streaming), POST /recommend, GET /health (503 while "
                    "the model loads), GET /v1/models. Concurrent requests are decoded in shared batches. For "
                    "more throughput run several workers (--workers N, each loads the model) or several "
                    "processes on different ports behind a load balancer.")
    p.add_argument("--model", required=True, help="bundle folder, run folder (runs/NAME), model folder, or Hub id")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (default 1)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: where the model loads)")
    p.add_argument("--name", default=None, help="model id in responses (default: the bundle's name)")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' (default: $LLMREC_API_KEY; /health stays open)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser calls from ORIGIN (repeatable; '*' for any)")
    p.add_argument("--max-body", type=int, default=1024 * 1024, help="largest request body in bytes (default 1 MiB)")
    p.add_argument("--request-timeout", type=float, default=120.0, help="seconds to answer a request (default 120)")
    p.add_argument("--max-concurrency", type=int, default=1024,
                   help="open connections + requests before answering 503 (default 1024)")
    p.add_argument("--max-batch", type=int, default=64, help="most requests decoded in one beam search")
    p.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    p.add_argument("--no-embeddings", action="store_true", help="fuzzy title matching only (no MiniLM)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from llmrec.commands.recommend import quiet_loading
    from llmrec.serve.app import ServeSettings
    from llmrec.serve.server import serve

    if args.workers < 1 or args.max_body < 1 or args.max_batch < 1:
        raise LlmrecError("--workers, --max-body and --max-batch must be positive.")
    quiet_loading(args)
    settings = ServeSettings(model=str(args.model), name=args.name, device=args.device,
                             use_embeddings=not args.no_embeddings,
                             api_key=args.api_key or os.environ.get("LLMREC_API_KEY") or None,
                             cors_origins=list(args.cors_origin), max_body=args.max_body,
                             request_timeout=args.request_timeout, max_batch=args.max_batch,
                             access_log=not args.no_access_log)
    serve(settings, host=args.host, port=args.port, workers=args.workers, max_concurrency=args.max_concurrency)
    return 0
