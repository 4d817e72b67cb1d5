"""Chat: a message in, matched catalogue items and constrained recommendations out; plus a stdin REPL."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from llmrec.io import LlmrecError
from llmrec.serve.resolve import Match

if TYPE_CHECKING:
    from llmrec.serve.recommender import ChatReply, Recommendation, Recommender

MAX_MESSAGE_CHARS = 4000


def _examples(rec: Recommender, n: int = 2) -> str:
    titles = [rec.items[i].title for i in rec.sid_map.item_ids[:50] if rec.items[i].title][:n]
    return " or ".join(f'"{t}"' for t in titles) or "an item id"


def format_items(recs: Sequence[Recommendation], show_sids: bool = False) -> str:
    lines = []
    for n, r in enumerate(recs, 1):
        sid = f" {r.sid}" if show_sids else ""
        lines.append(f"{n}. {r.title}{sid}")
    return "\n".join(lines)


def _best_per_phrase(matches: list[Match], message: str) -> list[Match]:
    """One item per phrase of the message (an exact title beats its fuzzy neighbours, e.g. the 120-grit
    roll when the 80-grit one was named) and one item per distinct title. Full titles found by
    scanning the whole message are all kept."""

    def key(m: Match) -> str:
        return m.item_id if m.phrase == message else m.phrase.lower()

    best: dict[str, Match] = {}
    for m in matches:
        key_m = key(m)
        if key_m not in best or (m.method == "exact") > (best[key_m].method == "exact") or (
                (m.method == "exact") == (best[key_m].method == "exact") and m.score > best[key_m].score):
            best[key_m] = m
    out, titles = [], set()
    for m in matches:
        if best.get(key(m)) is m and m.title.lower() not in titles:
            titles.add(m.title.lower())
            out.append(m)
    return out


def chat_reply(rec: Recommender, message: str, history: Sequence[str] | None = None,
               show_sids: bool = False, k: int = 5) -> ChatReply:
    """Resolve the items a message mentions (plus an explicit `history`), then recommend.

    The reply says plainly when nothing in the message matches the catalogue.
    """
    from llmrec.serve.recommender import ChatReply

    if not isinstance(message, str) or not message.strip():
        raise LlmrecError("chat message is empty: say which items you have, e.g. by title.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise LlmrecError(f"chat message has {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}.")
    with rec.lock:
        given: list[Match] = rec.resolve_history(list(history)) if history else []
        mentioned = _best_per_phrase([m for m in rec.resolver.mentions(message) if m.item_id in rec.sid_map],
                                     message)
    seen: dict[str, Match] = {}
    for m in given + mentioned:
        seen.setdefault(m.item_id, m)
    resolved = list(seen.values())
    if not resolved:
        text = ("I couldn't match anything in your message to the catalogue; try an item title, e.g. "
                f"{_examples(rec)}.")
        return ChatReply(text=text, items=[], resolved=[])
    k = max(1, min(k, len(rec.sid_map) - len(resolved)))
    items = rec.recommend([m.item_id for m in resolved], k=k, exclude_seen=True)
    names = "; ".join(
        m.title.rstrip(". ") + (f" (from \"{m.phrase}\")" if m.method not in ("exact", "id") and m.phrase != message else "")
        for m in mentioned if m.item_id in seen and seen[m.item_id] is m)
    parts = []
    if mentioned:
        parts.append(f"I matched these catalogue items in your message: {names}.")
    if given:
        parts.append(f"Your history has {len(given)} item{'s' if len(given) != 1 else ''}.")
    parts.append("Based on that, you might also like:\n" + format_items(items, show_sids))
    return ChatReply(text="\n".join(parts), items=items, resolved=resolved)


def repl(rec: Recommender, stdin: TextIO | None = None, stdout: TextIO | None = None, k: int = 5) -> int:
    """Interactive loop: one message per line; `:sids` toggles SIDs, `:reset` clears, `:quit` exits.

    Items matched in earlier messages are kept as the conversation's history.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    show_sids = False
    history: list[str] = []
    interactive = stdin.isatty() if hasattr(stdin, "isatty") else False
    print("llmrec chat: tell me what you have or bought. Commands: :sids, :reset, :quit", file=stdout)
    while True:
        if interactive:
            print("> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            break
        msg = line.strip()
        if not msg:
            continue
        if msg in (":quit", ":q", ":exit"):
            break
        if msg == ":sids":
            show_sids = not show_sids
            print(f"(SIDs {'on' if show_sids else 'off'})", file=stdout)
            continue
        if msg == ":reset":
            history.clear()
            print("(history cleared)", file=stdout)
            continue
        try:
            reply = chat_reply(rec, msg, history=history, show_sids=show_sids, k=k)
        except LlmrecError as e:
            print(f"error: {e}", file=stdout)
            continue
        for m in reply.resolved:
            if m.item_id not in history:
                history.append(m.item_id)
        print(reply.text, file=stdout, flush=True)
    return 0
