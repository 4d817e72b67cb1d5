"""Turn chat messages into the exact text a model sees (chat template, or a plain format).

Training (TRL applies the same chat template), decoding, eval and serving all go through
`render_prompt`, so prompts match token for token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Message = dict[str, str]

_PLAIN_HEADERS = {"user": "### Instruction:\n", "assistant": "### Response:\n"}


def has_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template."""
    return bool(tokenizer is not None and getattr(tokenizer, "chat_template", None))


def plain_prompt(messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    """Plain format for tokenizers without a chat template.

    `system\\n\\n### Instruction:\\n{user}\\n\\n### Response:\\n` — the answer follows the last newline
    directly (no leading space, so a SID's first token is never preceded by 'Ġ').
    """
    parts = []
    for m in messages:
        role, content = m["role"], m["content"]
        if role == "system":
            parts.append(f"{content}\n\n")
        elif role in _PLAIN_HEADERS:
            parts.append(f"{_PLAIN_HEADERS[role]}{content}\n\n")
        else:
            raise ValueError(f"unknown message role {role!r} (expected system/user/assistant)")
    if add_generation_prompt:
        parts.append(_PLAIN_HEADERS["assistant"])
    return "".join(parts)


def plain_completion(completion: Sequence[Message]) -> str:
    """The assistant text of a completion (what follows `plain_prompt`)."""
    return "".join(m["content"] for m in completion)


def render_prompt(tokenizer: Any, messages: Sequence[Message]) -> str:
    """Prompt text ending where the model's answer starts (generation prompt included). When the
    last message is the assistant's (a `stream` prompt), the text ends inside that unfinished turn
    (`continue_final_message`), so the model goes on where the message stops: the same prefix the
    training row had before its next SID."""
    messages = list(messages)
    open_turn = bool(messages) and messages[-1]["role"] == "assistant"
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=not open_turn,
                                             continue_final_message=open_turn)
    if open_turn:
        return plain_prompt(messages[:-1]) + messages[-1]["content"]
    return plain_prompt(messages)


def render_example(tokenizer: Any, prompt: Sequence[Message] | str, completion: Sequence[Message] | str) -> str:
    """Full training text (prompt + answer) for display: works on conversational and plain rows."""
    if isinstance(prompt, str):
        return prompt + (completion if isinstance(completion, str) else plain_completion(completion))
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(list(prompt) + list(completion), tokenize=False)
    return plain_prompt(prompt) + plain_completion(completion)
