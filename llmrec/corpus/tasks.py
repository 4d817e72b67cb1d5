"""Prompt builders for every task: fields in, chat messages out.

`seqrec_messages` is THE prompt for next-item recommendation: the corpus (train/valid/test), eval,
GRPO and serving all call it, so a model is always asked the same way it was trained. It has three
formats (SEQREC_FORMATS): `window`, one user turn listing the history; `session`, a conversation whose
first user turn names the oldest history item and whose assistant turns are the following items;
`stream`, the oldest item in the user turn and every later item in one assistant turn (SIDs joined
by one separator token). Session and stream rows (`seqrec_session`, `seqrec_stream`) teach every
next-item step of a sequence in one pass; a stream costs a SID's tokens plus one per step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from llmrec.corpus.templates import PromptLibrary, load_templates
from llmrec.data.records import Item
from llmrec.io import LlmrecError
from llmrec.sid.sidmap import SidMap

HISTORY_SEP = ", "
Message = dict[str, str]
#: window: the history in one user turn (one training row per target). session: the history as a
#: conversation, one assistant turn per item after the first (one training row per sequence).
#: stream: the first item in the user turn, the later ones in a single assistant turn (one row per
#: sequence; the prompt for a history ends inside that turn, so the model continues the stream).
SEQREC_FORMATS = ("window", "session", "stream")
#: After each SID of a stream that another item follows. The next item is then always predicted from
#: this one token (as a window predicts from the fixed start of the answer): from the last token of
#: the previous SID instead, a fine residual code shared by unrelated items, the tiny model barely
#: learnt next items. A prompt ends with it, so the query position never saw the stream end.
STREAM_SEP = ","
#: The short user turn between two items of a session (kept short: it is repeated once per item).
SESSION_NEXT = "Next?"


def answer_ends_after_item(prompt_format: str) -> bool:
    """Whether a model trained in `prompt_format` ends its answer after one item: not a stream,
    which goes on with the next SID (so ranking scores and GRPO completions leave the end out)."""
    return prompt_format != "stream"


def clip_text(text: str, max_chars: int | None) -> str:
    """Collapse whitespace and cut at a word boundary to at most `max_chars` (+ '...')."""
    text = re.sub(r"\s+", " ", str(text or "")).strip()
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0] or text[:max_chars]
    return cut.rstrip(" ,.;:") + "..."


def item_field(item: Item | None, name: str) -> str:
    """An item's text field (`title`, `description`, `brand`, or a key of `features`); '' if absent."""
    if item is None:
        return ""
    if name == "categories":
        return ", ".join(item.categories)
    value = getattr(item, name, None) if name in ("title", "description", "brand") else item.features.get(name)
    return str(value or "").strip()


def sid_of(sid_map: SidMap, item_id: str) -> str:
    """'<a_1><b_2><c_3>' for an item; a clear error for an item without a Semantic ID."""
    if item_id not in sid_map:
        raise LlmrecError(f"item {item_id!r} has no Semantic ID in the SidMap "
                          f"(fingerprint {sid_map.fingerprint}); rebuild the SID map for this catalogue.")
    return sid_map.sid_string(item_id)


def sid_history(item_ids: Sequence[str], sid_map: SidMap) -> str:
    """SIDs (no spaces inside a SID) joined by ', ', oldest first."""
    return HISTORY_SEP.join(sid_of(sid_map, i) for i in item_ids)


def title_history(item_ids: Sequence[str], items: Mapping[str, Item], title_field: str = "title",
                  max_chars: int | None = 120) -> str:
    """Quoted titles joined by ', ', oldest first."""
    return HISTORY_SEP.join(f'"{clip_text(item_field(items.get(i), title_field), max_chars)}"' for i in item_ids)


def behavior_history(item_ids: Sequence[str], behaviors: Sequence[str], sid_map: SidMap,
                     library: PromptLibrary) -> str:
    """'[view] <a_1><b_2><c_3>, [buy] <a_4>...' (behavior tag, space, SID)."""
    if len(item_ids) != len(behaviors):
        raise LlmrecError(f"behavior history: {len(item_ids)} items but {len(behaviors)} behaviors.")
    return HISTORY_SEP.join(f"[{library.behavior_name(b)}] {sid_of(sid_map, i)}"
                            for i, b in zip(item_ids, behaviors))


