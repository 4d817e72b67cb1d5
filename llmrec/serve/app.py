"""The HTTP API on FastAPI: OpenAI-compatible chat completions, JSON /recommend, /health, /v1/models.

- GET  /health                   200 {"status": "ok", "model", "items"}; 503 {"status": "loading"} while the
                                 model loads (readiness), 503 {"status": "error"} if loading failed
- GET  /v1/models, /v1/models/{id}   the served model (unknown id -> 404)
- POST /recommend                {history, k?, behavior?, exclude_seen?} -> {items, k}
- POST /v1/chat/completions      OpenAI request (see llmrec.serve.openai_api) -> chat.completion or SSE chunks

Bad requests get OpenAI-style JSON errors {"error": {message, type, param, code}}: 400 for anything
malformed, invalid or unsupported (naming the field), 401 without the API key, 404 unknown route or
model, 405 with an Allow header, 408 body not received in time, 413 body too large, 503 while loading,
504 over the request time limit. Parsing, title resolution and prompt rendering run in worker threads
outside the model lock; decoding goes through one MicroBatcher, so concurrent requests share a beam search.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmrec.io import LlmrecError
from llmrec.serve.batcher import MicroBatcher
from llmrec.serve.chat import plan_chat, reply_text
from llmrec.serve.config import ServeSettings
from llmrec.serve.openai_api import (
    ChatBody,
    RecommendBody,
    RequestError,
    check_chat,
    completion,
    finish,
    parse_body,
    sse_chunks,
    stops_of,
)

log = logging.getLogger(__name__)
access_log = logging.getLogger("llmrec.serve.access")


class State:
    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.rec: Any = None
        self.batcher: MicroBatcher | None = None
        self.error: str | None = None
        self.name = settings.name or "llmrec"

    def attach(self, rec: Any) -> None:
        import gc

        self.name = self.settings.name or rec.name
        self.batcher = MicroBatcher(rec, max_batch=self.settings.max_batch)
        self.rec = rec
        # Everything loaded so far lives as long as the server: keep it out of the cyclic GC, whose full
        # passes over the ~400k objects of torch + transformers + the catalogue took 0.2 s (0.6 s under
        # load) and showed up as p99 latency.
        gc.freeze()

    def load(self) -> None:
        from llmrec.serve.recommender import Recommender

        try:
            t0 = time.perf_counter()
            rec = Recommender.from_pretrained(self.settings.model, device=self.settings.device,
                                              use_embeddings=self.settings.use_embeddings)
            self.attach(rec)
            log.info("model %s ready (%d items) in %.1f s", self.name, len(rec.sid_map), time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - reported by /health and every request
            self.error = f"{type(e).__name__}: {e}" if not isinstance(e, LlmrecError) else str(e)
            log.error("loading %s failed: %s", self.settings.model, self.error)

    def ready(self) -> Any:
        if self.rec is None:
            msg = f"model failed to load: {self.error}" if self.error else "the model is loading; retry shortly"
            raise RequestError(503, msg, code="model_loading" if not self.error else "model_error",
                               headers={"Retry-After": "5"} if not self.error else None)
        return self.rec


def _error(status: int, message: str, param: str | None = None, code: str | None = None,
           headers: dict | None = None) -> JSONResponse:
    kind = {401: "authentication_error", 404: "not_found_error", 503: "server_error", 504: "timeout_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status, headers=headers)


class Guard:
    """Pure ASGI middleware: API key (all routes but /health and CORS preflight) and the access log."""

    def __init__(self, app, settings: ServeSettings):
        self.app = app
        self.key = (settings.api_key or "").encode()
        self.log = settings.access_log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 0}

        async def send_wrapped(msg):
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        if self.key and scope["path"] != "/health" and scope["method"] != "OPTIONS":
            headers = dict(scope.get("headers") or [])
            auth = headers.get(b"authorization", b"")
            given = auth[7:].strip() if auth[:7].lower() == b"bearer " else headers.get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self.key):
                resp = _error(401, "missing or wrong API key: send 'Authorization: Bearer KEY'", code="invalid_api_key",
                              headers={"WWW-Authenticate": "Bearer"})
                await resp(scope, receive, send_wrapped)
                self._log(scope, status["code"], t0)
                return
        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            self._log(scope, status["code"], t0)

    def _log(self, scope, code: int, t0: float) -> None:
        if self.log:
            client = scope.get("client") or ("-", 0)
            access_log.info('%s "%s %s" %d %.1f ms', client[0], scope["method"], scope["path"], code,
                            1000 * (time.perf_counter() - t0))


async def _read_body(request: Request, settings: ServeSettings) -> bytes:
    """The request body within the size and time limits (413 / 408)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise RequestError(400, "invalid Content-Length header", code="bad_length")
        if int(length) > settings.max_body:
            raise RequestError(413, f"request body is {length} bytes; the limit is {settings.max_body}",
                               code="body_too_large", headers={"Connection": "close"})
    chunks, size = [], 0

    async def read() -> None:
        nonlocal size
        async for c in request.stream():
            size += len(c)
            if size > settings.max_body:
                raise RequestError(413, f"request body over the limit of {settings.max_body} bytes",
                                   code="body_too_large", headers={"Connection": "close"})
            chunks.append(c)

    try:
        await asyncio.wait_for(read(), settings.body_timeout)
    except TimeoutError:
        raise RequestError(408, f"request body not received within {settings.body_timeout:g} s",
                           code="body_timeout", headers={"Connection": "close"}) from None
    return b"".join(chunks)


