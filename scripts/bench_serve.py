"""Benchmark `llmrec serve` under concurrent clients: latency, throughput, errors, connection resets.

Starts the server in a subprocess on a bundle (argument; default runs/demo/bundle if present, else a
bundle built once from the test fixture: the `tiny` model over the amazon18_scientific catalogue, in
/tmp/llmrec-bench-serve/), then drives `POST /recommend` and `POST /v1/chat/completions` with 1, 8
and 32 concurrent clients for `--seconds` each and 64 clients for `--long-seconds`. Each client
opens a fresh connection per request (the harder case for a server's accept path; `--keep-alive`
reuses one). Then it checks that a 4,000-character chat message does not hold up a concurrent
`/recommend`. Prints one JSON summary as its last line.

    flock /tmp/llmrec-heavy.lock .venv/bin/python scripts/bench_serve.py [BUNDLE] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESET_ERRORS = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.RemoteDisconnected)


def build_fixture_bundle(n_items: int) -> Path:
    """The test fixture's tiny model over the first n_items Scientific items, saved once as a bundle."""
    out = Path("/tmp/llmrec-bench-serve") / f"bundle-{n_items}"
    if (out / "llmrec_config.json").exists():
        return out
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from test_serve_fixture import build_recommender

    from llmrec.io import data_dir

    rec = build_recommender(data_dir(), n_items)
    rec.save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: dict | None, conn: http.client.HTTPConnection | None,
            timeout: float = 60.0) -> tuple[int, dict, http.client.HTTPConnection | None]:
    """One request; returns (status, payload, the connection to reuse or None)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    raw = r.read()
    try:
        payload = json.loads(raw or b"null")
    except ValueError:
        payload = {"raw": raw[:200].decode("utf-8", "replace")}
    return r.status, payload, c


def wait_ready(port: int, proc: subprocess.Popen, limit: float = 600.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before it was ready")
        try:
            status, _, c = request(port, "GET", "/health", None, None, timeout=5)
            c.close()
            if status == 200:
                return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("server not ready in time")


def drive(port: int, path: str, bodies: list[dict], clients: int, seconds: float, keep_alive: bool) -> dict:
    """`clients` threads sending requests back to back for `seconds`; latency and error counts."""
    lat: list[float] = []
    counts = {"ok": 0, "errors": 0, "resets": 0}
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(j: int) -> None:
        rng = random.Random(j)
        conn = None
        while time.perf_counter() < stop:
            body = rng.choice(bodies)
            t0 = time.perf_counter()
            kind, status = "ok", 200
            try:
                status, _, conn = request(port, "POST", path, body, conn if keep_alive else None)
                if status != 200:
                    kind = "errors"
            except RESET_ERRORS:
                kind, conn = "resets", None
            except OSError:  # refused, timed out
                kind, conn = "errors", None
            finally:
                if conn is not None and not keep_alive:
                    conn.close()
                    conn = None
            dt = time.perf_counter() - t0
            with lock:
                counts[kind] += 1
                if kind == "ok":
                    lat.append(dt)
                elif kind == "errors":
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
        if conn is not None:
            conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(j,), daemon=True) for j in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()

    def pct(q: float) -> float | None:
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

    return {"clients": clients, "seconds": round(wall, 1), "requests": counts["ok"],
            "req_per_s": round(counts["ok"] / wall, 2), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "errors": counts["errors"], "resets": counts["resets"], "error_statuses": statuses}


def long_chat_interference(port: int, model: str, rec_body: dict, titles: list[str]) -> dict:
    """/recommend latency alone, a 4,000-character chat alone, and /recommend while that chat runs."""
    filler = " and also "
    msg = "I have "
    for t in titles * 20:
        if len(msg) + len(t) + len(filler) > 3990:
            break
        msg += t + filler
    msg = msg[:4000]
    chat_body = {"model": model, "messages": [{"role": "user", "content": msg}]}

    def timed(path: str, body: dict) -> float:
        t0 = time.perf_counter()
        status, out, c = request(port, "POST", path, body, None, timeout=120)
        c.close()
        if status != 200:
            raise SystemExit(f"{path} answered {status}: {str(out)[:300]}")
        return time.perf_counter() - t0

    timed("/v1/chat/completions", chat_body)  # warm up (embedding index)
    rec_alone = statistics.median(timed("/recommend", rec_body) for _ in range(7))
    chat_alone = statistics.median(timed("/v1/chat/completions", chat_body) for _ in range(3))
    during = []
    for _ in range(3):
        t = threading.Thread(target=timed, args=("/v1/chat/completions", chat_body))
        t.start()
        time.sleep(min(0.05, chat_alone / 4))
        during.append(timed("/recommend", rec_body))
        t.join()
    rec_during = statistics.median(during)
    return {"message_chars": len(msg), "recommend_alone_ms": round(1000 * rec_alone, 1),
            "chat_4000_alone_ms": round(1000 * chat_alone, 1),
            "recommend_during_chat_ms": round(1000 * rec_during, 1),
            "delay_ms": round(1000 * (rec_during - rec_alone), 1),
            "delay_within_recommend_cost": rec_during - rec_alone <= rec_alone,
            "delay_within_chat_cost": rec_during - rec_alone <= chat_alone}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", nargs="?", default=None, help="bundle folder (default runs/demo/bundle or a fixture)")
    ap.add_argument("--items", type=int, default=100_000, help="catalogue size of the fixture bundle (default all)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=10.0, help="per client count")
    ap.add_argument("--long-clients", type=int, default=64)
    ap.add_argument("--long-seconds", type=float, default=30.0, help="0 skips the long run")
    ap.add_argument("--keep-alive", action="store_true", help="reuse one connection per client")
    ap.add_argument("--server-args", default="", help="extra `llmrec serve` arguments")
    ap.add_argument("--label", default="", help="free text stored in the JSON (e.g. old/new)")
    args = ap.parse_args()

    if args.bundle:
        bundle = Path(args.bundle)
    elif (ROOT / "runs/demo/bundle/llmrec_config.json").exists():
        bundle = ROOT / "runs/demo/bundle"
    else:
        bundle = build_fixture_bundle(args.items)
    items = [json.loads(x) for x in (bundle / "items.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    ids = [str(d["id"]) for d in items]
    titles = [d["title"].rstrip(". ") for d in items if d.get("title") and 15 <= len(d["title"]) <= 80]
    rng = random.Random(0)
    rec_bodies = [{"history": rng.sample(ids, 3), "k": 10} for _ in range(200)]

    port = free_port()
    cmd = [sys.executable, "-m", "llmrec", "serve", "--model", str(bundle), "--port", str(port),
           *args.server_args.split()]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    log_path = Path("/tmp/llmrec-bench-serve") / f"server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ready_s = wait_ready(port, proc)
        _, models, c = request(port, "GET", "/v1/models", None, None)
        c.close()
        model = models["data"][0]["id"]
        chat_bodies = [{"model": model, "messages": [{"role": "user", "content": f"I just bought {a} and {b}. "
                                                      "What else do I need?"}]}
                       for a, b in zip(rng.sample(titles, 100), rng.sample(titles, 100))]
        for b in chat_bodies[:2] + rec_bodies[:2]:  # warm up (embedding index, first forward)
            request(port, "POST", "/v1/chat/completions" if "messages" in b else "/recommend", b, None,
                    timeout=300)[2].close()
        results: dict[str, list[dict]] = {"recommend": [], "chat": []}
        plan = [(n, args.seconds) for n in args.clients]
        if args.long_seconds > 0:
            plan.append((args.long_clients, args.long_seconds))
        for name, path, bodies in (("recommend", "/recommend", rec_bodies),
                                   ("chat", "/v1/chat/completions", chat_bodies)):
            for n, secs in plan:
                r = drive(port, path, bodies, n, secs, args.keep_alive)
                results[name].append(r)
                print(f"{name:9s} clients={n:3d} {r['req_per_s']:7.2f} req/s  p50 {r['p50_ms']} ms  "
                      f"p99 {r['p99_ms']} ms  errors {r['errors']} resets {r['resets']} {r['error_statuses']}",
                      flush=True)
        inter = long_chat_interference(port, model, rec_bodies[0], titles)
        print(f"long chat: {inter}", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

    def speedup(rows: list[dict]) -> float | None:
        one = next((r for r in rows if r["clients"] == 1), None)
        top = next((r for r in rows if r["clients"] == max(args.clients)), None)
        return round(top["req_per_s"] / one["req_per_s"], 2) if one and top and one["req_per_s"] else None

    summary = {"bench": "serve", "label": args.label, "bundle": bundle.name, "items": len(ids),
               "keep_alive": args.keep_alive, "ready_s": round(ready_s, 1), "recommend": results["recommend"],
               "chat": results["chat"], "speedup_recommend": speedup(results["recommend"]),
               "speedup_chat": speedup(results["chat"]), "long_chat": inter}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
