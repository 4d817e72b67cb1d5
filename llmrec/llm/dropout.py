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
    """The hooks of `add_hidden_dropout` on `modules`: `attach()` puts them in, `remove()` takes them
    out (a training loop may attach them late, once the model has begun to memorise; detached, a step
    pays nothing for them)."""

    def __init__(self, modules: list[torch.nn.Module], p: float):
        self.modules = modules
        self.p = p
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    @property
    def active(self) -> bool:
        return bool(self.handles)

    def attach(self) -> None:
        if not self.handles:
            self.handles = [m.register_forward_hook(self._drop) for m in self.modules]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _drop(self, module, args, output):
        if not module.training:
            return None
        if isinstance(output, tuple):  # attention: (hidden states, attention weights, ...)
            return (F.dropout(output[0], self.p, True), *output[1:])
        return F.dropout(output, self.p, True)


def _decoder(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(inner, "embed_tokens"):
        raise LlmrecError(f"model.dropout needs a decoder with .model.embed_tokens and .model.layers "
                          f"(Llama / Qwen2 / SmolLM2 style); {type(base).__name__} has not: set model.dropout: 0.")
    return inner


def add_hidden_dropout(model, p: float) -> HiddenDropout:
    """Dropout with probability `p` on the token embeddings and on every decoder layer's attention
    and MLP outputs, while the model trains (attached at once; p = 0: no modules, nothing attached)."""
    if not 0.0 <= p < 1.0:
        raise LlmrecError(f"model.dropout must be in [0, 1), got {p}")
    if p == 0.0:
        return HiddenDropout([], p)
    inner = _decoder(model)
    modules = [inner.embed_tokens]
    for layer in inner.layers:
        modules += [layer.self_attn, layer.mlp]
    holder = HiddenDropout(modules, p)
    holder.attach()
    return holder
