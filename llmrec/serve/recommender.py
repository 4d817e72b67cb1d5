"""`Recommender`: the Python API over a model bundle (model + tokenizer + SidMap + catalogue)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmrec.data.records import Item
from llmrec.io import LlmrecError
from llmrec.serve.resolve import Match, TitleResolver
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)

MAX_K = 100


@dataclass
class Recommendation:
    """One recommended item: id, title, score (sequence log-probability) and its Semantic ID."""

    item_id: str
    title: str
    score: float
    sid: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ChatReply:
    """A chat answer: the text shown to the user, the recommended items, and what was matched."""

    text: str
    items: list[Recommendation] = field(default_factory=list)
    resolved: list[Match] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"text": self.text, "items": [r.to_dict() for r in self.items],
                "resolved": [m.to_dict() for m in self.resolved]}


class Recommender:
    """Recommend from a history of item ids or titles, or from a chat message.

    Build with `Recommender.from_pretrained(folder_or_repo_id)`, or directly from objects
    (model, tokenizer, sid_map, items). Calls are serialised by an internal lock, so one instance can
    be shared between threads (the HTTP server does).
    """

    def __init__(self, model, tokenizer, sid_map: SidMap, items: Mapping[str, Item], *,
                 config: Mapping[str, Any] | None = None, source: str | None = None,
                 use_embeddings: bool = True):
        from llmrec.decode import SidTrie
        from llmrec.hub import DEFAULT_GENERATION
        from llmrec.llm.sid_tokens import check_sid_map

        check_sid_map(tokenizer, sid_map)
        missing = [i for i in sid_map.item_ids if i not in items]
        if missing:
            raise LlmrecError(f"catalogue lacks {len(missing)} items of the SidMap (e.g. {missing[:3]}).")
        self.model = model
        self.tokenizer = tokenizer
        self.sid_map = sid_map
        self.items = dict(items)
        self.config = dict(config or {})
        self.generation = {**DEFAULT_GENERATION, **dict(self.config.get("generation") or {})}
        self.source = source
        device = next(model.parameters()).device
        self.trie = SidTrie(sid_map, tokenizer, device=device)
        self.resolver = TitleResolver({k: v for k, v in self.items.items() if k in sid_map},
                                      use_embeddings=use_embeddings)
        self.lock = threading.RLock()

    # ---- loading / saving --------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path, device: str | None = None, *,
                        revision: str | None = None, token: str | None = None, endpoint: str | None = None,
                        use_embeddings: bool = True) -> Recommender:
        """Load a bundle folder or Hub repo (downloaded with snapshot_download, then the same path).

        Checks that model, tokenizer, sid_map.json and items.jsonl belong together (fingerprints).
        """
        from llmrec.hub import load_model_dir, read_bundle, resolve_bundle

        folder = resolve_bundle(path_or_repo_id, revision=revision, token=token, endpoint=endpoint)
        config, sid_map, items = read_bundle(folder)
        model, tokenizer, sid_map = load_model_dir(folder, sid_map, device=device)
        return cls(model, tokenizer, sid_map, items, config=config, source=str(path_or_repo_id),
                   use_embeddings=use_embeddings)

    def save_pretrained(self, out_dir: str | Path, *, merge: bool | None = None, metrics: list[dict] | None = None,
                        data_manifest: Mapping[str, Any] | None = None, repo_id: str | None = None) -> Path:
        """Write a reloadable bundle (see llmrec.hub.save_bundle)."""
        from llmrec.hub import save_bundle

        with self.lock:
            return save_bundle(out_dir, items=self.items, model=self.model, tokenizer=self.tokenizer,
                               sid_map=self.sid_map, merge=merge, generation=self.generation,
                               metrics=metrics if metrics is not None else self.config.get("metrics"),
                               data_manifest=data_manifest if data_manifest is not None else self.config.get("data"),
                               name=Path(out_dir).name, base=self.config.get("base"), repo_id=repo_id)

    # ---- recommending ------------------------------------------------------------------------
    def resolve_history(self, history: Sequence[str]) -> list[Match]:
        """Item ids stay as they are; titles are resolved (exact, then fuzzy); unknown -> LlmrecError."""
        if isinstance(history, str):
            raise LlmrecError("history must be a list of item ids or titles, not one string.")
        out = []
        for h in history:
            if not isinstance(h, str) or not h.strip():
                raise LlmrecError(f"history entry {h!r}: expected a non-empty item id or title string.")
            m = self.resolver.resolve(h)
            if m.item_id not in self.sid_map:
                raise LlmrecError(f"item {m.item_id!r} has no Semantic ID in this model's SidMap.")
            out.append(m)
        return out

    def prompt(self, history_ids: Sequence[str], behavior: str | None = None) -> str:
        """The rendered prompt for a history: the training seqrec prompt, or the behavior_item task."""
        from llmrec.corpus import load_templates, make_messages, render_prompt, seqrec_messages
        from llmrec.corpus.tasks import sid_history

        max_h = self.generation.get("max_history")
        tpl = self.generation.get("template_index", 0)
        if behavior is None:
            msgs = seqrec_messages(history_ids, self.sid_map, self.items, template_index=tpl, max_history=max_h)
        else:
            lib = load_templates()
            hist = list(history_ids)[-max_h:] if max_h else list(history_ids)
            msgs = make_messages("behavior_item", {"history": sid_history(hist, self.sid_map),
                                                   "target_behavior": lib.behavior_name(behavior)},
                                 library=lib, template_index=tpl)
        return render_prompt(self.tokenizer, msgs)

    def recommend(self, history: Sequence[str], behavior: str | None = None, k: int = 10,
                  exclude_seen: bool = True) -> list[Recommendation]:
        """Top-k items after `history` (item ids or titles, oldest first), best first."""
        return self.recommend_batch([history], behavior=behavior, k=k, exclude_seen=exclude_seen)[0]

    def recommend_batch(self, histories: Sequence[Sequence[str]], behavior: str | None = None, k: int = 10,
                        exclude_seen: bool = True) -> list[list[Recommendation]]:
        """`recommend` for several histories in one batched beam search."""
        from llmrec.decode import recommend as decode_recommend

        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= min(MAX_K, len(self.sid_map)):
            raise LlmrecError(f"k={k!r} out of range: expected an integer 1..{min(MAX_K, len(self.sid_map))}.")
        ids = [[m.item_id for m in self.resolve_history(h)] for h in histories]
        if any(not h for h in ids):
            raise LlmrecError("history is empty: give at least one item id or title.")
        if exclude_seen and any(len(self.sid_map) - len(set(h)) < k for h in ids):
            raise LlmrecError(f"k={k} is more than the catalogue items left after excluding the history.")
        prompts = [self.prompt(h, behavior) for h in ids]
        num_beams = max(k, int(self.generation.get("num_beams") or k))
        exclude = [set(h) for h in ids] if exclude_seen else None
        with self.lock:
            rows = decode_recommend(self.model, self.tokenizer, self.trie, prompts, k=k, num_beams=num_beams,
                                    exclude=exclude)
        return [[Recommendation(item_id=i, title=self.items[i].display_name, score=float(s),
                                sid=self.sid_map.sid_string(i)) for i, s in row] for row in rows]

    # ---- chat --------------------------------------------------------------------------------
    def chat(self, message: str, history: Sequence[str] | None = None, show_sids: bool = False,
             k: int = 5) -> ChatReply:
        """Answer a free-text message: match the items it mentions, recommend what comes next."""
        from llmrec.serve.chat import chat_reply

        return chat_reply(self, message, history=history, show_sids=show_sids, k=k)
