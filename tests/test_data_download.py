"""Downloads against a real http.server on 127.0.0.1: checksum, cache hit, mismatch, mirror via env."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import threading
import zipfile

import pytest

from llmrec.data.download import REGISTRY, download_amazon2018, download_movielens_100k, fetch
from llmrec.data.loaders import load_dataset
from llmrec.io import LlmrecError


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve tmp_path/www on 127.0.0.1; yields (base_url, folder, list of requested paths)."""
    www = tmp_path / "www"
    www.mkdir()
    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LLMREC_DOWNLOAD_BASE", raising=False)
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def _zip_movielens(data_root, dest):
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("u.data", "u.item", "u.user", "u.genre", "u.occupation"):
            zf.write(data_root / "movielens_100k" / name, f"ml-100k/{name}")
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def test_movielens_download_checksum_cache_and_mismatch(data_root, server, tmp_path, monkeypatch):
    base, www, hits = server
    sha = _zip_movielens(data_root, www / "ml-100k.zip")
    cached = tmp_path / "cache" / "downloads" / "ml-100k.zip"

    # our zip is not GroupLens's archive: the registry checksum refuses it and nothing stays cached
    with pytest.raises(LlmrecError, match="checksum mismatch.*deleted"):
        download_movielens_100k(base_url=base, progress=False)
    assert not cached.exists()
    assert not [p for p in cached.parent.iterdir()]  # no .part leftovers
    with pytest.raises(LlmrecError, match="checksum mismatch"):
        fetch(REGISTRY["ml-100k.zip"], base_url=base, sha256="0" * 64, progress=False)
    assert not cached.exists()

    folder = download_movielens_100k(base_url=base, sha256=sha, progress=False)
    assert cached.exists() and hashlib.sha256(cached.read_bytes()).hexdigest() == sha
    ds = load_dataset(str(folder))
    assert ds.counts() == {"users": 943, "items": 1682, "interactions": 100000}
    n = len(hits)

    # cache hit: no new request; the base URL can also come from the environment
    monkeypatch.setenv("LLMREC_DOWNLOAD_BASE", base)
    assert download_movielens_100k(sha256=sha, progress=False) == folder
    assert len(hits) == n

    # a corrupted cache entry is detected and fetched again
    cached.write_bytes(b"garbage")
    download_movielens_100k(sha256=sha, progress=False)
    assert len(hits) == n + 1 and hashlib.sha256(cached.read_bytes()).hexdigest() == sha


def test_download_errors_are_clear(server):
    base, _www, _hits = server
    with pytest.raises(LlmrecError, match="download of .*ml-100k.zip failed"):
        download_movielens_100k(base_url=base, progress=False)  # 404 on the mirror
    with pytest.raises(LlmrecError, match="category"):
        download_amazon2018("Industrial and Scientific", base_url=base)


def test_amazon2018_download_and_convert(server):
    base, www, hits = server
    with gzip.open(www / "Tiny_5.json.gz", "wt") as f:
        for u, a, t in (("U1", "A1", 1), ("U1", "A2", 2), ("U1", "A3", 3), ("U2", "A1", 5)):
            f.write(json.dumps({"reviewerID": u, "asin": a, "overall": 4.0, "unixReviewTime": t}) + "\n")
    with gzip.open(www / "meta_Tiny.json.gz", "wt") as f:
        for a in ("A1", "A2", "A3"):
            f.write(json.dumps({"asin": a, "title": f"Title {a}", "category": ["Tiny"]}) + "\n")
    folder = download_amazon2018("Tiny", base_url=base, progress=False)
    assert sorted(hits) == ["/Tiny_5.json.gz", "/meta_Tiny.json.gz"]
    ds = load_dataset(str(folder))
    assert ds.counts() == {"users": 2, "items": 3, "interactions": 4}
    assert ds.items["A2"].title == "Title A2" and ds.source["format"] == "amazon2018"
    assert (folder.parent.parent / "downloads" / "Tiny_5.json.gz.sha256").exists()
    download_amazon2018("Tiny", base_url=base, progress=False)
    assert len(hits) == 2  # cached
