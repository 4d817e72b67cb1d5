"""Free text -> catalogue items: exact title, fuzzy title (rapidfuzz) and embedding search (faiss).

Two entry points:
- `TitleResolver.resolve(title)`: strict, for `recommend(history=[titles])`; an unknown title raises
  LlmrecError listing the closest catalogue titles.
- `TitleResolver.mentions(message)`: lenient, for chat; splits a message into candidate phrases
  ("I just bought a soldering station and flux" -> "soldering station", "flux"), also scans the
  whole message for full titles, and keeps matches above a confidence threshold.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from llmrec.data.records import Item
from llmrec.io import LlmrecError

log = logging.getLogger(__name__)

# Words that separate item mentions inside a chat message.
_SPLIT_RE = re.compile(
    r"[,;:!?()\[\]\n]|\.(?=\s|$)|\s(?:and|or|plus|with|also|then|but|as well as|together with|"
    r"bought|buy|buying|purchased|ordered|got|have|has|had|own|owned|use|used|using|need|needs|"
    r"want|wants|like|liked|love|loved|tried|picked up|recommend|suggest|what|which|else|"
    r"anything|something|next)(?=\s|$)",
    re.IGNORECASE,
)
# Leading filler removed from a candidate phrase.
_LEAD_RE = re.compile(r"^(?:(?:i|i've|ive|i'm|im|we|we've|my|our|a|an|the|some|this|that|these|those|"
                      r"just|recently|already|new|few|couple|of|pair|set|to|for|me|also|do|did|you|"
                      r"should|could|would|can|go|get|it|is|are)\s+)+", re.IGNORECASE)
_STOP = {"i", "me", "my", "a", "an", "the", "it", "is", "are", "what", "which", "do", "you", "should",
         "need", "else", "and", "or", "to", "for", "of", "with", "in", "on", "just", "some", "that",
         "this", "next", "buy", "get", "have", "can", "could", "would", "please", "thanks", "hi", "hello"}
_NORM_RE = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """Lowercase, punctuation to spaces, collapsed whitespace ('Weller WLC-100!' -> 'weller wlc 100')."""
    return " ".join(_NORM_RE.sub(" ", str(text).lower()).split())


@dataclass
class Match:
    """A catalogue item matched to a piece of text, with how and how confidently (0..1)."""

    item_id: str
    title: str
    score: float
    method: str  # 'exact' | 'fuzzy' | 'embedding' | 'id'
    phrase: str

    def to_dict(self) -> dict:
        return {"item_id": self.item_id, "title": self.title, "score": round(float(self.score), 4),
                "method": self.method, "phrase": self.phrase}


class TitleResolver:
    """Index of catalogue titles for exact, fuzzy and embedding lookups.

    The sentence encoder (default all-MiniLM-L6-v2) and the faiss index are built lazily, the first
    time a phrase is not matched by exact or fuzzy title search. `use_embeddings=False` turns that
    stage off (fuzzy only).
    """

    def __init__(self, items: Mapping[str, Item], *, encoder: str | None = None, use_embeddings: bool = True,
                 fuzzy_threshold: float = 0.88, embedding_threshold: float = 0.6,
                 mention_threshold: float = 0.9):
        self.items = items
        self.ids = [i for i, it in items.items() if it.title.strip()]
        self.titles = [items[i].title for i in self.ids]
        self.norm = [normalize(t) for t in self.titles]
        self.by_norm: dict[str, str] = {}
        for i, n in zip(self.ids, self.norm):
            self.by_norm.setdefault(n, i)
        self.encoder_name = encoder
        self.use_embeddings = use_embeddings
        self.fuzzy_threshold = fuzzy_threshold
        self.embedding_threshold = embedding_threshold
        self.mention_threshold = mention_threshold
        self._encoder = None
        self._index = None
        self._lock = threading.Lock()

    # ---- single phrases ----------------------------------------------------------------------
    def exact(self, text: str) -> Match | None:
        """Item whose normalised title equals the normalised text, or whose id is the text."""
        n = normalize(text)
        if n in self.by_norm:
            i = self.by_norm[n]
            return Match(i, self.items[i].title, 1.0, "exact", text)
        return None

    def fuzzy(self, text: str, limit: int = 5) -> list[Match]:
        """Best fuzzy title matches, best first; score = mean of token_sort_ratio and ratio (0..1).

        This rewards whole-title matches with typos ('Solderng Station' vs 'Soldering Station') but not
        a short phrase that happens to be contained in a long title (embedding search handles those).
        """
        from rapidfuzz import fuzz, process

        n = normalize(text)
        if not n or not self.norm:
            return []

        def scorer(a: str, b: str, **kw) -> float:
            return 0.5 * fuzz.token_sort_ratio(a, b) + 0.5 * fuzz.ratio(a, b)

        hits = process.extract(n, self.norm, scorer=scorer, limit=limit)
        return [Match(self.ids[j], self.titles[j], s / 100.0, "fuzzy", text) for _, s, j in hits]

    def suggestions(self, text: str, limit: int = 5) -> list[str]:
        """Closest catalogue titles for an error message (WRatio, lenient)."""
        from rapidfuzz import fuzz, process

        n = normalize(text)
        if not n or not self.norm:
            return self.titles[:limit]
        hits = process.extract(n, self.norm, scorer=fuzz.WRatio, limit=limit)
        return [self.titles[j] for _, _, j in hits]

    def _ensure_index(self) -> None:
        with self._lock:
            if self._index is not None:
                return
            import faiss

            from llmrec.sid.embed import embed_texts, load_encoder

            self._encoder = load_encoder(self.encoder_name, device="cpu", max_seq_length=64)
            vecs = embed_texts(self.titles, encoder=self.encoder_name, max_seq_length=64, device="cpu",
                               show_progress=False)
            index = faiss.IndexFlatIP(vecs.shape[1])
            index.add(np.ascontiguousarray(vecs, dtype=np.float32))
            self._index = index

    def embedding(self, phrases: list[str], limit: int = 3) -> list[list[Match]]:
        """Nearest titles by cosine similarity of MiniLM embeddings (faiss IndexFlatIP), per phrase."""
        if not phrases or not self.titles:
            return [[] for _ in phrases]
        self._ensure_index()
        q = self._encoder.encode(list(phrases), convert_to_numpy=True, normalize_embeddings=True,
                                 show_progress_bar=False)
        sims, idx = self._index.search(np.ascontiguousarray(q, dtype=np.float32), min(limit, len(self.ids)))
        return [[Match(self.ids[j], self.titles[j], float(s), "embedding", p) for s, j in zip(srow, irow) if j >= 0]
                for p, srow, irow in zip(phrases, sims, idx)]

    # ---- strict: history titles --------------------------------------------------------------
    def resolve(self, text: str) -> Match:
        """Item for an id or a title (exact, else fuzzy above the threshold); else LlmrecError with
        the closest titles."""
        text = str(text).strip()
        if text in self.items:
            return Match(text, self.items[text].title, 1.0, "id", text)
        m = self.exact(text)
        if m:
            return m
        best = self.fuzzy(text, limit=2)
        # a tie between two different titles is ambiguous: refuse it
        if best and best[0].score >= self.fuzzy_threshold and (
                len(best) < 2 or best[1].score < best[0].score or best[1].title == best[0].title):
            return best[0]
        close = "; ".join(f'"{t}"' for t in self.suggestions(text))
        raise LlmrecError(f'"{text}" is neither an item id nor a catalogue title. Closest titles: {close}. '
                          "Use an exact title or an item id.")

    # ---- lenient: chat mentions --------------------------------------------------------------
    @staticmethod
    def phrases(message: str) -> list[str]:
        """Candidate item phrases of a chat message (order kept, duplicates and filler dropped)."""
        out: list[str] = []
        for part in _SPLIT_RE.split(" " + message):
            p = _LEAD_RE.sub("", part.strip().strip("'\"")).strip(" -'\"")
            words = normalize(p).split()
            if not words or all(w in _STOP for w in words) or len(normalize(p)) < 3:
                continue
            if p not in out:
                out.append(p)
        return out

    def _whole_message_titles(self, message: str) -> list[Match]:
        """Full catalogue titles that appear (nearly) verbatim inside a longer message."""
        from rapidfuzz import fuzz, process

        n = normalize(message)
        hits = process.extract(n, self.norm, scorer=fuzz.partial_ratio, limit=10,
                               score_cutoff=self.mention_threshold * 100)
        hits = [(s, j) for _, s, j in hits
                if len(self.norm[j]) >= 12 and len(self.norm[j].split()) >= 2 and len(self.norm[j]) <= len(n)]
        verbatim = [self.norm[j] for s, j in hits if s >= 100]
        # A title quoted verbatim also scores high for its near-twins ("80 Grit" vs "120 Grit"):
        # an inexact hit that is that close to a verbatim one is the same mention, not another item.
        return [Match(self.ids[j], self.titles[j], s / 100.0, "fuzzy", message) for s, j in hits
                if s >= 100 or not any(fuzz.ratio(self.norm[j], v) >= 90 for v in verbatim)]

    def mentions(self, message: str) -> list[Match]:
        """Catalogue items mentioned in a message, best match per phrase, in message order."""
        found: dict[str, Match] = {}

        def keep(m: Match) -> None:
            if m.item_id not in found or m.score > found[m.item_id].score:
                found[m.item_id] = m

        pending: list[str] = []
        for p in self.phrases(message):
            m = self.exact(p)
            if m is None:
                best = self.fuzzy(p, limit=1)
                m = best[0] if best and best[0].score >= self.fuzzy_threshold else None
            if m is not None:
                keep(m)
            else:
                pending.append(p)
        for m in self._whole_message_titles(message):
            keep(m)
        if pending and self.use_embeddings:
            for p, hits in zip(pending, self.embedding(pending, limit=1)):
                if hits and hits[0].score >= self.embedding_threshold:
                    keep(hits[0])
        low = message.lower()
        return sorted(found.values(), key=lambda m: (low.find(m.phrase.lower()) if m.phrase != message else -1,
                                                      -m.score))
