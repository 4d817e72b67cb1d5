"""Running the app with uvicorn: one process (`serve`), several worker processes (`workers=N`, each loads
the model), or a background thread for tests (`serve_in_thread`).

Connection hygiene on top of uvicorn's defaults: a listen backlog of 2048, idle keep-alive connections
closed after 5 s, `limit_concurrency` answered with 503, and a request-head timeout (uvicorn has none: a
client that connects and trickles its headers would hold the connection forever).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import threading
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from llmrec.serve.app import ServeSettings, create_app

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0


class HeadTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request head: a connection that has not sent a
    complete request line and headers within HEADER_TIMEOUT seconds of opening (or of its last response)
    is closed."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        old = getattr(self, "_head_timer", None)
        if old is not None:
            old.cancel()
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT, self._head_deadline)

    def _head_deadline(self) -> None:
        if self.transport.is_closing():
            return
        if self.conn.their_state in (h11.IDLE, h11.DONE) and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()  # no request head in time


def _config(app: Any, host: str, port: int, *, max_concurrency: int | None, workers: int = 1,
            **kw: Any) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, backlog=2048, timeout_keep_alive=5, workers=workers,
                          limit_concurrency=max_concurrency, http=HeadTimeoutH11, access_log=False,
                          log_config=None, timeout_graceful_shutdown=10, **kw)


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, *, workers: int = 1,
          max_concurrency: int | None = 1024, recommender: Any = None) -> None:
    """Serve until Ctrl-C. With workers > 1, uvicorn starts that many processes sharing the port, each
    building the app from LLMREC_SERVE_SETTINGS (llmrec.serve.app:app_from_env) and loading the model."""
    if workers > 1:
        os.environ["LLMREC_SERVE_SETTINGS"] = json.dumps(dataclasses.asdict(settings))
        cfg = _config("llmrec.serve.app:app_from_env", host, port, max_concurrency=max_concurrency, workers=workers,
                      factory=True)
        from uvicorn.supervisors import Multiprocess

        sock = cfg.bind_socket()
        log.info("serving on http://%s:%d with %d workers", host, port, workers)
        Multiprocess(cfg, sockets=[sock]).run()
        return
    app = create_app(recommender, settings)
    log.info("serving %s on http://%s:%d (POST /v1/chat/completions, POST /recommend, GET /health)",
             settings.model or "a Recommender", host, port)
    uvicorn.Server(_config(app, host, port, max_concurrency=max_concurrency)).run()


class ServerThread:
    """A uvicorn server in a daemon thread on an already bound socket (port 0 = a free port)."""

    def __init__(self, recommender: Any = None, settings: ServeSettings | None = None, host: str = "127.0.0.1",
                 port: int = 0, max_concurrency: int | None = 1024):
        self.app = create_app(recommender, settings or ServeSettings())
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = uvicorn.Server(_config(self.app, host, self.port, max_concurrency=max_concurrency))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name="llmrec-http")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerThread:
        import time

        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if time.monotonic() - t0 > timeout or not self.thread.is_alive():
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def serve_in_thread(recommender: Any = None, settings: ServeSettings | None = None, host: str = "127.0.0.1",
                    port: int = 0, **kw: Any) -> ServerThread:
    """Start serving in a daemon thread; `.url`, `.stop()`."""
    return ServerThread(recommender, settings, host, port, **kw).start()
