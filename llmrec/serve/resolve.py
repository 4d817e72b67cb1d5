"""Free text -> catalogue items: exact title, fuzzy title (rapidfuzz), truncated title, embedding search (faiss).

Two entry points:
- `TitleResolver.resolve(text)`: strict, for `recommend(history=[ids or titles])`; an unknown id or title
  raises LlmrecError (an id-like string is never matched to a title that merely contains its digits).
- `TitleResolver.find(message)`: lenient, for chat. Whole catalogue titles found verbatim in the message
  are taken first (so a comma inside a title does not split it), then the rest of the message is split
  into phrases ("I just bought a soldering station and flux" -> "soldering station", "flux"), each
  matched exactly, fuzzily, as a truncated title, or by embeddings; phrases that match nothing are
  returned as `unmatched` so the reply can say so.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

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
         "this", "next", "buy", "get", "have", "can", "could", "would", "please", "thanks", "hi", "hello",
         "too", "as", "well", "now", "so", "there", "here", "any", "more", "other", "others", "great", "good"}
_NORM_RE = re.compile(r"[^0-9a-z]+")
_IDLIKE_RE = re.compile(r"^[A-Za-z0-9_-]*\d[A-Za-z0-9_-]*$")
SCAN_MIN_CHARS = 10  # titles shorter than this are matched per phrase only, never by scanning


def normalize(text: str) -> str:
    """Lowercase, punctuation to spaces, collapsed whitespace ('Weller WLC-100!' -> 'weller wlc 100')."""
    return " ".join(_NORM_RE.sub(" ", str(text).lower()).split())


def _normalize_with_offsets(text: str) -> tuple[str, list[int]]:
    """normalize(text) and, for each of its characters, the index of the source character."""
    out: list[str] = []
    offs: list[int] = []
    for i, ch in enumerate(text):
        for c in ch.lower():
            if "0" <= c <= "9" or "a" <= c <= "z":
                out.append(c)
                offs.append(i)
            elif out and out[-1] != " ":
                out.append(" ")
                offs.append(i)
    while out and out[-1] == " ":
        out.pop()
        offs.pop()
    return "".join(out), offs


@dataclass
class Match:
    """A catalogue item matched to a piece of text, with how and how confidently (0..1)."""

    item_id: str
    title: str
    score: float
    method: str  # 'id' | 'exact' | 'title-in-message' | 'fuzzy' | 'partial' | 'embedding'
    phrase: str
    position: int = field(default=-1, compare=False)

    def to_dict(self) -> dict:
        return {"item_id": self.item_id, "title": self.title, "score": round(float(self.score), 4),
                "method": self.method, "phrase": self.phrase}


@dataclass
class Mentions:
    """What a chat message names: matched items in message order, and phrases that matched nothing."""

    matches: list[Match]
    unmatched: list[str]


class TitleResolver:
    """Index of catalogue titles for exact, fuzzy, truncated-title and embedding lookups.

    Thread-safe for concurrent readers; the sentence encoder (default all-MiniLM-L6-v2) and the faiss
    index are built lazily, the first time a phrase is not matched by title search. `use_embeddings=False`
    turns that stage off.
    """

    def __init__(self, items: Mapping[str, Item], *, encoder: str | None = None, use_embeddings: bool = True,
                 fuzzy_threshold: float = 0.88, embedding_threshold: float = 0.6):
        self.items = items
        self.ids = [i for i, it in items.items() if it.title.strip()]
        self.titles = [items[i].title for i in self.ids]
        self.norm = [normalize(t) for t in self.titles]
        self.by_norm: dict[str, list[str]] = {}
        for i, n in zip(self.ids, self.norm):
            self.by_norm.setdefault(n, []).append(i)
        # titles scanned for inside messages, found through their first two words (a message is looked up
        # word pair by word pair, not every title searched for in every message)
        self._scan: dict[tuple[str, str], list[str]] = {}
        for n in self.by_norm:
            if len(n) >= SCAN_MIN_CHARS and " " in n:
                w = n.split(" ", 2)
                self._scan.setdefault((w[0], w[1]), []).append(n)
        self.encoder_name = encoder
        self.use_embeddings = use_embeddings
        self.fuzzy_threshold = fuzzy_threshold
        self.embedding_threshold = embedding_threshold
        self._encoder = None
        self._index = None
        self._lock = threading.Lock()

    def same_title(self, item_id: str) -> list[str]:
        """Every catalogue item with the same (normalised) title as `item_id`, itself included."""
        it = self.items.get(item_id)
        return list(self.by_norm.get(normalize(it.title), [item_id])) if it is not None else [item_id]

    # ---- single phrases ----------------------------------------------------------------------
    def exact(self, text: str) -> Match | None:
        """Item whose normalised title equals the normalised text (the first of same-titled items)."""
        ids = self.by_norm.get(normalize(text))
        return Match(ids[0], self.items[ids[0]].title, 1.0, "exact", text) if ids else None

    def fuzzy(self, text: str, limit: int = 5) -> list[Match]:
        """Best fuzzy title matches, best first; score = mean of token_sort_ratio and ratio (0..1).

        This rewards whole-title matches with typos ('Solderng Station' vs 'Soldering Station') but not
        a short phrase that happens to be contained in a long title (partial() and embeddings do).
        """
        from rapidfuzz import fuzz, process

        n = normalize(text)
        if not n or not self.norm:
            return []

        def scorer(a: str, b: str, **kw) -> float:
            return 0.5 * fuzz.token_sort_ratio(a, b) + 0.5 * fuzz.ratio(a, b)

        hits = process.extract(n, self.norm, scorer=scorer, limit=limit)
        return [Match(self.ids[j], self.titles[j], s / 100.0, "fuzzy", text) for _, s, j in hits]

    def partial(self, text: str) -> Match | None:
        """A title with words missing ('Wixey WR300 Angle Gauge', a title cut short): the text's words
        appear in order in exactly one distinct title, and cover at least half of it."""
        from rapidfuzz import fuzz, process

        words = normalize(text).split()
        if len(words) < 3:
            return None
        hits = process.extract(" ".join(words), self.norm, scorer=fuzz.token_set_ratio, limit=20,
                               score_cutoff=100)
        found: dict[str, int] = {}
        for _, _, j in hits:
            tw = self.norm[j].split()
            it = iter(tw)
            if all(w in it for w in words) and len(words) >= 0.5 * len(tw):
                found.setdefault(self.norm[j], j)
        if len(found) != 1:
            return None  # nothing, or ambiguous between different titles
        j = next(iter(found.values()))
        return Match(self.ids[j], self.titles[j], len(words) / len(self.norm[j].split()), "partial", text)

    def suggestions(self, text: str, limit: int = 5) -> list[str]:
        """Closest distinct catalogue titles for an error message (WRatio, lenient)."""
        from rapidfuzz import fuzz, process

        n = normalize(text)
        if not n or not self.norm:
            return self.titles[:limit]
        out: list[str] = []
        for _, _, j in process.extract(n, self.norm, scorer=fuzz.WRatio, limit=3 * limit):
            if self.titles[j] not in out:
                out.append(self.titles[j])
        return out[:limit]

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

    # ---- strict: history entries -------------------------------------------------------------
    def resolve(self, text: str, kind: str = "auto") -> Match:
        """Item for an id or a title: `kind` 'id' (ids only), 'title' (titles only) or 'auto'. Titles:
        exact, else fuzzy above the threshold, else an unambiguous truncated title; else LlmrecError."""
        text = str(text).strip()
        if kind != "title" and text in self.items:
            return Match(text, self.items[text].title, 1.0, "id", text)
        m = self.exact(text) if kind != "id" else None
        if m:
            return m
        if kind == "id" or (kind == "auto" and _IDLIKE_RE.match(text)):
            some = ", ".join(repr(i) for i in list(self.items)[:3])
            raise LlmrecError(f"unknown item id {text!r}: the catalogue has {len(self.items)} items with ids like "
                              f"{some}." + (" Give titles with --titles." if kind == "id" else ""))
        best = self.fuzzy(text, limit=2)
        # a tie between two different titles is ambiguous: refuse it
        if best and best[0].score >= self.fuzzy_threshold and (
                len(best) < 2 or best[1].score < best[0].score or normalize(best[1].title) == normalize(best[0].title)):
            return best[0]
        m = self.partial(text)
        if m:
            return m
        close = "; ".join(f'"{t}"' for t in self.suggestions(text))
        raise LlmrecError(f'"{text}" is neither an item id nor a catalogue title. Closest titles: {close}. '
                          "Use an exact title or an item id.")

    # ---- lenient: chat mentions --------------------------------------------------------------
    @staticmethod
    def phrases(message: str) -> list[str]:
        """Candidate item phrases of a chat message (order kept, duplicates and filler dropped)."""
        return [p for p, _ in TitleResolver._phrases_at(message)]

    @staticmethod
    def _phrases_at(message: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        seen: set[str] = set()
        pos = -1  # the split adds one leading space
        for part in _SPLIT_RE.split(" " + message):
            start = pos
            pos += len(part) + 1  # approximate (separators vary); used for ordering only
            p = _LEAD_RE.sub("", part.strip().strip("'\"")).strip(" -'\"")
            words = normalize(p).split()
            if not words or all(w in _STOP for w in words) or len(normalize(p)) < 3:
                continue
            if p.lower() not in seen:
                seen.add(p.lower())
                out.append((p, max(0, start)))
        return out

    def titles_in(self, message: str) -> list[tuple[Match, int, int]]:
        """Whole catalogue titles appearing verbatim (after normalisation) in the message, longest first
        and not overlapping: (match, start, end) with offsets into the message."""
        norm, offs = _normalize_with_offsets(message)
        padded = f" {norm} "
        words = norm.split(" ")
        cands = {t for pair in itertools.pairwise(words) for t in self._scan.get(pair, ())}
        taken: list[tuple[int, int]] = []
        out = []
        for t in sorted(cands, key=len, reverse=True):  # longest first: a title holding a shorter one wins
            start = padded.find(f" {t} ")
            while start != -1:
                a, b = start, start + len(t)  # offsets in norm
                if not any(a < y and x < b for x, y in taken):
                    taken.append((a, b))
                    i = self.by_norm[t][0]
                    s, e = offs[a], offs[b - 1] + 1
                    out.append((Match(i, self.items[i].title, 1.0, "title-in-message", message[s:e], s), s, e))
                start = padded.find(f" {t} ", start + 1)
        return out

    def find(self, message: str) -> Mentions:
        """Catalogue items a message mentions (message order, one per item) and the phrases that matched
        nothing."""
        found: dict[str, Match] = {}

        def keep(m: Match) -> None:
            if m.item_id not in found or m.score > found[m.item_id].score:
                found[m.item_id] = m

        masked = message
        for m, s, e in self.titles_in(message):
            keep(m)
            masked = masked[:s] + ";" * (e - s) + masked[e:]
        pending: list[tuple[str, int]] = []
        for p, pos in self._phrases_at(masked):
            m = self.exact(p)
            if m is None:
                best = self.fuzzy(p, limit=1)
                m = best[0] if best and best[0].score >= self.fuzzy_threshold else self.partial(p)
            if m is not None:
                m.position = pos
                keep(m)
            else:
                pending.append((p, pos))
        unmatched = []
        if pending and self.use_embeddings:
            for (p, pos), hits in zip(pending, self.embedding([p for p, _ in pending], limit=1)):
                if hits and hits[0].score >= self.embedding_threshold:
                    hits[0].position = pos
                    keep(hits[0])
                else:
                    unmatched.append(p)
        else:
            unmatched = [p for p, _ in pending]
        return Mentions(sorted(found.values(), key=lambda m: (m.position, -m.score)), unmatched)

    def mentions(self, message: str) -> list[Match]:
        """Catalogue items mentioned in a message, in message order (see `find`)."""
        return self.find(message).matches
