"""Prompt templates: yaml files in `prompts/` (one per task family), several paraphrases per task.

A yaml file holds a `system` prompt and `tasks: {name: {placeholders: [...], paraphrases: [...]}}`
(optionally `behavior_names: {label: display}`). The default folder is the repository's `prompts/`;
a user folder (config `prompts_dir` or $LLMREC_PROMPTS) overrides it task by task; `prompts_dir` may
also name a set shipped inside it (`compact`). A trained model records its templates
(`PromptLibrary.to_dict`) and is prompted with them.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import string
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from llmrec.io import LlmrecError, sha256_json

# Task families (one yaml file each) and the tasks they contain.
TASK_FAMILIES: dict[str, list[str]] = {
    "seqrec": ["seqrec"],
    "item2sid": ["item2sid_title", "item2sid_description", "item2sid_full"],
    "sid2item": ["sid2item_title", "sid2item_description"],
    "fusion": ["fusion_sid2title", "fusion_title2sid"],
    "behavior": ["behavior_target", "behavior_item", "behavior_next"],
}
ALL_TASKS: list[str] = [t for tasks in TASK_FAMILIES.values() for t in tasks]


@dataclass(frozen=True)
class TaskTemplate:
    """One task's system prompt and paraphrases."""

    task: str
    system: str
    paraphrases: tuple[str, ...]
    placeholders: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.paraphrases)

    def choose(self, seed: int, key: str | None) -> int:
        """Deterministic paraphrase index for (seed, task, key); 0 when key is None."""
        return 0 if key is None else choose_index(seed, self.task, key, len(self.paraphrases))

    def render(self, index: int, **fields: Any) -> str:
        """Fill paraphrase `index` with `fields` (every placeholder must be given)."""
        if not 0 <= index < len(self.paraphrases):
            raise LlmrecError(f"{self.source}: task {self.task} has {len(self.paraphrases)} paraphrases; "
                              f"template index {index} is out of range.")
        missing = [p for p in self.placeholders if p not in fields]
        if missing:
            raise LlmrecError(f"task {self.task}: missing prompt fields {missing} (template {self.source}).")
        return self.paraphrases[index].format_map(fields)


