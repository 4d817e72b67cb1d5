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


def test_precision_choice_on_a_gpu_host(monkeypatch):
    from llmrec.io import LlmrecError
    from llmrec.train.common import precision_kwargs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    assert precision_kwargs("auto") == {"bf16": False, "fp16": True, "use_cpu": False}
    assert precision_kwargs("fp32") == {"bf16": False, "fp16": False, "use_cpu": False}
    with pytest.raises(LlmrecError, match="train.precision"):
        precision_kwargs("fp8")


def test_non_finite_guard_stops_and_refuses_to_save():
    from transformers import TrainerControl, TrainerState

    from llmrec.io import LlmrecError
    from llmrec.train.common import NonFiniteGuard

    guard, state, control = NonFiniteGuard(), TrainerState(), TrainerControl()
    state.global_step = 7
    guard.on_log(None, state, control, logs={"loss": 3.1, "grad_norm": 0.9})
    assert not control.should_training_stop
    guard.raise_if_diverged()  # nothing to report
    state.global_step = 8
    guard.on_log(None, state, control, logs={"loss": 2.9, "grad_norm": float("nan")})
    assert control.should_training_stop and not control.should_save
    with pytest.raises(LlmrecError, match="diverged at step 8.*grad_norm=nan.*nothing was saved"):
        guard.raise_if_diverged()
