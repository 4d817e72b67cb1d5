"""`Recommender`: the Python API over a model bundle (model + tokenizer + SidMap + catalogue).

Work is split so a server can batch it: `prepare()` resolves a history and renders its prompt (no lock,
any thread), `run()` decodes many prepared requests in one constrained beam search under the model lock.
`recommend()` / `recommend_batch()` / `chat()` do both for library and CLI use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmrec.bundle import DEFAULT_GENERATION
from llmrec.data.records import Item
from llmrec.decode import GenerativeRecommender
from llmrec.io import LlmrecError
from llmrec.llm.sid_tokens import check_sid_map
from llmrec.serve.chat import chat_reply
from llmrec.serve.resolve import Match, TitleResolver, normalize
from llmrec.serve.sampling import sample_lists
from llmrec.serve.types import MAX_K, ChatReply, Recommendation, RecRequest
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)


class Recommender:
    """Recommend from a history of item ids or titles, or from a chat message.

    Build with `Recommender.from_pretrained(bundle_run_or_model_folder_or_repo_id)`, or directly from
    objects (model, tokenizer, sid_map, items). Decoding is serialised by `lock`, so one instance can be
    shared between threads (the HTTP server does); title resolution and prompt rendering are not.
    A list never names one title twice, and `exclude_seen` also excludes items titled like a history item.
    """

    def __init__(self, model, tokenizer, sid_map: SidMap, items: Mapping[str, Item], *,
                 config: Mapping[str, Any] | None = None, source: str | None = None, name: str | None = None,
                 use_embeddings: bool = True):
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
        self.behaviors: list[str] = list(self.config.get("behaviors") or [])
        self.source = source
        self.name = name or self.config.get("name") or "llmrec"
        # the one way to prompt and decode (the prompt format the model was trained with, the trie)
        self.engine = GenerativeRecommender(model, tokenizer, sid_map, self.items,
                                            max_history=self.generation.get("max_history"),
                                            template_index=self.generation.get("template_index", 0),
                                            num_beams=int(self.generation.get("num_beams") or 20))
        self.trie = self.engine.trie
        self.resolver = TitleResolver({k: v for k, v in self.items.items() if k in sid_map},
                                      use_embeddings=use_embeddings)
        groups = [ids for ids in self.resolver.by_norm.values() if len(ids) > 1]
        self._dup_extra = sum(len(g) - 1 for g in groups)
        self._dup_tag: dict[str, str] = {}
        for g in groups:
            self._dup_tag.update(self._tell_apart(g))
        self.lock = threading.RLock()

    # ---- loading / saving --------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path, device: str | None = None, *,
                        revision: str | None = None, token: str | None = None, endpoint: str | None = None,
                        use_embeddings: bool = True) -> Recommender:
        """Load a bundle folder, a run folder (its newest model), a model folder inside a run, or a Hub repo
        (USER/NAME or hf://USER/NAME, downloaded with snapshot_download). Safetensors only; the model,
        tokenizer, sid_map.json and catalogue are checked to belong together."""
        from llmrec.bundle import load_model_dir, locate_model

        src = locate_model(path_or_repo_id, revision=revision, token=token, endpoint=endpoint)
        model, tokenizer, sid_map = load_model_dir(src.folder, src.sid_map, device=device)
        return cls(model, tokenizer, sid_map, src.items, config=src.config, source=src.kind, name=src.name,
                   use_embeddings=use_embeddings)

    def save_pretrained(self, out_dir: str | Path, *, merge: bool | None = None, metrics: list[dict] | None = None,
                        data_manifest: Mapping[str, Any] | None = None, repo_id: str | None = None,
                        replace: bool = True) -> Path:
        """Write a reloadable bundle (see llmrec.bundle.save_bundle); an existing non-bundle folder is refused."""
        from llmrec.bundle import save_bundle

        with self.lock:
            return save_bundle(out_dir, items=self.items, model=self.model, tokenizer=self.tokenizer,
                               sid_map=self.sid_map, merge=merge, generation=self.generation,
                               metrics=metrics if metrics is not None else self.config.get("metrics"),
                               data_manifest=data_manifest if data_manifest is not None else self.config.get("data"),
                               name=Path(out_dir).name, base=self.config.get("base"), repo_id=repo_id,
                               behaviors=self.behaviors, model_ranker=self.config.get("model_ranker"),
                               replace=replace)

    # ---- naming ------------------------------------------------------------------------------
    def _tell_apart(self, ids: list[str]) -> dict[str, str]:
        brands = [self.items[i].brand.strip() for i in ids]
        if all(brands) and len(set(brands)) == len(brands):
            return {i: f"brand {b}" for i, b in zip(ids, brands)}
        return {i: f"item {i}" for i in ids}

    def display_name(self, item_id: str) -> str:
        """The item's title, with its brand or id when other catalogue items share that title."""
        base = self.items[item_id].display_name
        tag = self._dup_tag.get(item_id)
        return f"{base.rstrip().rstrip('.')} ({tag})" if tag else base

    def title_key(self, item_id: str) -> str:
        it = self.items.get(item_id)
        return normalize(it.title) if it is not None and it.title.strip() else f"id:{item_id}"

    # ---- checks ------------------------------------------------------------------------------
    def check_behavior(self, behavior: str | None) -> None:
        if behavior is None:
            return
        if not self.behaviors:
            raise LlmrecError(f"unknown behavior {behavior!r}: this model was trained without behaviours; leave "
                              "behavior out.")
        if behavior not in self.behaviors:
            raise LlmrecError(f"unknown behavior {behavior!r}: this model knows {', '.join(self.behaviors)}.")

    def max_k(self) -> int:
        return min(MAX_K, len(self.sid_map))

    def check_k(self, k: Any, lists: int = 1) -> int:
        hi = self.max_k()
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k * lists <= hi:
            what = f"k={k!r}" if lists == 1 else f"k={k!r} x n={lists}"
            raise LlmrecError(f"{what} out of range: expected 1..{hi} items in all.")
        return k

    # ---- preparing ---------------------------------------------------------------------------
    def resolve_history(self, history: Sequence[str], kind: str = "auto") -> list[Match]:
        """Item ids stay as they are; titles are resolved (exact, fuzzy, truncated); unknown -> LlmrecError.
        `kind='id'` accepts ids only (an unknown id is never looked up as a title)."""
        if isinstance(history, str):
            raise LlmrecError("history must be a list of item ids or titles, not one string.")
        out = []
        for h in history:
            if not isinstance(h, str) or not h.strip():
                raise LlmrecError(f"history entry {h!r}: expected a non-empty item id or title string.")
            m = self.resolver.resolve(h, kind=kind)
            if m.item_id not in self.sid_map:
                raise LlmrecError(f"item {m.item_id!r} has no Semantic ID in this model's SidMap.")
            out.append(m)
        return out

    def prompt(self, history_ids: Sequence[str], behavior: str | None = None) -> str:
        """The rendered prompt for a history: the model's seqrec prompt, or the behavior_item task."""
        return self.engine.prompt(history_ids, behavior)

    def prepare(self, history: Sequence[str], *, k: int = 10, behavior: str | None = None, exclude_seen: bool = True,
                kind: str = "auto", lists: int = 1, temperature: float | None = None, top_p: float | None = None,
                seed: int | None = None) -> RecRequest:
        """Resolve, check and render one request (no lock taken)."""
        self.check_k(k, lists)
        self.check_behavior(behavior)
        ids = [m.item_id for m in self.resolve_history(history, kind=kind)]
        if not ids:
            raise LlmrecError("history is empty: give at least one item id or title.")
        exclude = None
        if exclude_seen:
            exclude = {j for i in ids for j in self.resolver.same_title(i)} | set(ids)
            if len(self.sid_map) - len(exclude) < k * lists:
                raise LlmrecError(f"k={k * lists} is more than the catalogue items left after excluding the history.")
        return RecRequest(history=ids, prompt=self.prompt(ids, behavior), k=k, behavior=behavior, exclude=exclude,
                          lists=lists, temperature=temperature, top_p=top_p, seed=seed)

    # ---- decoding ----------------------------------------------------------------------------
    def _beams(self, need: int) -> int:
        return max(need, int(self.generation.get("num_beams") or need))

    def run(self, requests: Sequence[RecRequest]) -> list[list[list[Recommendation]]]:
        """Decode prepared requests: beam-search ones in one batched call per beam width, sampling ones
        each on its own; per request, `lists` lists of up to k items with distinct titles."""
        out: list[list[list[Recommendation]] | None] = [None] * len(requests)
        groups: dict[int, list[int]] = {}
        for j, r in enumerate(requests):
            if not r.sampling:
                need = r.k * r.lists + min(self._dup_extra, r.k * r.lists)
                groups.setdefault(self._beams(min(need, self.max_k())), []).append(j)
        for beams, idx in groups.items():
            k_dec = min(beams, max(r.k * r.lists + self._dup_extra for r in (requests[j] for j in idx)))
            with self.lock:
                rows = self.engine.recommend_prompts([requests[j].prompt for j in idx], k=k_dec, num_beams=beams,
                                                     exclude=[requests[j].exclude for j in idx],
                                                     batch_size=max(16, len(idx)))
            for j, row in zip(idx, rows):
                out[j] = self._split(requests[j], self._distinct(row))
        for j, r in enumerate(requests):
            if r.sampling:
                with self.lock:
                    drawn = sample_lists(self.model, self.tokenizer, self.trie, r.prompt, k=r.k, lists=r.lists,
                                         temperature=r.temperature or 1.0, top_p=r.top_p or 1.0, seed=r.seed,
                                         exclude=r.exclude, same=self.title_key)
                out[j] = [[self._rec(i, s) for i, s in lst] for lst in drawn]
        return out  # type: ignore[return-value]

    def _distinct(self, row: list[tuple[str, float]]) -> list[tuple[str, float]]:
        seen: set[str] = set()
        keep = []
        for i, s in row:
            key = self.title_key(i)
            if key not in seen:
                seen.add(key)
                keep.append((i, s))
        return keep

    def _rec(self, item_id: str, score: float) -> Recommendation:
        return Recommendation(item_id=item_id, title=self.display_name(item_id), score=float(score),
                              sid=self.sid_map.sid_string(item_id))

    def _split(self, r: RecRequest, row: list[tuple[str, float]]) -> list[list[Recommendation]]:
        recs = [self._rec(i, s) for i, s in row[:r.k * r.lists]]
        return [recs[n * r.k:(n + 1) * r.k] for n in range(r.lists)]

    # ---- convenience -------------------------------------------------------------------------
    def recommend(self, history: Sequence[str], behavior: str | None = None, k: int = 10,
                  exclude_seen: bool = True, kind: str = "auto") -> list[Recommendation]:
        """Top-k items after `history` (item ids or titles, oldest first), best first."""
        return self.recommend_batch([history], behavior=behavior, k=k, exclude_seen=exclude_seen, kind=kind)[0]

    def recommend_batch(self, histories: Sequence[Sequence[str]], behavior: str | None = None, k: int = 10,
                        exclude_seen: bool = True, kind: str = "auto") -> list[list[Recommendation]]:
        """`recommend` for several histories in one batched beam search."""
        reqs = [self.prepare(h, k=k, behavior=behavior, exclude_seen=exclude_seen, kind=kind) for h in histories]
        return [lists[0] for lists in self.run(reqs)]

    def chat(self, message: str, history: Sequence[str] | None = None, show_sids: bool = False,
             k: int = 5) -> ChatReply:
        """Answer a free-text message: match the items it mentions, recommend what comes next."""
        return chat_reply(self, message, history=history, show_sids=show_sids, k=k)
