"""Chat: messages in, matched catalogue items and constrained recommendations out; plus a stdin REPL.

A conversation is planned (`plan_chat`: title resolution of every turn, no model lock), decoded (the
Recommender's `run`, batched by the server), then written up (`reply_text`). Every user turn contributes
items; system/developer text contributes items too (an app may put the user's purchases there); the
reply names what it matched in the last message and every mention there that matched nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from llmrec.io import LlmrecError
from llmrec.serve.resolve import Match
from llmrec.serve.types import ChatReply, Recommendation, RecRequest

MAX_MESSAGE_CHARS = 4000


@dataclass
class ChatPlan:
    """What a conversation names and the request to decode (None when it names nothing)."""

    given: list[Match] = field(default_factory=list)      # explicit history (ids or titles)
    earlier: list[Match] = field(default_factory=list)    # earlier turns and system text
    mentioned: list[Match] = field(default_factory=list)  # the last user message
    unmatched: list[str] = field(default_factory=list)    # mentions of the last message that matched nothing
    request: RecRequest | None = None

    @property
    def resolved(self) -> list[Match]:
        seen: dict[str, Match] = {}
        for m in self.given + self.earlier + self.mentioned:
            seen.setdefault(m.item_id, m)
        return list(seen.values())


def _check_text(text: Any, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise LlmrecError(f"{what} is empty: say which items you have, e.g. by title.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise LlmrecError(f"{what} has {len(text)} characters; the limit is {MAX_MESSAGE_CHARS}.")
    return text


def plan_chat(rec: Any, turns: Sequence[str], *, history: Sequence[str] | None = None,
              context: Sequence[str] = (), k: int = 5, lists: int = 1, temperature: float | None = None,
              top_p: float | None = None, seed: int | None = None, behavior: str | None = None) -> ChatPlan:
    """Resolve a conversation (user turns oldest first, `context` = system text) into a ChatPlan.
    Runs without the model lock: call it from any thread."""
    if not turns:
        raise LlmrecError("the conversation has no user message.")
    for n, t in enumerate(turns):
        _check_text(t, "chat message" if n == len(turns) - 1 else f"user message {n + 1}")
    plan = ChatPlan(given=rec.resolve_history(list(history)) if history else [])
    for text in list(context) + list(turns[:-1]):
        plan.earlier += [m for m in rec.resolver.find(_check_text(text, "system message")).matches
                         if m.item_id in rec.sid_map]
    last = rec.resolver.find(turns[-1])
    plan.mentioned = [m for m in last.matches if m.item_id in rec.sid_map]
    plan.unmatched = last.unmatched
    resolved = plan.resolved
    if resolved:
        rec.check_k(k, lists)
        excluded = {j for m in resolved for j in rec.resolver.same_title(m.item_id)} | {m.item_id for m in resolved}
        k = max(1, min(k, (len(rec.sid_map) - len(excluded)) // lists))
        plan.request = rec.prepare([m.item_id for m in resolved], k=k, lists=lists, kind="id", behavior=behavior,
                                   temperature=temperature, top_p=top_p, seed=seed)
    return plan


def _examples(rec: Any, n: int = 2) -> str:
    titles = [rec.items[i].title for i in rec.sid_map.item_ids[:50] if rec.items[i].title][:n]
    return " or ".join(f'"{t}"' for t in titles) or "an item id"


def format_items(recs: Sequence[Recommendation], show_sids: bool = False) -> str:
    return "\n".join(f"{n}. {r.title}" + (f" {r.sid}" if show_sids else "") for n, r in enumerate(recs, 1))


def _named(rec: Any, m: Match) -> str:
    name = rec.display_name(m.item_id).rstrip(". ")
    return name + (f' (from "{m.phrase}")' if m.method in ("fuzzy", "partial", "embedding") else "")


def reply_text(rec: Any, plan: ChatPlan, items: Sequence[Recommendation], show_sids: bool = False) -> str:
    """The answer shown to the user for a plan and its recommendations."""
    parts = []
    if plan.mentioned:
        parts.append("I matched these catalogue items in your message: "
                     + "; ".join(_named(rec, m) for m in plan.mentioned) + ".")
    if plan.unmatched:
        quoted = ", ".join(f'"{p}"' for p in plan.unmatched)
        parts.append(f"I couldn't find {quoted} in the catalogue.")
    new_earlier = [m for m in plan.earlier if m.item_id not in {x.item_id for x in plan.mentioned}]
    if new_earlier:
        parts.append(f"From earlier in the conversation: {'; '.join(_named(rec, m) for m in new_earlier)}.")
    if plan.given:
        parts.append(f"Your history has {len(plan.given)} item{'s' if len(plan.given) != 1 else ''}.")
    if not plan.resolved:
        parts.insert(0, "I couldn't match anything in your message to the catalogue; try an item title, e.g. "
                        f"{_examples(rec)}.")
        return "\n".join(parts)
    parts.append("Based on that, you might also like:\n" + format_items(items, show_sids))
    return "\n".join(parts)


def chat_reply(rec: Any, message: str, history: Sequence[str] | None = None, show_sids: bool = False,
               k: int = 5) -> ChatReply:
    """One message (plus an explicit `history` of ids or titles) -> ChatReply, decoded right away."""
    plan = plan_chat(rec, [message], history=history, k=k)
    items = rec.run([plan.request])[0][0] if plan.request else []
    return ChatReply(text=reply_text(rec, plan, items, show_sids), items=items, resolved=plan.resolved,
                     unmatched=plan.unmatched)


def repl(rec: Any, stdin: TextIO | None = None, stdout: TextIO | None = None, k: int = 5) -> int:
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
