"""Micro-batching: requests that arrive while the model is busy are decoded together in one beam search.

One worker thread owns the model. It takes every prepared request waiting in the queue (up to
`max_batch`), runs them through `Recommender.run` (one batched constrained beam search per beam width),
and resolves each caller's future. Nothing waits on a timer: at one client a request is decoded at once;
under load each batch holds what arrived during the previous one, so throughput grows with concurrency.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

from llmrec.serve.types import RecRequest

log = logging.getLogger(__name__)


class MicroBatcher:
    """`submit(request) -> Future[list[list[Recommendation]]]`, decoded in batches on one thread."""

    def __init__(self, recommender: Any, max_batch: int = 64):
        self.rec = recommender
        self.max_batch = max_batch
        self._q: queue.Queue[tuple[RecRequest, Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="llmrec-batcher", daemon=True)
        self.batches = 0
        self.requests = 0
        self._thread.start()

    def submit(self, request: RecRequest) -> Future:
        fut: Future = Future()
        self._q.put((request, fut))
        return fut

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)  # finish this batch, then stop
                    break
                jobs.append(nxt)
            jobs = [(r, f) for r, f in jobs if f.set_running_or_notify_cancel()]
            if not jobs:
                continue
            self.batches += 1
            self.requests += len(jobs)
            try:
                results = self.rec.run([r for r, _ in jobs])
            except Exception as e:
                log.exception("batch of %d failed", len(jobs))
                for _, f in jobs:
                    f.set_exception(e)
                continue
            for (_, f), res in zip(jobs, results):
                f.set_result(res)
