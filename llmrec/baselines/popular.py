"""Non-learned baselines behind the `Ranker` protocol (see llmrec.eval.runner)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llmrec.data.records import Example


class MostPopular:
    """Rank items by training interaction count; ties broken by catalogue index (lower first).

    With `exclude_history=True` the user's history items are skipped (the list is then still k long
    when the catalogue allows).
    """

    def __init__(self, popularity: Mapping[str, int], catalogue: Sequence[str] | None = None,
                 exclude_history: bool = False, name: str = "popular"):
        cat = list(dict.fromkeys(catalogue)) if catalogue is not None else sorted(popularity)
        index = {x: i for i, x in enumerate(cat)}
        self.order = sorted(cat, key=lambda x: (-int(popularity.get(x, 0)), index[x]))
        self.exclude_history = exclude_history
        self.name = name

    def config(self) -> dict:
        return {"type": "MostPopular", "exclude_history": self.exclude_history}

    def rank(self, examples: list[Example], k: int) -> list[list[str]]:
        if not self.exclude_history:
            top = self.order[:k]
            return [list(top) for _ in examples]
        out = []
        for ex in examples:
            hist = set(ex.history)
            row: list[str] = []
            for x in self.order:
                if x not in hist:
                    row.append(x)
                    if len(row) == k:
                        break
            out.append(row)
        return out