@dataclass
class PromptLibrary:
    """All task templates plus behavior display names, loaded from one or two folders."""

    tasks: dict[str, TaskTemplate]
    behavior_names: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def __getitem__(self, task: str) -> TaskTemplate:
        try:
            return self.tasks[task]
        except KeyError:
            raise LlmrecError(f"no prompt template for task {task!r} in {self.sources}; "
                              f"known tasks: {sorted(self.tasks)}.") from None

    def __contains__(self, task: object) -> bool:
        return task in self.tasks

    def behavior_name(self, label: str) -> str:
        """How a raw behavior label (pv, buy, rated_5) is shown in prompts."""
        return self.behavior_names.get(label, label.replace("_", " "))

    @property
    def fingerprint(self) -> str:
        return sha256_json({"tasks": {k: [v.system, list(v.paraphrases)] for k, v in sorted(self.tasks.items())},
                            "behavior_names": self.behavior_names})[:16]

    def to_dict(self) -> dict[str, Any]:
        """The templates as plain data: SFT records them in the model's config.json, so the model is
        prompted with the templates it learnt whatever the shipped ones become."""
        return {"tasks": {k: {"system": v.system, "paraphrases": list(v.paraphrases),
                              "placeholders": list(v.placeholders)} for k, v in sorted(self.tasks.items())},
                "behavior_names": dict(self.behavior_names), "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> PromptLibrary:
        """The inverse of `to_dict`; `source` names where the record came from (for error messages)."""
        try:
            tasks = {str(k): TaskTemplate(task=str(k), system=str(v.get("system") or ""),
                                          paraphrases=tuple(v["paraphrases"]),
                                          placeholders=tuple(v.get("placeholders") or ()), source=source)
                     for k, v in data["tasks"].items()}
        except (KeyError, TypeError, AttributeError) as e:
            raise LlmrecError(f"{source}: malformed prompt-template record ({e}); expected "
                              "{tasks: {name: {system, paraphrases, placeholders}}}.") from None
        return cls(tasks=tasks, behavior_names=dict(data.get("behavior_names") or {}), sources=[source])


def choose_index(seed: int, task: str, key: str, n: int) -> int:
    """Stable index in [0, n) from sha256(seed, task, key) (Python's hash() is salted per process)."""
    digest = hashlib.sha256(f"{seed}\x1f{task}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def default_prompts_dir() -> Path:
    """The shipped templates: $LLMREC_PROMPTS, the checkout's prompts/, or installed package data."""
    env = os.environ.get("LLMREC_PROMPTS")
    candidates = [Path(env).expanduser()] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "prompts")
    try:
        candidates.append(Path(str(importlib.resources.files("llmrec") / "prompts")))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - odd installs
        pass
    candidates.append(Path(sys.prefix) / "share" / "llmrec" / "prompts")
    for cand in candidates:
        if cand.is_dir() and any(cand.glob("*.yaml")):
            return cand
    raise LlmrecError("prompt templates not found (looked in " + ", ".join(str(c) for c in candidates)
                      + "); set LLMREC_PROMPTS or the corpus config `prompts_dir` to a folder of *.yaml.")


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _read_folder(folder: Path) -> tuple[dict[str, TaskTemplate], dict[str, str]]:
    tasks: dict[str, TaskTemplate] = {}
    names: dict[str, str] = {}
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    if not files:
        raise LlmrecError(f"{folder}: no *.yaml prompt files.")
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise LlmrecError(f"{path}: malformed yaml ({e}).") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), dict):
            raise LlmrecError(f"{path}: expected a mapping with a `tasks:` section.")
        names.update({str(k): str(v) for k, v in (doc.get("behavior_names") or {}).items()})
        file_system = str(doc.get("system") or "").strip()
        for task, spec in doc["tasks"].items():
            spec = spec or {}
            paras = spec.get("paraphrases") or []
            if not paras or not all(isinstance(p, str) and p.strip() for p in paras):
                raise LlmrecError(f"{path}: task {task}: `paraphrases` must be a non-empty list of strings.")
            declared = set(spec.get("placeholders") or [])
            for i, p in enumerate(paras):
                used = _placeholders(p)
                if used != declared:
                    raise LlmrecError(f"{path}: task {task} paraphrase {i} uses placeholders {sorted(used)} "
                                      f"but the task declares {sorted(declared)}; make them match.")
            system = str(spec.get("system") or file_system).strip()
            tasks[str(task)] = TaskTemplate(task=str(task), system=system,
                                            paraphrases=tuple(p.strip() for p in paras),
                                            placeholders=tuple(sorted(declared)), source=str(path))
    return tasks, names


@lru_cache(maxsize=8)
def _load_cached(default_dir: str, user_dir: str | None, stamp: tuple) -> PromptLibrary:
    tasks, names = _read_folder(Path(default_dir))
    sources = [default_dir]
    if user_dir:
        if not Path(user_dir).is_dir():
            raise LlmrecError(f"prompts_dir {user_dir} is not a folder of *.yaml templates.")
        utasks, unames = _read_folder(Path(user_dir))
        tasks.update(utasks)
        names.update(unames)
        sources.append(user_dir)
    return PromptLibrary(tasks=tasks, behavior_names=names, sources=sources)


def _stamp(*folders: str | None) -> tuple:
    out = []
    for f in folders:
        if f:
            out.extend((str(p), p.stat().st_mtime_ns) for p in sorted(Path(f).glob("*.y*ml")))
    return tuple(out)


def resolve_prompts_dir(user_dir: str | Path, default: Path | None = None) -> Path:
    """A folder of *.yaml templates, or the name of a set shipped inside the templates folder
    (`compact`: one short paraphrase per task, for from-scratch models)."""
    path = Path(user_dir).expanduser()
    if path.is_dir():
        return path.resolve()
    default = default or default_prompts_dir()
    if len(path.parts) == 1 and (default / path).is_dir():
        return default / path
    sets = sorted(p.name for p in default.iterdir() if p.is_dir() and any(p.glob("*.yaml")))
    raise LlmrecError(f"prompts_dir {user_dir}: not a folder of *.yaml templates nor a shipped set "
                      f"(shipped: {', '.join(sets) or 'none'}).")


def load_templates(user_dir: str | Path | None = None) -> PromptLibrary:
    """Shipped templates, overridden task by task by the yaml files in `user_dir` (if given): a
    folder, or the name of a shipped set (`resolve_prompts_dir`)."""
    default = str(default_prompts_dir())
    user = str(resolve_prompts_dir(user_dir, Path(default))) if user_dir else None
    return _load_cached(default, user, _stamp(default, user))
