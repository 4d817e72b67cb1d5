"""Hidden dropout for decoder-only models that have none of their own.

Qwen2 / Llama / SmolLM2 decoders (the `tiny` preset is a Qwen2) carry only an attention-probability
dropout, off by default; GPT-2 and BERT style models also drop the token embeddings and each
sublayer's output before it joins the residual stream, and SASRec (`llmrec.baselines.sasrec`) does
the same. `add_hidden_dropout` adds those three as forward hooks, active only while the module is in
training mode, so nothing is saved with the model and decoding, validation and GRPO (which load the
saved model, or switch to eval mode) run without them. Written by hand: transformers exposes no
hidden-dropout setting for these architectures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmrec.io import LlmrecError


class HiddenDropout:
    """The hooks of `add_hidden_dropout`: they drop only while `active` (a training loop may switch
    them on late, once the model has begun to memorise); `remove()` takes them all out."""

    def __init__(self, p: float):
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        self.p = p
        self.active = True

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def _decoder(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(inner, "embed_tokens"):
        raise LlmrecError(f"model.dropout needs a decoder with .model.embed_tokens and .model.layers "
                          f"(Llama / Qwen2 / SmolLM2 style); {type(base).__name__} has not: set model.dropout: 0.")
    return inner


def add_hidden_dropout(model, p: float) -> HiddenDropout:
    """Dropout with probability `p` on the token embeddings and on every decoder layer's attention
    and MLP outputs, while the model trains."""
    if not 0.0 <= p < 1.0:
        raise LlmrecError(f"model.dropout must be in [0, 1), got {p}")
    holder = HiddenDropout(p)
    if p == 0.0:
        return holder

    def drop(module, args, output):
        if not (module.training and holder.active):
            return None
        if isinstance(output, tuple):  # attention: (hidden states, attention weights, ...)
            return (F.dropout(output[0], p, True), *output[1:])
        return F.dropout(output, p, True)

    inner = _decoder(model)
    modules = [inner.embed_tokens]
    for layer in inner.layers:
        modules += [layer.self_attn, layer.mlp]
    holder.handles = [m.register_forward_hook(drop) for m in modules]
    return holder
