"""Crash-safe resume: pick the newest *complete* Trainer checkpoint, say which were skipped and why.

Trainer writes `checkpoint-N/` file by file (weights, optimizer, scheduler, RNG, then
trainer_state.json) with no temp folder, and TRL/transformers give no hook to redirect that write
(`_save_checkpoint` builds the path itself and rotates old checkpoints in the same folder). So
checkpoints are not written atomically; instead a checkpoint counts only when every file resume
needs is there and whole, and a kill -9 during a save leaves the previous checkpoint as the one
resumed from. The name filter is transformers' own (`checkpoint-<digits>`), so `checkpoint-10.bak`
is never a candidate.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from llmrec.io import LlmrecError, safetensors_header

log = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")  # = transformers.trainer_utils._re_checkpoint
TRAINER_STATE = "trainer_state.json"
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def checkpoint_folder(output_dir: str | Path, step: int) -> Path:
    """The folder Trainer saves step `step` into (a TrainerCallback's on_save adds its files there)."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    return Path(output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"


@dataclass
class Candidate:
    path: Path
    step: int
    problem: str | None


def _torch_file_problem(path: Path) -> str | None:
    """torch.save writes a zip archive: a cut-off file has no end-of-archive record."""
    if not zipfile.is_zipfile(path):
        return f"{path.name} is incomplete or not a torch file (cut off while saving?)"
    return None


def _weights_problem(folder: Path) -> str | None:
    names = [n for n in WEIGHT_FILES if (folder / n).is_file()]
    for index in INDEX_FILES:
        if (folder / index).is_file():
            try:
                shards = set(json.loads((folder / index).read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError, AttributeError):
                return f"{index} is unreadable"
            missing = sorted(s for s in shards if not (folder / s).is_file())
            if missing:
                return f"weight shard(s) {', '.join(missing)} missing"
            names += sorted(shards)
    sharded_engine = any(folder.glob("global_step*")) or any(folder.glob("pytorch_model_fsdp*"))
    if not names and not sharded_engine:
        return "no model weights (model.safetensors / adapter_model.safetensors)"
    for name in names:
        path = folder / name
        if name.endswith(".safetensors"):
            try:
                safetensors_header(path)
            except LlmrecError:
                return f"{name} is cut off or corrupt (not a complete safetensors file)"
        elif name.endswith(".bin") and (problem := _torch_file_problem(path)):
            return problem
    return None


def checkpoint_problem(folder: str | Path, *, need_optimizer: bool = True) -> str | None:
    """Why Trainer could not resume from `folder`, or None when it is complete."""
    folder = Path(folder)
    state_path = folder / TRAINER_STATE
    if not state_path.is_file():
        return f"no {TRAINER_STATE} (the save did not finish)"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{TRAINER_STATE} is cut off or not JSON"
    m = CHECKPOINT_RE.match(folder.name)
    if m and isinstance(state, dict) and state.get("global_step") != int(m.group(1)):
        return f"{TRAINER_STATE} says step {state.get('global_step')}, the folder name says {m.group(1)}"
    if problem := _weights_problem(folder):
        return problem
    engine_optimizer = any(folder.glob("global_step*")) or any(folder.glob("optimizer_*"))
    if need_optimizer and not engine_optimizer:
        if not (folder / "optimizer.pt").is_file():
            return "no optimizer.pt (the save did not finish)"
        if problem := _torch_file_problem(folder / "optimizer.pt"):
            return problem
    for name in ("scheduler.pt", *sorted(p.name for p in folder.glob("rng_state*.pth"))):
        if (folder / name).is_file() and (problem := _torch_file_problem(folder / name)):
            return problem
    return None


def candidates(output_dir: str | Path) -> list[Candidate]:
    """checkpoint-N folders of `output_dir`, newest (highest N) first, each with its problem."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))]
    return [Candidate(p, step, checkpoint_problem(p)) for step, p in sorted(found, reverse=True)]


def newest_complete_checkpoint(output_dir: str | Path) -> str | None:
    """Path of the newest complete checkpoint in `output_dir` (None if there is none); every newer
    incomplete one is logged with the reason it was skipped."""
    skipped = []
    for c in candidates(output_dir):
        if c.problem is None:
            for s in skipped:
                log.warning("resume: skipping %s: %s; resuming from %s", s.path, s.problem, c.path.name)
            return str(c.path)
        skipped.append(c)
    for s in skipped:
        log.warning("resume: skipping %s: %s", s.path, s.problem)
    if skipped:
        log.warning("resume: no complete checkpoint in %s; starting from step 0", output_dir)
    return None


def resume_checkpoint(resume: bool | str | None, output_dir: str | Path) -> str | None:
    """What to pass as `resume_from_checkpoint`: None (start fresh), or a complete checkpoint.

    True: the newest complete checkpoint in `output_dir`. A path: that checkpoint, which must be
    complete (an LlmrecError names what is missing and the newest complete alternative); a path
    to a training output folder means its newest complete checkpoint.
    """
    if not resume:
        return None
    if resume is True:
        return newest_complete_checkpoint(output_dir)
    path = Path(resume)
    if not path.is_dir():
        raise LlmrecError(f"resume={resume}: no such checkpoint folder; pass resume=true for the newest "
                          f"complete checkpoint in {output_dir}.")
    if not (path / TRAINER_STATE).exists() and any(CHECKPOINT_RE.match(p.name) for p in path.iterdir()):
        return newest_complete_checkpoint(path)
    problem = checkpoint_problem(path)
    if problem:
        alt = newest_complete_checkpoint(path.parent) if CHECKPOINT_RE.match(path.name) else None
        hint = f"resume from {alt} instead" if alt else "start without resume"
        raise LlmrecError(f"cannot resume from {path}: {problem}. It was probably cut off by a killed run; {hint}.")
    return str(path)
