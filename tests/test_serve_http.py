"""The HTTP server on 127.0.0.1 (uvicorn in a thread) with a real tiny model, over raw HTTP: micro-batched
concurrency, 4xx answers for malformed / invalid / oversized / slow requests, 405 with Allow, readiness."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from test_serve_fixture import build_recommender

ANGLE = "Wixey WR300 Digital Angle Gauge."


@pytest.fixture(scope="module")
def rec(data_root):
    return build_recommender(data_root)


@pytest.fixture(scope="module")
def server(rec):
    from llmrec.serve.app import ServeSettings
    from llmrec.serve.server import serve_in_thread

    srv = serve_in_thread(rec, ServeSettings(name="tiny-test", max_body=64 * 1024, body_timeout=1.0))
    yield srv
    srv.stop()


def call(server, method: str, path: str, body=None, raw: bytes | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    r = httpx.request(method, server.url + path, content=data, headers={"Content-Type": "application/json"},
                      timeout=120)
    return r.status_code, (r.json() if r.content else None), r.headers


def test_health_and_models(server, rec):
    assert call(server, "GET", "/health")[:2] == (200, {"status": "ok", "model": "tiny-test", "items": len(rec.sid_map)})
    status, out, _ = call(server, "GET", "/v1/models")
    assert status == 200 and out["data"][0]["id"] == "tiny-test"


def test_concurrent_requests_are_batched_and_match_direct_calls(server, rec):
    histories = [[str(i), str(i + 1)] for i in range(0, 64, 4)]
    want = {tuple(h): [(r.item_id, r.score) for r in rec.recommend(h, k=5)] for h in histories}
    batcher = server.app.state.llmrec.batcher
    before = (batcher.batches, batcher.requests)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda h: (h, call(server, "POST", "/recommend", {"history": h, "k": 5})),
                                histories * 2))
    for h, (status, out, _) in results:
        assert status == 200, out
        got = [(d["item_id"], d["score"]) for d in out["items"]]
        assert [g[0] for g in got] == [w[0] for w in want[tuple(h)]]
        assert all(abs(a[1] - b[1]) < 1e-4 for a, b in zip(got, want[tuple(h)]))
    batches, requests = batcher.batches - before[0], batcher.requests - before[1]
    assert requests == len(results) and batches < requests  # some requests shared a beam search


@pytest.mark.parametrize("method,path,body,raw,status,param", [
    ("POST", "/recommend", None, b"{not json", 400, None),
    ("POST", "/recommend", None, b"[1, 2]", 400, None),
    ("POST", "/recommend", None, b"", 400, None),
    ("POST", "/recommend", None, b'{"history": ["\\ud800"]}', 400, "history[0]"),
    ("POST", "/recommend", {"k": 3}, None, 400, "history"),
    ("POST", "/recommend", {"history": "49"}, None, 400, "history"),
    ("POST", "/recommend", {"history": []}, None, 400, "history"),
    ("POST", "/recommend", {"history": ["49"], "k": 0}, None, 400, "k"),
    ("POST", "/recommend", {"history": ["49"], "k": "5"}, None, 400, "k"),
    ("POST", "/recommend", {"history": ["49"], "exclude_seen": "yes"}, None, 400, "exclude_seen"),
    ("POST", "/recommend", {"history": ["49"], "colour": "red"}, None, 400, "colour"),
    ("POST", "/recommend", {"history": ["49"], "k": 10_000}, None, 400, None),
    ("POST", "/recommend", {"history": ["no such title at all"]}, None, 400, None),
    ("POST", "/recommend", {"history": ["999999"]}, None, 400, None),
    ("POST", "/recommend", {"history": ["49"], "behavior": "../../etc/passwd"}, None, 400, None),
    ("POST", "/v1/chat/completions", {"messages": []}, None, 400, "messages"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "system", "content": "x"}]}, None, 400, "messages[0].role"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     None, 400, "messages[0].content[0].text"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     None, 400, "messages[0].content[0].type"),
    ("POST", "/v1/chat/completions", {}, None, 400, "messages"),
    ("POST", "/nope", {"history": ["49"]}, None, 404, None),
    ("GET", "/nope", None, None, 404, None),
])
def test_invalid_requests_are_400_naming_the_field(server, method, path, body, raw, status, param):
    got, out, _ = call(server, method, path, body=body, raw=raw)
    assert got == status, out
    assert out["error"]["message"]
    if param:
        assert out["error"]["param"] == param, out


def test_405_has_allow_header(server):
    status, out, headers = call(server, "GET", "/recommend")
    assert status == 405 and headers["allow"] == "POST" and out["error"]["code"] == "method_not_allowed"


def test_oversized_body_413_then_still_serving(server):
    big = json.dumps({"history": ["49"] * 20_000}).encode()
    assert len(big) > 64 * 1024
    status, out, _ = call(server, "POST", "/recommend", raw=big)
    assert status == 413 and "limit" in out["error"]["message"]
    assert call(server, "GET", "/health")[0] == 200


def test_slow_body_408_and_idle_connection_closed(server, monkeypatch):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"history\"")
        s.settimeout(10)
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408")
    import llmrec.serve.server as srv_mod

    monkeypatch.setattr(srv_mod, "HEADER_TIMEOUT", 0.5)
    from llmrec.serve.app import ServeSettings

    srv = srv_mod.serve_in_thread(server.app.state.llmrec.rec, ServeSettings(name="t2"))
    try:
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHo")  # a head that never completes
            s.settimeout(5)
            t0 = time.monotonic()
            assert s.recv(4096) == b""  # closed by the server
            assert time.monotonic() - t0 < 3
    finally:
        srv.stop()


def test_long_chat_resolution_does_not_hold_the_model(server, rec, monkeypatch):
    """While a chat message is being resolved (slowed down here), /recommend is answered."""
    gate = threading.Event()
    real_find = rec.resolver.find

    def slow_find(message):
        gate.wait(10)
        return real_find(message)

    monkeypatch.setattr(rec.resolver, "find", slow_find)
    body = {"model": "tiny-test", "messages": [{"role": "user", "content": f"I have the {ANGLE}"}]}
    t = threading.Thread(target=call, args=(server, "POST", "/v1/chat/completions", body))
    t.start()
    time.sleep(0.2)
    status, out, _ = call(server, "POST", "/recommend", {"history": ["49"], "k": 3})
    assert status == 200 and len(out["items"]) == 3
    gate.set()
    t.join()


def test_readiness_while_loading_and_failed_load(rec, monkeypatch, tmp_path):
    from llmrec.serve import app as app_mod
    from llmrec.serve.app import ServeSettings
    from llmrec.serve.server import serve_in_thread

    gate = threading.Event()

    def slow_load(self):
        gate.wait(20)
        self.attach(rec)

    monkeypatch.setattr(app_mod.State, "load", slow_load)
    srv = serve_in_thread(settings=ServeSettings(model="whatever", name="m"))
    try:
        r = httpx.get(srv.url + "/health")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = httpx.post(srv.url + "/recommend", json={"history": ["49"]})
        assert r.status_code == 503 and r.headers["retry-after"]
        gate.set()
        for _ in range(100):
            if httpx.get(srv.url + "/health").status_code == 200:
                break
            time.sleep(0.05)
        assert httpx.post(srv.url + "/recommend", json={"history": ["49"], "k": 2}).status_code == 200
    finally:
        gate.set()
        srv.stop()
    monkeypatch.undo()
    srv = serve_in_thread(settings=ServeSettings(model=str(tmp_path / "nothing-here")))
    try:
        for _ in range(100):
            body = httpx.get(srv.url + "/health").json()
            if body["status"] != "loading":
                break
            time.sleep(0.05)
        assert body["status"] == "error" and "no such folder" in body["error"]
        assert str(tmp_path) not in json.dumps(httpx.get(srv.url + "/v1/models").json())
    finally:
        srv.stop()