def create_app(recommender: Any = None, settings: ServeSettings | None = None) -> FastAPI:
    """The app for a Recommender object, or for `settings.model` loaded in the background at startup
    (/health answers 503 "loading" until it is ready)."""
    settings = settings or ServeSettings()
    state = State(settings)
    if recommender is not None:
        state.attach(recommender)
    elif not settings.model:
        raise LlmrecError("create_app needs a Recommender or settings.model (a bundle folder or Hub id).")

    # A small fixed pool, not the default 40-thread one: many runnable Python threads starve the decoding
    # thread of the GIL between its small torch ops (measured: 64 clients fell to a third of 32's throughput).
    prep = ThreadPoolExecutor(max_workers=max(1, settings.prep_threads), thread_name_prefix="llmrec-prep")

    async def in_prep(fn, *args, **kw):
        return await asyncio.get_running_loop().run_in_executor(prep, functools.partial(fn, *args, **kw))

    async def lifespan(app: FastAPI):
        if state.rec is None:
            threading.Thread(target=state.load, name="llmrec-load", daemon=True).start()
        yield
        if state.batcher is not None:
            state.batcher.close()
        prep.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="llmrec", summary="Generative recommendation over a catalogue (OpenAI-compatible)",
                  lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.llmrec = state

    @app.exception_handler(RequestError)
    async def _req_error(request: Request, e: RequestError):
        return _error(e.status, e.message, e.param, e.code, e.headers)

    @app.exception_handler(LlmrecError)
    async def _llmrec_error(request: Request, e: LlmrecError):
        return _error(400, str(e), code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        msg = {404: f"no route {request.method} {request.url.path}; routes: GET /health, GET /v1/models, "
                    "POST /recommend, POST /v1/chat/completions",
               405: f"{request.url.path} does not accept {request.method}"}.get(e.status_code, str(e.detail))
        return _error(e.status_code, msg, code={404: "not_found", 405: "method_not_allowed"}.get(e.status_code),
                      headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        err = e.errors()[0] if e.errors() else {}
        return _error(400, f"invalid request: {err.get('msg', e)}", code="invalid_field")

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        log.exception("request failed")
        return _error(500, f"internal error: {type(e).__name__}", code="internal_error")

    async def _decode(rec: Any, req) -> list:
        return await asyncio.wrap_future(state.batcher.submit(req))

    async def _timed(coro):
        try:
            return await asyncio.wait_for(coro, settings.request_timeout)
        except TimeoutError:
            raise RequestError(504, f"no answer within {settings.request_timeout:g} s", code="timeout") from None

    def _check_model(model: str | None) -> None:
        if model is not None and model != state.name:
            raise RequestError(404, f"the model '{model}' does not exist; this server serves '{state.name}'",
                               param="model", code="model_not_found")

    @app.get("/health")
    async def health():
        if state.rec is None:
            return JSONResponse({"status": "error" if state.error else "loading", "model": state.name,
                                 **({"error": state.error} if state.error else {})}, status_code=503)
        return {"status": "ok", "model": state.name, "items": len(state.rec.sid_map)}

    def _model_card() -> dict:
        return {"id": state.name, "object": "model", "created": 0, "owned_by": "llmrec"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        _check_model(model_id)
        return _model_card()

    @app.post("/recommend")
    async def recommend(request: Request):
        rec = state.ready()
        body = parse_body(await _read_body(request, settings), RecommendBody)
        _check_model(body.model)

        async def work():
            req = await in_prep(rec.prepare, list(body.history), k=body.k, behavior=body.behavior,
                                          exclude_seen=body.exclude_seen)
            return (await _decode(rec, req))[0]

        items = await _timed(work())
        return {"items": [r.to_dict() for r in items], "k": body.k}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        rec = state.ready()
        body: ChatBody = parse_body(await _read_body(request, settings), ChatBody)
        _check_model(body.model)
        check_chat(body)
        if body.n * body.k > rec.max_k():
            raise RequestError(400, f"field 'n': n x k = {body.n} x {body.k} is over the {rec.max_k()} items one "
                                    "answer can hold; lower n or k", param="n")
        if body.k > rec.max_k():
            raise RequestError(400, f"field 'k' must be 1..{rec.max_k()}", param="k")
        try:
            rec.check_behavior(body.behavior)
        except LlmrecError as e:
            raise RequestError(400, str(e), param="behavior") from None
        users = [m.text() for m in body.messages if m.role == "user"]
        context = [m.text() for m in body.messages if m.role in ("system", "developer") and m.text().strip()]

        async def work():
            plan = await in_prep(plan_chat, rec, users, history=body.history, context=context, k=body.k,
                                           lists=body.n, temperature=body.temperature, top_p=body.top_p,
                                           seed=body.seed, behavior=body.behavior)
            lists = await _decode(rec, plan.request) if plan.request else [[] for _ in range(body.n)]
            return plan, lists

        plan, lists = await _timed(work())
        tok = rec.tokenizer

        def count(text: str) -> int:
            return len(tok(text, add_special_tokens=False)["input_ids"])

        def cut(text: str, n: int) -> str:
            return tok.decode(tok(text, add_special_tokens=False)["input_ids"][:n])

        limit = body.max_completion_tokens or body.max_tokens
        texts = [finish(reply_text(rec, plan, items, body.show_sids), stops_of(body), limit, count, cut)
                 for items in lists]
        prompt_tokens = sum(count(m.text()) for m in body.messages)
        completion_tokens = sum(count(t) for t, _ in texts)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        extra = {"system_fingerprint": f"llmrec-{rec.sid_map.fingerprint}",
                 "items": [[r.to_dict() for r in items] for items in lists],
                 "resolved": [m.to_dict() for m in plan.resolved], "unmatched": plan.unmatched}
        if body.user:
            access_log.info("chat request for user %r", body.user)
        if body.stream:
            include = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(sse_chunks(state.name, texts, usage if include else None, extra),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        return completion(state.name, texts, usage, extra)

    app.add_middleware(Guard, settings=settings)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Api-Key"])
    return app


def app_from_env() -> FastAPI:
    """App factory for `uvicorn --factory llmrec.serve.app:app_from_env --workers N`: settings from the
    LLMREC_SERVE_SETTINGS JSON (what `llmrec serve --workers N` sets), or LLMREC_MODEL alone."""
    import json
    import os

    if not logging.getLogger().handlers:  # a worker process started by uvicorn: log like `llmrec serve`
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            datefmt="%H:%M:%S")
        logging.getLogger("llmrec").setLevel(logging.INFO)
    raw = os.environ.get("LLMREC_SERVE_SETTINGS")
    settings = ServeSettings(**json.loads(raw)) if raw else ServeSettings(model=os.environ.get("LLMREC_MODEL"))
    if not settings.api_key and os.environ.get("LLMREC_API_KEY"):
        settings.api_key = os.environ["LLMREC_API_KEY"]
    return create_app(settings=settings)
