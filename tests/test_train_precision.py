"""Device and precision choices that only matter on GPU machines, checked on CPU."""

from __future__ import annotations

import pytest
import torch


def test_accelerate_cpu_flag_wins_over_a_visible_gpu(monkeypatch):
    from llmrec.llm.presets import resolve_dtype
    from llmrec.train.common import precision_kwargs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    assert precision_kwargs() == {"bf16": True, "fp16": False, "use_cpu": False}
    assert resolve_dtype(None) == torch.bfloat16
    # `accelerate launch --cpu` on a GPU machine: the Trainer runs on the CPU, so no bf16 weights/autocast
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    assert precision_kwargs() == {"bf16": False, "fp16": False, "use_cpu": True}
    assert resolve_dtype(None) == torch.float32


def test_training_keeps_float32_master_weights_by_default():
    from llmrec.train.config import ModelConfig

    assert ModelConfig().dtype == "float32"  # bf16 autocast on GPUs; bf16 weights round lr~1e-5 steps away


def test_4bit_tiny_needs_cuda_and_says_so(monkeypatch):
    from llmrec.io import LlmrecError
    from llmrec.llm.presets import _reload_4bit

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LlmrecError, match="CUDA"):
        _reload_4bit(None, None, dtype=torch.float32)


def test_merge_adapter_leaves_a_plain_model_alone():
    from llmrec.llm.loading import is_quantized, merge_adapter

    m = torch.nn.Linear(2, 2)
    assert merge_adapter(m) is m and not is_quantized(m)
