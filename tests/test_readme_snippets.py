"""Every shell and Python snippet of the README's "Using a model" section runs as written, in README order,
in a folder holding a demo-like run (`runs/demo`: data + grpo/model, the tiny fixture model over 80 real
Amazon Scientific items, whose titles the snippets use). `llmrec serve ... &` is started in the background
and waited for; the port is swapped for a free one."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_serve_fixture import build_recommender

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Using a model"


def readme_snippets() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    part = text[start:end if end != -1 else None]
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(bash|python)\n(.*?)```", part, re.DOTALL)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_dir(data_root, tmp_path_factory):
    from llmrec.data.records import Interaction, RecDataset, Split
    from llmrec.data.store import save_prepared
    from llmrec.llm import save_model

    rec = build_recommender(data_root)
    root = tmp_path_factory.mktemp("readme")
    run = root / "runs" / "demo"
    inter = [Interaction(user="u1", item=i, position=n) for n, i in enumerate(["49", "53", "12"])]
    ds = RecDataset(name="amazon18_scientific", items=rec.items, interactions=inter, source={"subset": "fixture"})
    save_prepared(run / "data", ds, Split(train={"u1": inter[:1]}, valid=[], test=[]))
    save_model(rec.model, rec.tokenizer, rec.sid_map, run / "grpo" / "model")
    return root


def test_readme_snippets_run(demo_dir):
    snippets = readme_snippets()
    assert {lang for lang, _ in snippets} == {"bash", "python"} and len(snippets) >= 4
    port = str(_free_port())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TOKENIZERS_PARALLELISM": "false"}
    background: list[subprocess.Popen] = []
    outputs = []
    try:
        for lang, code in snippets:
            code = code.replace("8000", port)
            if lang == "python":
                r = subprocess.run([sys.executable, "-c", code], check=False, cwd=demo_dir, env=env, capture_output=True,
                                   text=True, timeout=300)
                assert r.returncode == 0, f"python snippet failed:\n{code}\n{r.stderr[-3000:]}"
                outputs.append(r.stdout)
                continue
            for line in code.splitlines():
                line = line.split("  #")[0].strip()
                if not line:
                    continue
                if line.endswith("&"):
                    background.append(subprocess.Popen(["bash", "-c", f"exec {line[:-1]}"], cwd=demo_dir, env=env,
                                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                       start_new_session=True))
                    _wait_healthy(port, background[-1])
                    continue
                r = subprocess.run(["bash", "-c", line], check=False, cwd=demo_dir, env=env, capture_output=True, text=True,
                                   timeout=300)
                assert r.returncode == 0, f"shell snippet failed: {line}\n{r.stderr[-3000:]}"
                outputs.append(r.stdout)
    finally:
        for p in background:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=30)
    text = "\n".join(outputs)
    assert (demo_dir / "runs/demo/bundle/model.safetensors").exists()
    assert "I matched these catalogue items in your message: Wixey WR300 Digital Angle Gauge" in text  # chat
    assert "you might also like" in text
    assert '"status":"ok"' in text.replace(" ", "")


def _wait_healthy(port: str, proc: subprocess.Popen, limit: float = 180) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        assert proc.poll() is None, f"server exited: {proc.stderr.read().decode()[-3000:]}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("server not ready")
