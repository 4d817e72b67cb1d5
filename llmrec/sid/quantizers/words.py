"""Word IDs (LMIndexer-like): an item's SID is words from its own text, general to specific.

Example: `<a_gloves><b_nitrile><c_powder>`; readable by a person and (after SFT) by the LLM. Each
word is a SID token of its own level (not a base-vocabulary piece), so the trie, corpus and decode
code are unchanged; items whose words all coincide are made unique by collision handling's
numeric disambiguation token (`<d_0>`, `<d_1>`, ...).

How words are chosen, level by level (codebook_size = words kept per level):
1. a first pass gives every item the word of its text (not chosen yet) that is most common among
   the items sharing its prefix so far (level 0: most common overall), like a decision tree that
   splits on the most frequent word; the last level instead takes the item's rarest word (the most
   specific one: a model number, a brand), which is what makes word IDs nearly unique;
2. the level's vocabulary is the `codebook_size - 1` words used most in that pass; each item then
   takes its vocabulary word with the highest use (last level: the rarest), `other` if it has none.
Step 2 is also how `encode` reads new items, so re-encoding an item gives its code again.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from llmrec.config import option
from llmrec.io import LlmrecError
from llmrec.sid.quantizers.base import QUANTIZERS, BaseQuantizer

FILLER = "other"
_STOP = """
a about above after all also an and any are as at be been but by can could did do does each for from
had has have he her his how i if in into is it its just more most my no not of off on one only or other
our out over per she so some such than that the their them then there these they this those to too up
us very was we were what when which while who will with without would you your x
"""
STOPWORDS = frozenset(_STOP.split())
_WORD = re.compile(r"[a-z][a-z0-9]*")


def words_of(text: str, min_len: int = 3) -> list[str]:
    """Distinct lowercase ascii words of a text, in order, without stopwords or short words."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(str(text).lower()):
        if len(w) >= min_len and w not in STOPWORDS and w not in seen:
            seen[w] = None
    return list(seen)


@dataclass
class WordsSettings:
    min_len: int = option(3, help="shortest word kept")
    max_df: float = option(0.1, help="leave out words on more than this share of items (inch, pack, ...)")


@QUANTIZERS.register("words")
class Words(BaseQuantizer):
    name = "words"
    Settings = WordsSettings
    needs_text = True
    supports_reassign = False  # moving an item to another word would make its SID lie
    default_codebook = 512  # words kept per level

    def __init__(self, levels: int = 3, codebook_size: int | list[int] = 512, seed: int = 42, **kw: Any):
        super().__init__(levels, codebook_size, seed)
        self.s = WordsSettings(**kw)
        self.vocab: list[list[str]] = []
        self.scores: list[dict[str, int]] = []
        self.df: dict[str, int] = {}

    def settings(self) -> dict[str, Any]:
        return asdict(self.s)

    def _texts(self, texts: Any) -> list[list[str]]:
        if isinstance(texts, np.ndarray) and texts.dtype.kind == "f":
            raise LlmrecError("sid method 'words' reads item text, not vectors")
        docs = [words_of(t, self.s.min_len) for t in texts]
        if not any(docs):
            raise LlmrecError("sid method 'words' needs item text (title, brand or categories); this catalogue "
                              "has none. Use another method (rkmeans, rqvae, ...) with --source collaborative")
        return docs

    def _fit(self, texts: Any, collab: np.ndarray | None) -> np.ndarray:
        docs = self._texts(texts)
        df = Counter(w for d in docs for w in d)
        too_common = {w for w, n in df.items() if n > self.s.max_df * len(docs)}
        docs = [[w for w in d if w not in too_common] for d in docs]
        self.df = {w: n for w, n in df.items() if w not in too_common}
        chosen: list[list[str]] = [[] for _ in docs]
        self.vocab, self.scores = [], []
        for lvl, K in enumerate(self.level_sizes):
            groups: dict[tuple[str, ...], Counter] = defaultdict(Counter)
            for d, c in zip(docs, chosen):
                groups[tuple(c)].update(w for w in d if w not in c)
            usage: Counter = Counter()
            last = lvl == len(self.level_sizes) - 1
            for d, c in zip(docs, chosen):
                g = groups[tuple(c)]
                cands = [w for w in d if w not in c]
                if cands and last:
                    usage[min(cands, key=lambda w: (g[w], self.df[w], w))] += 1
                elif cands:
                    usage[max(cands, key=lambda w: (g[w], self.df[w], w))] += 1
            keep = sorted(usage, key=lambda w: (-usage[w], w))[:max(K - 1, 1)]
            self.vocab.append(sorted(keep))
            self.scores.append({w: int(usage[w]) for w in keep})
            for d, c in zip(docs, chosen):
                c.append(self._pick(d, c, lvl))
        self.fitted = True
        self._set_names()
        return self._codes(chosen)

    def _pick(self, doc: list[str], chosen: list[str], lvl: int) -> str:
        score = self.scores[lvl]
        cands = [w for w in doc if w in score and w not in chosen]
        if not cands:
            return FILLER
        if lvl == len(self.level_sizes) - 1 and lvl > 0:  # the most specific word
            return min(cands, key=lambda w: (self.df.get(w, 0), w))
        return max(cands, key=lambda w: (score[w], self.df.get(w, 0), w))

    def _codes(self, chosen: list[list[str]]) -> np.ndarray:
        """Code of word w at level l = its index in the sorted vocabulary; `other` is the last code."""
        index = [{w: i for i, w in enumerate(v)} for v in self.vocab]
        return np.array([[index[lvl].get(w, len(self.vocab[lvl])) for lvl, w in enumerate(c)] for c in chosen],
                        dtype=np.int64).reshape(len(chosen), len(self.vocab))

    def _set_names(self) -> None:
        self.names = [v + [FILLER] for v in self.vocab]
        self.level_sizes = [len(n) for n in self.names]

    def encode(self, texts: Any) -> np.ndarray:
        self._check_fitted()
        docs = self._texts(texts)
        chosen: list[list[str]] = []
        for d in docs:
            c: list[str] = []
            for lvl in range(len(self.vocab)):
                c.append(self._pick(d, c, lvl))
            chosen.append(c)
        return self._codes(chosen)

    def state_meta(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "scores": self.scores, "df": self.df}

    def set_state(self, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.vocab = [list(v) for v in meta["vocab"]]
        self.scores = [dict(s) for s in meta["scores"]]
        self.df = dict(meta["df"])
        self._set_names()
