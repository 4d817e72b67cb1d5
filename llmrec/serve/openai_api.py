"""Request models (pydantic) for POST /recommend and POST /v1/chat/completions, the OpenAI fields this
server honours or refuses, and the response / SSE chunk builders.

Honoured: messages (every user turn contributes items; system/developer text too), model, n (disjoint
lists of k items from one beam search, or independent samples), max_tokens / max_completion_tokens
(the text is cut, finish_reason "length"), temperature / top_p (> 0 / < 1: constrained sampling),
seed, stop, stream (+ stream_options.include_usage), user (access log), metadata. Refused with a 400
that names the field when set to anything but its neutral value: tools, tool_choice, functions,
function_call, response_format (other than text), logprobs, top_logprobs, logit_bias,
presence_penalty, frequency_penalty, audio, modalities (other than text), prediction,
web_search_options, reasoning_effort, store=true. Unknown fields are refused too.
Extensions: k (items per answer), show_sids, history (item ids or titles), behavior.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class RequestError(Exception):
    """A client error with its HTTP status, the offending field (`param`) and an error code."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str = "invalid_request",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RecommendBody(_Strict):
    history: list[NonEmpty] = Field(min_length=1, description="item ids or titles, oldest first")
    k: int = Field(10, ge=1)
    behavior: str | None = None
    exclude_seen: bool = True
    model: str | None = None


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(_Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None


class ChatBody(_Strict):
    messages: list[Message] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    # refused unless neutral
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, Any] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    audio: Any = None
    modalities: list[str] | None = None
    prediction: Any = None
    web_search_options: Any = None
    reasoning_effort: Any = None
    service_tier: str | None = None
    # llmrec extensions
    k: int = Field(5, ge=1)
    show_sids: bool = False
    history: list[NonEmpty] | None = None
    behavior: str | None = None


_NEUTRAL = {
    "tools": lambda v: not v, "functions": lambda v: not v, "tool_choice": lambda v: v in (None, "none"),
    "function_call": lambda v: v in (None, "none"),
    "response_format": lambda v: v is None or v.get("type") == "text",
    "logprobs": lambda v: not v, "top_logprobs": lambda v: v is None, "logit_bias": lambda v: not v,
    "presence_penalty": lambda v: not v, "frequency_penalty": lambda v: not v, "audio": lambda v: v is None,
    "modalities": lambda v: v is None or v == ["text"], "prediction": lambda v: v is None,
    "web_search_options": lambda v: v is None, "reasoning_effort": lambda v: v is None,
    "store": lambda v: not v, "service_tier": lambda v: v in (None, "auto", "default"),
}
_WHY = {"store": "nothing is stored", "service_tier": "there is one service tier"}


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """Strict UTF-8 JSON object -> model, or RequestError(400) naming the field."""
    if not raw.strip():
        raise RequestError(400, "empty request body; send a JSON object", code="empty_body")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RequestError(400, f"malformed JSON body: {e}", code="malformed_json") from None
    if not isinstance(obj, dict):
        raise RequestError(400, "the JSON body must be an object", code="malformed_json")
    _no_surrogates(obj, "")
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        err = max(e.errors(), key=lambda x: len(x.get("loc", ())))  # the most specific (union branches)
        loc = _loc(err.get("loc", ()))
        if err.get("type") == "extra_forbidden":
            raise RequestError(400, f"unrecognized request argument supplied: {loc}", param=loc,
                               code="unknown_field") from None
        raise RequestError(400, f"field '{loc}': {err.get('msg')}", param=loc, code="invalid_field") from None


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "list[TextPart]", "constrained-str") or "[" in str(part) or "function-" in str(part):
            continue  # pydantic's union branch names
        else:
            out += ("." if out else "") + str(part)
    return out


def _no_surrogates(obj: Any, where: str) -> None:
    """Lone UTF-16 surrogates ("\\ud800") are valid JSON escapes but not text: refuse them."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(400, f"field '{where or 'body'}' holds an invalid character (a lone surrogate)",
                               param=where or None, code="invalid_field") from None
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _no_surrogates(k, where)
            _no_surrogates(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _no_surrogates(v, f"{where}[{i}]")


def check_chat(body: ChatBody) -> None:
    """Refuse what this server cannot honour, naming the field."""
    for name, neutral in _NEUTRAL.items():
        if not neutral(getattr(body, name)):
            why = _WHY.get(name, "this model answers with catalogue items only")
            raise RequestError(400, f"field '{name}' is not supported ({why}); leave it out", param=name,
                               code="unsupported_field")
    if body.stream_options is not None and not body.stream:
        raise RequestError(400, "field 'stream_options' is only allowed with stream=true", param="stream_options")
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stops) > 4 or any(not s for s in stops):
        raise RequestError(400, "field 'stop': up to 4 non-empty strings", param="stop")
    for i, m in enumerate(body.messages):
        if m.role == "tool" or m.tool_calls or m.tool_call_id:
            raise RequestError(400, f"field 'messages[{i}]': tool messages and tool calls are not supported",
                               param=f"messages[{i}].role", code="unsupported_field")
    if body.messages[-1].role != "user":
        raise RequestError(400, f"field 'messages[{len(body.messages) - 1}].role': the last message must be the "
                                "user's", param=f"messages[{len(body.messages) - 1}].role")
    for i, m in enumerate(body.messages):
        if m.role == "user" and not m.text().strip():
            raise RequestError(400, f"field 'messages[{i}].content': a user message needs text",
                               param=f"messages[{i}].content")


def stops_of(body: ChatBody) -> list[str]:
    return [body.stop] if isinstance(body.stop, str) else list(body.stop or [])


def finish(text: str, stops: list[str], max_tokens: int | None, count_tokens, cut_tokens) -> tuple[str, str]:
    """Apply `stop` (cut before the first stop string) and `max_tokens`; returns (text, finish_reason)."""
    reason = "stop"
    hits = [text.find(s) for s in stops if s in text]
    if hits:
        text = text[:min(hits)]
    if max_tokens is not None and count_tokens(text) > max_tokens:
        text, reason = cut_tokens(text, max_tokens), "length"
    return text, reason


def completion(model: str, texts: list[tuple[str, str]], usage: dict, extra: dict) -> dict:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": extra.pop("system_fingerprint", None),
        "choices": [{"index": i, "message": {"role": "assistant", "content": t, "refusal": None},
                     "finish_reason": r, "logprobs": None} for i, (t, r) in enumerate(texts)],
        "usage": usage, "llmrec": extra,
    }


def sse_chunks(model: str, texts: list[tuple[str, str]], usage: dict | None, extra: dict):
    """Server-sent events of a chat.completion.chunk stream: a role delta, the text line by line and a
    finish chunk per choice, an optional usage chunk, then [DONE]."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    fp = extra.pop("system_fingerprint", None)

    def chunk(choices: list[dict], **more: Any) -> str:
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "system_fingerprint": fp, "choices": choices, **more}
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    for i, (text, reason) in enumerate(texts):
        yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                      "logprobs": None}])
        for piece in text.splitlines(keepends=True):
            yield chunk([{"index": i, "delta": {"content": piece}, "finish_reason": None, "logprobs": None}])
        last = {"items": extra["items"][i]} if "items" in extra else {}
        if i == len(texts) - 1:
            last = {**extra, **last}
        yield chunk([{"index": i, "delta": {}, "finish_reason": reason, "logprobs": None}], llmrec=last)
    if usage is not None:
        yield chunk([], usage=usage)
    yield "data: [DONE]\n\n"
