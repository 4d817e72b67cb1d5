"""The corpus builder: rows per split and task from the prepared data and the SidMap.

Task builders are registered by the tasks they produce (TASK_BUILDERS); a family of new tasks needs
its templates (prompts/*.yaml) and one builder."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from datasets import Dataset, DatasetDict, Features, List, Value
from tqdm.auto import tqdm

from llmrec.corpus.config import CorpusConfig
from llmrec.corpus.render import plain_completion, plain_prompt
from llmrec.corpus.tasks import (
    behavior_history,
    clip_text,
    completion_messages,
    item_field,
    make_messages,
    seqrec_messages,
    seqrec_session,
    seqrec_stream,
    sid_history,
    title_history,
)
from llmrec.corpus.templates import ALL_TASKS, PromptLibrary, choose_index
from llmrec.data.records import Interaction, Split
from llmrec.data.store import PreparedData
from llmrec.io import LlmrecError
from llmrec.registry import Registry
from llmrec.sid.sidmap import SidMap

SPLITS = ("train", "valid", "test")


def _features(conversational: bool) -> Features:
    msg = List({"role": Value("string"), "content": Value("string")})
    text = msg if conversational else Value("string")
    return Features({"prompt": text, "completion": text, "task": Value("string"),
                     "target": Value("string"), "user": Value("string")})


class CorpusBuilder:
    """Accumulates rows per split and task, and counts what was skipped and why."""

    def __init__(self, prepared: PreparedData, sid_map: SidMap, config: CorpusConfig,
                 library: PromptLibrary, conversational: bool):
        self.items = prepared.items
        self.split: Split = prepared.split
        self.sid_map = sid_map
        self.cfg = config
        self.lib = library
        self.conversational = conversational
        self.rows: dict[str, dict[str, list[dict]]] = {s: defaultdict(list) for s in SPLITS}
        self.skipped: dict[str, Counter] = defaultdict(Counter)

    # -- helpers ------------------------------------------------------------------------------
    def _index(self, task: str, key: str, fixed: int | None = None) -> int:
        if fixed is not None:
            return fixed
        if not self.cfg.paraphrases:
            return 0
        return choose_index(self.cfg.seed, task, key, len(self.lib[task]))

    def add(self, split: str, task: str, messages: list[dict], answer: str | list[dict], target: str,
            user: str = "") -> None:
        """One row; `answer` is the assistant text, or the completion messages of a multi-turn row."""
        completion = completion_messages(answer) if isinstance(answer, str) else answer
        if self.conversational:
            row = {"prompt": messages, "completion": completion}
        else:
            row = {"prompt": plain_prompt(messages), "completion": plain_completion(completion)}
        row.update(task=task, target=str(target), user=str(user))
        self.rows[split][task].append(row)

    def msgs(self, task: str, fields_: dict[str, Any], key: str, fixed: int | None = None) -> list[dict]:
        return make_messages(task, fields_, library=self.lib, template_index=self._index(task, key, fixed))

    def has_sids(self, task: str, ids: Iterable[str]) -> bool:
        if all(i in self.sid_map for i in ids):
            return True
        self.skipped[task]["item_without_sid"] += 1
        return False

    def title(self, item_id: str) -> str:
        return clip_text(item_field(self.items.get(item_id), self.cfg.title_field), self.cfg.max_title_chars)

    def description(self, item_id: str) -> str:
        return clip_text(item_field(self.items.get(item_id), self.cfg.description_field),
                         self.cfg.max_description_chars)

    # -- sequence tasks -----------------------------------------------------------------------
    def seqrec_train(self, tasks: list[str]) -> None:
        examples = self.split.train_examples(max_history=self.cfg.max_history, min_history=self.cfg.min_history)
        if self.cfg.include_valid_in_train:
            examples = examples + list(self.split.valid)
        per_user: Counter = Counter()
        fusion_h = self.cfg.fusion_max_history
        for ex in tqdm(examples, desc="corpus: sequence tasks", disable=None, leave=False):
            n = per_user[ex.user]
            per_user[ex.user] += 1
            key = f"{ex.user}|{n}|{ex.target}"
            ids = ex.history + [ex.target]
            if not self.has_sids("seqrec", ids):
                continue
            if "seqrec" in tasks and self.cfg.seqrec_format == "window":
                idx = self._index("seqrec", key)
                m = seqrec_messages(ex.history, self.sid_map, self.items, template_index=idx,
                                    max_history=self.cfg.max_history, library=self.lib)
                self.add("train", "seqrec", m, self.sid_map.sid_string(ex.target), ex.target, ex.user)
                for c, hist_c in enumerate(_crops(ex.history, self.cfg.seqrec_crops, self.cfg.seed, key)):
                    m = seqrec_messages(hist_c, self.sid_map, self.items,
                                        template_index=self._index("seqrec", f"{key}|crop{c}"), library=self.lib)
                    self.add("train", "seqrec", m, self.sid_map.sid_string(ex.target), ex.target, ex.user)
            hist = ex.history[-fusion_h:] if fusion_h else ex.history
            if "fusion_sid2title" in tasks:
                t = self.title(ex.target)
                if t:
                    m = self.msgs("fusion_sid2title", {"history": sid_history(hist, self.sid_map)}, key)
                    self.add("train", "fusion_sid2title", m, t, ex.target, ex.user)
                else:
                    self.skipped["fusion_sid2title"]["no_title"] += 1
            if "fusion_title2sid" in tasks:
                if all(self.title(i) for i in hist):
                    h = title_history(hist, self.items, self.cfg.title_field, self.cfg.max_title_chars)
                    m = self.msgs("fusion_title2sid", {"history": h}, key)
                    self.add("train", "fusion_title2sid", m, self.sid_map.sid_string(ex.target), ex.target, ex.user)
                else:
                    self.skipped["fusion_title2sid"]["no_title"] += 1

    def seqrec_sequences(self) -> None:
        """One `seqrec` row per training sequence (chunks of max_history + 1 items, consecutive chunks
        sharing one item), in the `session` or `stream` format: the first item in the user turn and
        every later item trained, so each training target is trained once per copy (`repeats.seqrec`);
        `seqrec_crops` adds rows starting at a later item of the chunk (seeded). Only training
        events are used (plus the validation target with include_valid_in_train); test targets never
        appear."""
        session = self.cfg.seqrec_format == "session"
        if session and not self.conversational:
            raise LlmrecError("seqrec_format: session needs a tokenizer with a chat template (multi-turn rows "
                              "trained with assistant_only_loss); use seqrec_format: stream or window for plain "
                              "models")
        seqs = self.split.train_items()
        if self.cfg.include_valid_in_train:
            for ex in self.split.valid:
                seqs.setdefault(ex.user, list(ex.history)).append(ex.target)
        size = self.cfg.max_history + 1
        copies = self.cfg.repeats.get("seqrec", 1)
        for user, seq in tqdm(seqs.items(), desc="corpus: seqrec sequences", disable=None, leave=False):
            if len(seq) <= self.cfg.min_history:
                continue
            for start in range(0, len(seq) - 1, size - 1):
                chunk = seq[start:start + size]
                if len(chunk) < 2 or not self.has_sids("seqrec", chunk):
                    continue
                build = seqrec_session if session else seqrec_stream
                base = f"{user}|{self.cfg.seqrec_format}|{start}"
                for copy in range(copies):  # each copy draws its own paraphrase
                    key = base + (f"|{copy}" if copy else "")
                    prompt, rest = build(chunk, self.sid_map, template_index=self._index("seqrec", key),
                                         library=self.lib)
                    self.add("train", "seqrec", prompt, rest, chunk[-1], user)
                # crops: later starts of the chunk, so the first steps after them are learnt from
                # one or a few recent items (the item-to-item transitions, without the older context)
                for c, part in enumerate(_crops(chunk[:-1], self.cfg.seqrec_crops, self.cfg.seed, base)):
                    prompt, rest = build(part + [chunk[-1]], self.sid_map,
                                         template_index=self._index("seqrec", f"{base}|crop{c}"), library=self.lib)
                    self.add("train", "seqrec", prompt, rest, chunk[-1], user)

    # -- item tasks ---------------------------------------------------------------------------
    def item_tasks(self, tasks: list[str], split: str = "train", item_ids: list[str] | None = None,
                   fixed: int | None = None) -> None:
        wanted = [t for t in tasks if t.startswith(("item2sid", "sid2item"))]
        if not wanted:
            return
        ids = item_ids if item_ids is not None else self.sid_map.item_ids
        for item_id in ids:
            if item_id not in self.items:
                for t in wanted:
                    self.skipped[t]["not_in_catalogue"] += 1
                continue
            sid, title, desc = self.sid_map.sid_string(item_id), self.title(item_id), self.description(item_id)
            need = {"item2sid_title": {"title": title}, "item2sid_description": {"description": desc},
                    "item2sid_full": {"title": title, "description": desc},
                    "sid2item_title": {"title": title}, "sid2item_description": {"description": desc}}
            for t in wanted:
                if not all(need[t].values()):
                    self.skipped[t]["no_" + "_".join(k for k, v in need[t].items() if not v)] += 1
                    continue
                copies = max(1, int(self.cfg.repeats.get(t, 1))) if split == "train" else 1
                for copy in range(copies):
                    key = f"item|{item_id}" if copy == 0 else f"item|{item_id}|{copy}"
                    if t.startswith("item2sid"):
                        self.add(split, t, self.msgs(t, need[t], key, fixed), sid, item_id)
                    else:
                        answer = title if t == "sid2item_title" else desc
                        self.add(split, t, self.msgs(t, {"sid": sid}, key, fixed), answer, item_id)

    # -- behavior tasks -----------------------------------------------------------------------
    def behavior_labeler(self) -> Callable[[Interaction], str] | None:
        events = [x for seq in self.split.train.values() for x in seq]
        if len({x.behavior for x in events}) > 1:
            return lambda x: x.behavior
        if self.cfg.rating_as_behavior and events and all(x.rating is not None for x in events):
            return lambda x: f"rating_{round(float(x.rating))}"
        return None

    def target_behaviors(self, labels: Counter) -> list[str]:
        if self.cfg.target_behaviors:
            return list(self.cfg.target_behaviors)
        for strongest in ("buy", "liked"):
            if strongest in labels:
                return [strongest]
        rated = sorted((lbl for lbl in labels if re.fullmatch(r"rating_\d+", lbl)), key=lambda s: int(s[7:]))
        if rated:
            return [rated[-1]]
        return [min(labels, key=lambda lbl: (labels[lbl], lbl))]

    def behavior_tasks(self, tasks: list[str]) -> dict[str, Any]:
        wanted = [t for t in tasks if t.startswith("behavior_")]
        if not wanted:
            return {}
        label = self.behavior_labeler()
        if label is None:
            for t in wanted:
                self.skipped[t]["single_behavior_dataset"] += 1
            return {}
        seqs = {u: [x for x in seq] for u, seq in self.split.train.items()}
        labels = Counter(label(x) for seq in seqs.values() for x in seq)
        targets = set(self.target_behaviors(labels))
        options = ", ".join(self.lib.behavior_name(b) for b in sorted(labels))
        H, lo_min = self.cfg.max_history, self.cfg.min_history
        for user, seq in tqdm(seqs.items(), desc="corpus: behavior tasks", disable=None, leave=False):
            labs = [label(x) for x in seq]
            for t in range(lo_min, len(seq)):
                lo = max(0, t - H)
                hist, hlabs, tgt = [x.item for x in seq[lo:t]], labs[lo:t], seq[t].item
                key = f"{user}|{t}"
                if not self.has_sids("behavior", hist + [tgt]):
                    continue
                bh = behavior_history(hist, hlabs, self.sid_map, self.lib)
                if "behavior_target" in wanted and labs[t] in targets:
                    m = self.msgs("behavior_target", {"history": bh,
                                                      "target_behavior": self.lib.behavior_name(labs[t])}, key)
                    self.add("train", "behavior_target", m, self.sid_map.sid_string(tgt), tgt, user)
                if "behavior_next" in wanted:
                    m = self.msgs("behavior_next", {"history": bh, "sid": self.sid_map.sid_string(tgt),
                                                    "behaviors": options}, key)
                    self.add("train", "behavior_next", m, self.lib.behavior_name(labs[t]), labs[t], user)
            if "behavior_item" in wanted:
                by_b: dict[str, list[str]] = defaultdict(list)
                for x, lab in zip(seq, labs):
                    by_b[lab].append(x.item)
                for lab, ids in by_b.items():
                    for j in range(lo_min, len(ids)):
                        hist, tgt = ids[max(0, j - H):j], ids[j]
                        if not self.has_sids("behavior_item", hist + [tgt]):
                            continue
                        m = self.msgs("behavior_item", {"history": sid_history(hist, self.sid_map),
                                                        "target_behavior": self.lib.behavior_name(lab)},
                                      f"{user}|{lab}|{j}")
                        self.add("train", "behavior_item", m, self.sid_map.sid_string(tgt), tgt, user)
        return {"labels": dict(sorted(labels.items())), "target_behaviors": sorted(targets)}

    # -- held-out ------------------------------------------------------------------------------
    def heldout(self, tasks: list[str]) -> None:
        fixed = self.cfg.eval_template_index if self.cfg.paraphrases else 0
        for split_name, examples in (("valid", self.split.valid), ("test", self.split.test)):
            if self.cfg.eval_max_examples is not None:
                examples = _sample(examples, self.cfg.eval_max_examples, self.cfg.seed, split_name)
            for ex in examples:
                if not ex.history:
                    self.skipped[f"seqrec_{split_name}"]["empty_history"] += 1
                    continue
                hist = ex.history[-self.cfg.max_history:] if self.cfg.max_history else ex.history
                if not self.has_sids(f"seqrec_{split_name}", hist + [ex.target]):
                    continue
                key = f"{ex.user}|{split_name}"
                index = self._index("seqrec", key, fixed)
                if self.cfg.seqrec_format == "stream":
                    # the row is the whole stream (its loss: every item after the first, the held-out
                    # target last), as training rows are; rankers prompt with seqrec_messages
                    prompt, rest = seqrec_stream(hist + [ex.target], self.sid_map, template_index=index,
                                                 library=self.lib)
                    self.add(split_name, "seqrec", prompt, rest, ex.target, ex.user)
                    continue
                m = seqrec_messages(hist, self.sid_map, self.items, template_index=index,
                                    library=self.lib, prompt_format=self.cfg.seqrec_format)
                self.add(split_name, "seqrec", m, self.sid_map.sid_string(ex.target), ex.target, ex.user)
            if self.cfg.eval_translation_items > 0:
                sample = _sample(self.sid_map.item_ids, self.cfg.eval_translation_items, self.cfg.seed, "items")
                self.item_tasks([t for t in tasks if t in ("item2sid_title", "sid2item_title")],
                                split=split_name, item_ids=sample, fixed=0 if fixed is None else fixed)

    # -- output --------------------------------------------------------------------------------
    def dataset_dict(self) -> DatasetDict:
        feats = _features(self.conversational)
        out = {}
        for split in SPLITS:
            rows = []
            for task in ALL_TASKS:
                task_rows = self.rows[split].get(task, [])
                cap = self.cfg.caps.get(task) if split == "train" else None
                if cap is not None and len(task_rows) > cap:
                    self.skipped[task]["over_cap"] += len(task_rows) - cap
                    task_rows = _sample(task_rows, cap, self.cfg.seed, task)
                rows.extend(task_rows)
            out[split] = Dataset.from_dict({k: [r[k] for r in rows] for k in feats}, features=feats)
        return DatasetDict(out)


def _sample(seq: list, n: int, seed: int, salt: str) -> list:
    """Deterministic subsample of `n` elements, original order kept."""
    if n >= len(seq):
        return list(seq)
    rng = random.Random(f"{seed}|{salt}")
    return [seq[i] for i in sorted(rng.sample(range(len(seq)), n))]


def _crops(history: list[str], n: int, seed: int, salt: str) -> list[list[str]]:
    """`n` most-recent suffixes of `history`, lengths drawn uniformly from 1..len-1 (none when
    the history has a single item)."""
    if n <= 0 or len(history) < 2:
        return []
    rng = random.Random(f"{seed}|crop|{salt}")
    return [history[-rng.randint(1, len(history) - 1):] for _ in range(n)]




# name -> builder(builder, tasks) -> extra manifest info; `.tasks` lists the tasks it produces.
TASK_BUILDERS: Registry[Callable[[CorpusBuilder, list[str]], dict | None]] = Registry("corpus task builder")


def task_builder(name: str, tasks: Iterable[str]):
    """Register a builder of `tasks` (its templates must exist in the prompt library)."""
    def add(fn):
        fn.tasks = tuple(tasks)
        return TASK_BUILDERS.register(name)(fn)
    return add


@task_builder("1_sequence", ("seqrec", "fusion_sid2title", "fusion_title2sid"))
def _sequence_tasks(b: CorpusBuilder, tasks: list[str]) -> None:
    if b.cfg.seqrec_format != "window" and "seqrec" in tasks:
        b.seqrec_sequences()
    if b.cfg.seqrec_format == "window" or {"fusion_sid2title", "fusion_title2sid"} & set(tasks):
        b.seqrec_train(tasks)


@task_builder("2_item", ("item2sid_title", "item2sid_description", "item2sid_full", "sid2item_title",
                         "sid2item_description"))
def _item_tasks(b: CorpusBuilder, tasks: list[str]) -> None:
    b.item_tasks(tasks)


@task_builder("3_behavior", ("behavior_target", "behavior_item", "behavior_next"))
def _behavior_tasks(b: CorpusBuilder, tasks: list[str]) -> dict:
    return {"behaviors": b.behavior_tasks(tasks)}
