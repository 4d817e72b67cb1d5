"""`llmrec serve`: HTTP server with an OpenAI-compatible /v1/chat/completions, /recommend, /health, /v1/models."""

from __future__ import annotations

import argparse
import os

from llmrec.config import add_config_arguments, config_from_args
from llmrec.io import LlmrecError
from llmrec.serve.config import ServeSettings

FLAGS = ("model", "host", "port", "workers", "device", "name", "api_key", ("cors_origins", "--cors-origin"),
         "max_body", "request_timeout", "max_concurrency", "max_batch", "access_log",
         ("use_embeddings", "--embeddings"))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="serve a model over HTTP (OpenAI-compatible chat + /recommend)",
        description="Serve a bundle, run or model folder, or Hub repo with FastAPI + uvicorn: POST "
                    "/v1/chat/completions (OpenAI-compatible, streaming), POST /recommend, GET /health (503 while "
                    "the model loads), GET /v1/models. Concurrent requests are decoded in shared batches. For "
                    "more throughput run several workers (--workers N, each loads the model) or several "
                    "processes on different ports behind a load balancer.")
    add_config_arguments(p, ServeSettings, FLAGS)
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    settings = config_from_args(ServeSettings, args)  # checked before FastAPI or the model is imported
    if not settings.model:
        raise LlmrecError("--model is required: a bundle folder, run folder, model folder or Hub id.")
    settings.api_key = settings.api_key or os.environ.get("LLMREC_API_KEY") or None
    from llmrec.commands.recommend import quiet_loading
    from llmrec.serve.server import serve

    quiet_loading(args)
    serve(settings, host=settings.host, port=settings.port, workers=settings.workers,
          max_concurrency=settings.max_concurrency)
    return 0
