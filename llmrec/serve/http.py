"""HTTP serving with the standard library: OpenAI-compatible chat completions, /recommend, /health.

Routes:
- GET  /health                 -> {"status": "ok", "model": ..., "items": N}
- POST /recommend              {history: [ids or titles], k?, behavior?, exclude_seen?} -> {items: [...]}
- POST /v1/chat/completions    OpenAI request (messages, model?) -> OpenAI chat.completion response,
                               plus `llmrec: {items, resolved}` with the structured answer.
Bad requests get JSON errors `{"error": {"message", "type", "code"}}` with a 4xx status: malformed
JSON 400, missing/invalid fields 422, unknown route 404, wrong method 405, body over the limit 413.
A ThreadingHTTPServer accepts requests concurrently; the model runs under the Recommender's lock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from llmrec.io import LlmrecError

if TYPE_CHECKING:
    from llmrec.serve.recommender import Recommender

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class RequestError(Exception):
    """A client error with its HTTP status."""

    def __init__(self, status: int, message: str, code: str = "invalid_request"):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _field(body: dict, name: str, types: type | tuple, default: Any = None, required: bool = False) -> Any:
    if name not in body or body[name] is None:
        if required:
            raise RequestError(422, f"missing field '{name}'", "missing_field")
        return default
    value = body[name]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in (types if isinstance(types, tuple)
                                                                                 else (types,))):
        want = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise RequestError(422, f"field '{name}' must be {want}, got {type(value).__name__}", "invalid_field")
    return value


def _k(body: dict, rec: Recommender, default: int) -> int:
    from llmrec.serve.recommender import MAX_K

    k = _field(body, "k", int, default)
    hi = min(MAX_K, len(rec.sid_map))
    if not 1 <= k <= hi:
        raise RequestError(422, f"field 'k' must be between 1 and {hi}, got {k}", "invalid_field")
    return k


def _string_list(body: dict, name: str, required: bool) -> list[str]:
    value = _field(body, name, list, [], required=required)
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise RequestError(422, f"field '{name}' must be a list of non-empty strings (item ids or titles)",
                           "invalid_field")
    return value


def handle_recommend(rec: Recommender, body: dict) -> dict:
    history = _string_list(body, "history", required=True)
    if not history:
        raise RequestError(422, "field 'history' is empty: give at least one item id or title", "invalid_field")
    k = _k(body, rec, 10)
    behavior = _field(body, "behavior", str, None)
    exclude_seen = _field(body, "exclude_seen", bool, True)
    items = rec.recommend(history, behavior=behavior, k=k, exclude_seen=exclude_seen)
    return {"items": [r.to_dict() for r in items], "k": k}


def handle_chat(rec: Recommender, body: dict, model_name: str) -> dict:
    messages = _field(body, "messages", list, required=True)
    if not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise RequestError(422, "field 'messages' must be a non-empty list of {role, content} objects",
                           "invalid_field")
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        raise RequestError(422, "no message with role 'user' in 'messages'", "invalid_field")
    content = users[-1].get("content")
    if isinstance(content, list):  # OpenAI content parts: keep the text parts
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if not isinstance(content, str) or not content.strip():
        raise RequestError(422, "the last user message has no text content", "invalid_field")
    k = _k(body, rec, 5)
    show_sids = _field(body, "show_sids", bool, False)
    history = _string_list(body, "history", required=False)
    reply = rec.chat(content, history=history or None, show_sids=show_sids, k=k)
    prompt_tokens = sum(len(rec.tokenizer(str(m.get("content", "")), add_special_tokens=False)["input_ids"])
                        for m in messages if isinstance(m.get("content"), str))
    completion_tokens = len(rec.tokenizer(reply.text, add_special_tokens=False)["input_ids"])
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") if isinstance(body.get("model"), str) else model_name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "llmrec": {"items": [r.to_dict() for r in reply.items], "resolved": [m.to_dict() for m in reply.resolved]},
    }


class _Handler(BaseHTTPRequestHandler):
    server: RecommenderServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # route access logs through logging
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        self._send(status, {"error": {"message": message, "type": kind, "code": code}})

    def _body(self) -> dict:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise RequestError(411, "chunked bodies are not supported; send Content-Length", "length_required")
        try:
            n = int(length) if length is not None else 0
        except ValueError:
            self.close_connection = True
            raise RequestError(400, "invalid Content-Length header", "bad_length") from None
        if n > self.server.max_body:
            self.close_connection = True  # do not read the oversized body
            raise RequestError(413, f"request body is {n} bytes; the limit is {self.server.max_body}",
                               "body_too_large")
        raw = self.rfile.read(n) if n > 0 else b""
        if not raw.strip():
            raise RequestError(400, "empty request body; send a JSON object", "empty_body")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RequestError(400, f"malformed JSON body: {e}", "malformed_json") from None
        if not isinstance(body, dict):
            raise RequestError(400, "JSON body must be an object", "malformed_json")
        return body

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/health":
            rec = self.server.recommender
            self._send(200, {"status": "ok", "model": self.server.model_name, "items": len(rec.sid_map)})
        elif path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model",
                                                         "owned_by": "llmrec"}]})
        elif path in ("/recommend", "/v1/chat/completions"):
            self._error(405, f"{path} accepts POST only", "method_not_allowed")
        else:
            self._error(404, f"no route GET {path}; routes: GET /health, POST /recommend, "
                             "POST /v1/chat/completions", "not_found")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        routes = {"/recommend": handle_recommend, "/v1/chat/completions": None}
        try:
            if path not in routes:
                self.close_connection = True
                raise RequestError(404, f"no route POST {path}; routes: POST /recommend, "
                                        "POST /v1/chat/completions, GET /health", "not_found")
            body = self._body()
            rec = self.server.recommender
            if path == "/recommend":
                out = handle_recommend(rec, body)
            else:
                if body.get("stream"):
                    raise RequestError(422, "stream=true is not supported; omit it", "invalid_field")
                out = handle_chat(rec, body, self.server.model_name)
            self._send(200, out)
        except RequestError as e:
            self._error(e.status, e.message, e.code)
        except LlmrecError as e:  # unknown titles, bad history entries: the client's input
            self._error(422, str(e), "unprocessable")
        except Exception as e:
            log.exception("request failed")
            self._error(500, f"internal error: {type(e).__name__}: {e}", "internal_error")


class RecommenderServer(ThreadingHTTPServer):
    """ThreadingHTTPServer bound to one Recommender."""

    daemon_threads = True

    def __init__(self, recommender: Recommender, host: str = "127.0.0.1", port: int = 8000,
                 model_name: str | None = None, max_body: int = MAX_BODY):
        self.recommender = recommender
        self.model_name = model_name or (recommender.source or "llmrec")
        self.max_body = max_body
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(recommender: Recommender, host: str = "127.0.0.1", port: int = 8000,
                **kwargs: Any) -> RecommenderServer:
    """A bound (not yet serving) server; port 0 picks a free port (see `.url`)."""
    return RecommenderServer(recommender, host, port, **kwargs)


def serve_in_thread(recommender: Recommender, host: str = "127.0.0.1", port: int = 0,
                    **kwargs: Any) -> tuple[RecommenderServer, threading.Thread]:
    """Start serving in a daemon thread; stop with `server.shutdown(); server.server_close()`."""
    server = make_server(recommender, host, port, **kwargs)
    t = threading.Thread(target=server.serve_forever, name="llmrec-http", daemon=True)
    t.start()
    return server, t


def serve(recommender: Recommender, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
    """Serve until Ctrl-C."""
    server = make_server(recommender, host, port, **kwargs)
    log.info("serving %s on %s (POST /v1/chat/completions, POST /recommend, GET /health)",
             server.model_name, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
