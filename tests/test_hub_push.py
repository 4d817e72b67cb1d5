"""`llmrec push` through huggingface_hub's real upload client against a fake Hub on 127.0.0.1.

The fake Hub implements only what HfApi.create_repo + upload_folder call (with hf_xet disabled):
POST /api/repos/create, /api/validate-yaml, /api/models/NS/NAME/preupload/REV (every file 'regular'),
and /api/models/NS/NAME/commit/REV (NDJSON with base64 file contents), writing files to disk.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_serve_fixture import build_recommender

TOKEN = "hf_fake_token_for_tests"


class FakeHub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        self.root = root
        self.repos: dict[str, dict] = {}
        self.calls: list[str] = []
        super().__init__(("127.0.0.1", 0), _HubHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _HubHandler(BaseHTTPRequestHandler):
    server: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _json(self, status: int, obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.calls.append(f"POST {self.path}")
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._json(401, {"error": "Invalid credentials"})
        if self.path == "/api/repos/create":
            req = json.loads(body)
            rid = f"{req['organization']}/{req['name']}"
            self.server.repos.setdefault(rid, {"private": req.get("visibility") == "private"})
            return self._json(200, {"url": f"{self.server.url}/{rid}", "name": rid})
        if self.path == "/api/validate-yaml":
            return self._json(200, {"errors": [], "warnings": []})
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit)/(\w+)", self.path)
        if not m or m.group(1) not in self.server.repos:
            return self._json(404, {"error": f"Repository not found: {self.path}"})
        rid, op = m.group(1), m.group(2)
        if op == "preupload":
            files = json.loads(body)["files"]
            return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files]})
        lines = [json.loads(x) for x in body.splitlines() if x.strip()]
        assert lines[0]["key"] == "header"
        for line in lines[1:]:
            if line["key"] != "file":
                return self._json(400, {"error": f"unsupported commit operation {line['key']}"})
            dest = self.server.root / rid / line["value"]["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(base64.b64decode(line["value"]["content"]))
        oid = hashlib.sha1(body).hexdigest()
        return self._json(200, {"commitUrl": f"{self.server.url}/{rid}/commit/{oid}", "commitOid": oid,
                                "pullRequestUrl": None})


@pytest.fixture(scope="module")
def rec(data_root):
    return build_recommender(data_root)


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    server = FakeHub(tmp_path / "hub")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # conftest sets offline; this test talks to 127.0.0.1
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # plain commit API, no xet storage protocol
    yield server
    server.shutdown()
    server.server_close()


def test_push_bundle_then_load_back(rec, hub, tmp_path):
    from llmrec.cli import main
    from llmrec.serve import Recommender

    bundle = rec.save_pretrained(tmp_path / "bundle")
    assert main(["push", "--bundle", str(bundle), "--repo-id", "alice/tiny-rec", "--private"]) == 0
    assert hub.repos == {"alice/tiny-rec": {"private": True}}
    assert any("/preupload/" in c for c in hub.calls) and any("/commit/" in c for c in hub.calls)
    pushed = hub.root / "alice/tiny-rec"
    local = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    remote = sorted(p.relative_to(pushed).as_posix() for p in pushed.rglob("*") if p.is_file())
    assert remote == local and "model.safetensors" in remote
    for rel in local:
        if rel != "README.md":
            assert (pushed / rel).read_bytes() == (bundle / rel).read_bytes(), rel
    assert 'Recommender.from_pretrained("alice/tiny-rec")' in (pushed / "README.md").read_text()
    back = Recommender.from_pretrained(pushed)
    hist = ["49", "53", "12"]
    want = [(r.item_id, round(r.score, 4)) for r in rec.recommend(hist, k=6)]
    assert [(r.item_id, round(r.score, 4)) for r in back.recommend(hist, k=6)] == want


def test_push_errors_are_clear(hub, tmp_path, monkeypatch):
    from llmrec.cli import main

    assert main(["push", "--bundle", str(tmp_path / "missing"), "--repo-id", "alice/x"]) == 1
    (tmp_path / "empty").mkdir()
    assert main(["push", "--bundle", str(tmp_path / "empty"), "--repo-id", "alice/x"]) == 1
    assert hub.repos == {}


def test_push_bad_token_reported(rec, hub, tmp_path, monkeypatch, capsys):
    from llmrec.cli import main

    bundle = rec.save_pretrained(tmp_path / "bundle")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert main(["push", "--bundle", str(bundle), "--repo-id", "alice/tiny-rec"]) == 1
    err = capsys.readouterr().err
    assert "HF_TOKEN" in err and "hf auth login" in err and "huggingface-cli" not in err


def test_lora_adapter_is_merged_into_bundle(rec, tmp_path):
    """A LoRA model (new SID rows trained via modules_to_save) whose base is not on the Hub is merged on save:
    the bundle holds full safetensors weights and recommends exactly like the adapter model."""
    import copy

    from peft import LoraConfig, get_peft_model

    from llmrec.serve import Recommender

    base = copy.deepcopy(rec.model)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                     modules_to_save=["embed_tokens", "lm_head"])
    peft_model = get_peft_model(base, cfg).eval()
    with_adapter = Recommender(peft_model, rec.tokenizer, rec.sid_map, rec.items, config=rec.config)
    hist = ["49", "53"]
    want = [(r.item_id, round(r.score, 3)) for r in with_adapter.recommend(hist, k=6)]
    assert want != [(r.item_id, round(r.score, 3)) for r in rec.recommend(hist, k=6)]  # the adapter matters
    bundle = with_adapter.save_pretrained(tmp_path / "merged")
    assert not (bundle / "adapter_config.json").exists() and (bundle / "model.safetensors").exists()
    cfg_json = json.loads((bundle / "llmrec_config.json").read_text())
    assert cfg_json["weights"].startswith("full")
    back = Recommender.from_pretrained(bundle)
    assert [(r.item_id, round(r.score, 3)) for r in back.recommend(hist, k=6)] == want


def test_bundle_from_run_has_card_metrics_and_provenance(rec, tmp_path):
    from llmrec.cli import main
    from llmrec.data.records import Interaction, RecDataset, Split
    from llmrec.data.store import save_prepared
    from llmrec.io import write_json
    from llmrec.llm import save_model
    from llmrec.serve import Recommender

    run = tmp_path / "runs" / "sci"
    inter = [Interaction(user="u1", item=i, position=n) for n, i in enumerate(["49", "53", "12"])]
    ds = RecDataset(name="amazon18_scientific", items=rec.items, interactions=inter,
                    source={"path": "amazon18_scientific", "sha256": {"Scientific.item.json": "abc123"}})
    save_prepared(run / "data", ds, Split(train={"u1": inter[:1]}, valid=[], test=[]))
    save_model(rec.model, rec.tokenizer, rec.sid_map, run / "sft" / "model")
    write_json(run / "eval" / "metrics.json", {
        "ranker": "llm-sft", "split": "test", "n_examples": 10, "ks": [1, 5], "valid_rate": 1.0,
        "metrics": {"HR@1": 0.1, "HR@5": 0.3, "NDCG@1": 0.1, "NDCG@5": 0.2, "MRR": 0.15}})
    out = tmp_path / "bundle"
    assert main(["bundle", "--run", str(run), "--out", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "| **llm-sft (this model)** | **0.1000** |" in card and "0.3000" in card  # metrics table
    assert "amazon18_scientific" in card and "abc123" in card  # data provenance
    cfg = json.loads((out / "llmrec_config.json").read_text())
    assert cfg["data"]["fingerprint"] and cfg["metrics"][0]["ranker"] == "llm-sft"
    back = Recommender.from_pretrained(out)
    # the same weights under the bundle's generation settings (a run bundle uses the defaults, 20 beams)
    same = Recommender(rec.model, rec.tokenizer, rec.sid_map, rec.items, config=back.config)
    assert [r.item_id for r in back.recommend(["49"], k=3)] == [r.item_id for r in same.recommend(["49"], k=3)]
