"""The HTTP server on 127.0.0.1 (port 0, in a thread) with a real tiny model: concurrency and 4xx answers."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_serve_fixture import build_recommender

ANGLE = "Wixey WR300 Digital Angle Gauge."


@pytest.fixture(scope="module")
def rec(data_root):
    return build_recommender(data_root)


@pytest.fixture(scope="module")
def server(rec):
    from llmrec.serve.http import serve_in_thread

    srv, thread = serve_in_thread(rec, "127.0.0.1", 0, model_name="tiny-test")
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def call(server, method: str, path: str, body=None, raw: bytes | None = None, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=120)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    payload = json.loads(resp.read() or b"null")
    conn.close()
    return resp.status, payload


def test_health(server, rec):
    assert call(server, "GET", "/health") == (200, {"status": "ok", "model": "tiny-test", "items": len(rec.sid_map)})


def test_concurrent_requests_match_direct_calls(server, rec):
    histories = [[str(i), str(i + 1)] for i in range(0, 64, 16)]
    chats = [f"I have the {ANGLE}", "I bought HATCHBOX PLA 3D printer filament, what next?"]
    want_rec = {tuple(h): [(r.item_id, r.score) for r in rec.recommend(h, k=5)] for h in histories}
    want_chat = {m: rec.chat(m, k=3).to_dict() for m in chats}

    def one(j: int):
        if j % 2 == 0:
            h = histories[(j // 2) % len(histories)]
            return "rec", h, call(server, "POST", "/recommend", {"history": h, "k": 5})
        m = chats[(j // 2) % len(chats)]
        body = {"model": "x", "messages": [{"role": "system", "content": "be brief"},
                                           {"role": "user", "content": m}], "k": 3}
        return "chat", m, call(server, "POST", "/v1/chat/completions", body)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    for kind, key, (status, out) in results:
        assert status == 200, out
        if kind == "rec":
            got = [(d["item_id"], d["score"]) for d in out["items"]]
            assert [g[0] for g in got] == [w[0] for w in want_rec[tuple(key)]]
            assert all(abs(a[1] - b[1]) < 1e-4 for a, b in zip(got, want_rec[tuple(key)]))
        else:
            assert out["object"] == "chat.completion" and out["model"] == "x"
            assert out["choices"][0]["message"]["role"] == "assistant"
            assert out["choices"][0]["finish_reason"] == "stop"
            assert out["choices"][0]["message"]["content"] == want_chat[key]["text"]
            assert [d["item_id"] for d in out["llmrec"]["items"]] == [d["item_id"] for d in want_chat[key]["items"]]
            assert set(out["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
            assert isinstance(out["created"], int) and out["id"].startswith("chatcmpl-")


@pytest.mark.parametrize("method,path,body,raw,status,code", [
    ("POST", "/recommend", None, b"{not json", 400, "malformed_json"),
    ("POST", "/recommend", None, b"[1, 2]", 400, "malformed_json"),
    ("POST", "/recommend", {"k": 3}, None, 422, "missing_field"),
    ("POST", "/recommend", {"history": "49"}, None, 422, "invalid_field"),
    ("POST", "/recommend", {"history": []}, None, 422, "invalid_field"),
    ("POST", "/recommend", {"history": ["49"], "k": 0}, None, 422, "invalid_field"),
    ("POST", "/recommend", {"history": ["49"], "k": 10_000}, None, 422, "invalid_field"),
    ("POST", "/recommend", {"history": ["49"], "k": "5"}, None, 422, "invalid_field"),
    ("POST", "/recommend", {"history": ["49"], "exclude_seen": "yes"}, None, 422, "invalid_field"),
    ("POST", "/recommend", {"history": ["no such title at all"]}, None, 422, "unprocessable"),
    ("POST", "/v1/chat/completions", {"messages": []}, None, 422, "invalid_field"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "system", "content": "x"}]}, None, 422, "invalid_field"),
    ("POST", "/v1/chat/completions", {}, None, 422, "missing_field"),
    ("POST", "/nope", {"history": ["49"]}, None, 404, "not_found"),
    ("GET", "/nope", None, None, 404, "not_found"),
    ("GET", "/recommend", None, None, 405, "method_not_allowed"),
])
def test_invalid_requests(server, method, path, body, raw, status, code):
    got_status, out = call(server, method, path, body=body, raw=raw)
    assert got_status == status, out
    assert out["error"]["code"] == code and out["error"]["message"]


def test_oversized_body_413(server):
    big = json.dumps({"history": ["49"] * 20_000}).encode()
    assert len(big) > 64 * 1024
    status, out = call(server, "POST", "/recommend", raw=big)
    assert status == 413 and "limit" in out["error"]["message"]
    assert call(server, "GET", "/health")[0] == 200  # still serving
