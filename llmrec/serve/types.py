"""Plain result and request types shared by the Recommender, chat and the HTTP server."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from llmrec.serve.resolve import Match

MAX_K = 100


@dataclass
class Recommendation:
    """One recommended item: id, title (told apart from same-titled items), score (sequence
    log-probability) and its Semantic ID."""

    item_id: str
    title: str
    score: float
    sid: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ChatReply:
    """A chat answer: the text shown to the user, the recommended items, what was matched, and the
    mentions of the (last) message that matched nothing."""

    text: str
    items: list[Recommendation] = field(default_factory=list)
    resolved: list[Match] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"text": self.text, "items": [r.to_dict() for r in self.items],
                "resolved": [m.to_dict() for m in self.resolved], "unmatched": list(self.unmatched)}


@dataclass
class RecRequest:
    """One prepared recommendation: resolved history ids, the rendered prompt and how to decode.

    `k` items per list, `lists` disjoint lists (beam search: ranks 1..k, k+1..2k, ...; sampling: independent
    draws); `temperature`/`top_p` > 0 / < 1 switch to constrained sampling, reproducible with `seed`.
    """

    history: list[str]
    prompt: str
    k: int
    behavior: str | None = None
    exclude: set[str] | None = None
    lists: int = 1
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None

    @property
    def sampling(self) -> bool:
        return bool(self.temperature and self.temperature > 0) or (self.top_p is not None and self.top_p < 1)
