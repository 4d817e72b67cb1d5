"""Shared builders for the artifact-safety tests (no tests here): toy datasets and runs, the CLI in
a real child process (for kill -9), folder snapshots and leftover temp folders."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def toy_dataset(name: str = "toy", n_items: int = 40, n_users: int = 30, events: int = 6, seed: int = 0,
                title: str = "Item"):
    """A small dataset with titles; `title`/`seed` make other catalogues and histories."""
    from llmrec.data.records import Interaction, Item, RecDataset

    rng = random.Random(seed)
    items = {str(i): Item(id=str(i), title=f"{title} {i}", description=f"{title} number {i}",
                          categories=["A" if i % 2 else "B"]) for i in range(n_items)}
    inter = [Interaction(user=f"u{u}", item=str(rng.randrange(n_items)), timestamp=float(1000 * u + k), position=k)
             for u in range(n_users) for k in range(events)]
    return RecDataset(name=name, items=items, interactions=inter, source={"synthetic": name, "seed": seed})


def make_run(root: Path, ds=None, *, sid: bool = True, corpus: bool = False) -> Path:
    """root/data (+ root/sid from `build_sids`, random vectors) (+ root/corpus) for `ds`."""
    from llmrec.data.splits import leave_one_out
    from llmrec.data.store import load_prepared, save_prepared

    ds = ds or toy_dataset()
    save_prepared(root / "data", ds, leave_one_out(ds, max_history=5))
    prepared = load_prepared(root / "data")
    if sid:
        from llmrec.sid.build import SidConfig, build_sids

        seed = int(ds.source.get("seed", 0))  # other data, other SIDs (random vectors follow the seed)
        sid_map = build_sids(prepared, SidConfig(source="random", levels=2, codebook_size=8, seed=seed),
                             out_dir=root / "sid")
        if corpus:
            from llmrec.corpus import build_corpus_with_manifest, save_corpus

            try:
                from llmrec.corpus.config import CorpusConfig
            except ImportError:  # before the config layer (old main, for checking the tests fail there)
                from llmrec.corpus.build import CorpusConfig

            rows, manifest = build_corpus_with_manifest(prepared, sid_map, CorpusConfig(
                tasks=["seqrec", "item2sid_title"], max_history=5))
            save_corpus(root / "corpus", rows, manifest)
    return root


def cli(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`llmrec ARGS` in a child process."""
    return subprocess.run([sys.executable, "-m", "llmrec", *args], check=False, env=ENV, cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout)


def python(code: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], check=False, env=ENV, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def kill_after(cmd: list[str], delay: float, until: Callable[[], bool] | None = None,
               poll: float = 0.01) -> int | None:
    """Start `cmd`, SIGKILL it `delay` seconds later (counted from when `until()` is first true, if
    given); returns its exit code when it finished first, else None (killed)."""
    proc = subprocess.Popen(cmd, env=ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if until is not None:
            while proc.poll() is None and not until():
                time.sleep(poll)
        end = time.monotonic() + delay
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(poll)
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def llmrec_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmrec", *args]


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder` (what 'intact' means)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Hidden temp entries (`.NAME.*.tmp`, `.NAME.old-*`) directly in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and
                  (p.name.endswith(".tmp") or ".old-" in p.name))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lcrec(folder: Path, ds=None) -> Path:
    """`ds` as an LC-Rec folder (X.inter.json + X.item.json), for `llmrec data prepare --dataset FOLDER`."""
    import json

    ds = ds or toy_dataset()
    folder.mkdir(parents=True, exist_ok=True)
    seqs: dict[str, list[str]] = {}
    for u, seq in ds.sequences().items():
        seqs[u] = [x.item for x in seq]
    (folder / "X.inter.json").write_text(json.dumps(seqs))
    (folder / "X.item.json").write_text(json.dumps({i: {"title": it.title, "description": it.description}
                                                    for i, it in ds.items.items()}))
    return folder