def make_messages(task: str, fields: Mapping[str, Any], *, library: PromptLibrary | None = None,
                  template_index: int | None = None, seed: int = 0, key: str | None = None,
                  system: bool = True) -> list[Message]:
    """[system, user] messages for `task`; paraphrase = template_index, else chosen from (seed, task, key)."""
    library = library or load_templates()
    tpl = library[task]
    index = template_index if template_index is not None else tpl.choose(seed, key)
    user = tpl.render(index, **fields)
    out: list[Message] = []
    if system and tpl.system:
        out.append({"role": "system", "content": tpl.system})
    out.append({"role": "user", "content": user})
    return out


def completion_messages(text: str) -> list[Message]:
    """The assistant turn TRL trains on (answer-only loss)."""
    return [{"role": "assistant", "content": text}]


def seqrec_messages(history_item_ids: Sequence[str], sid_map: SidMap, items: Mapping[str, Item] | None = None,
                    template_index: int | None = None, *, seed: int = 0, key: str | None = None,
                    max_history: int | None = None, library: PromptLibrary | None = None,
                    prompt_format: str = "window") -> list[Message]:
    """Next-item prompt from a history of item ids (oldest first): the one function every stage uses.

    `max_history` keeps the most recent items. With neither `template_index` nor `key`, paraphrase 0
    is used (what eval and serving use by default). `items` is accepted for a uniform signature with
    the text tasks; the seqrec prompt itself shows Semantic IDs only. `prompt_format` (SEQREC_FORMATS)
    is the format the model was trained on: `session` ends with a user turn after the last item, so
    the rendered prompt asks for the next assistant turn exactly as in training; `stream` ends with
    the (unfinished) assistant turn holding the history after its first item and a separator
    (`render_prompt` continues it), the exact prefix of a training stream before its next SID.
    """
    if prompt_format not in SEQREC_FORMATS:
        raise LlmrecError(f"unknown seqrec prompt format {prompt_format!r}; use one of {SEQREC_FORMATS}")
    history = list(history_item_ids)
    if max_history is not None and max_history > 0:
        history = history[-max_history:]
    if not history:
        raise LlmrecError("seqrec prompt needs at least one history item.")
    if prompt_format == "session":
        prompt, turns = seqrec_session(history, sid_map, template_index=template_index, seed=seed, key=key,
                                       library=library)
        return prompt + turns + [{"role": "user", "content": SESSION_NEXT}] if turns else prompt
    if prompt_format == "stream":
        prompt, rest = seqrec_stream(history, sid_map, template_index=template_index, seed=seed, key=key,
                                     library=library)
        return prompt + [{"role": "assistant", "content": rest + STREAM_SEP}] if rest else prompt
    return make_messages("seqrec", {"history": sid_history(history, sid_map)}, library=library,
                         template_index=template_index, seed=seed, key=key)


def seqrec_session(item_ids: Sequence[str], sid_map: SidMap, *, template_index: int | None = None, seed: int = 0,
                   key: str | None = None, library: PromptLibrary | None = None) -> tuple[list[Message], list[Message]]:
    """(prompt, turns) of a session: the seqrec prompt over the first item, then one assistant turn
    per later item (its SID) with a short user turn (SESSION_NEXT) between two of them. As a
    training row, `turns` is the completion: every item after the first is an assistant turn."""
    if not item_ids:
        raise LlmrecError("a seqrec session needs at least one item.")
    prompt = make_messages("seqrec", {"history": sid_of(sid_map, item_ids[0])}, library=library,
                           template_index=template_index, seed=seed, key=key)
    turns: list[Message] = []
    for i, item_id in enumerate(item_ids[1:]):
        if i:
            turns.append({"role": "user", "content": SESSION_NEXT})
        turns.append({"role": "assistant", "content": sid_of(sid_map, item_id)})
    return prompt, turns


def seqrec_stream(item_ids: Sequence[str], sid_map: SidMap, *, template_index: int | None = None, seed: int = 0,
                  key: str | None = None, library: PromptLibrary | None = None) -> tuple[list[Message], str]:
    """(prompt, rest) of a stream: the seqrec prompt over the first item, and the SIDs of every later
    item joined by STREAM_SEP. As a training row `rest` is the completion, so the loss covers each
    later item's SID given everything before it; empty for a single item."""
    if not item_ids:
        raise LlmrecError("a seqrec stream needs at least one item.")
    prompt = make_messages("seqrec", {"history": sid_of(sid_map, item_ids[0])}, library=library,
                           template_index=template_index, seed=seed, key=key)
    return prompt, STREAM_SEP.join(sid_of(sid_map, i) for i in item_ids[1:])
