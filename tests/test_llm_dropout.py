"""Hidden dropout hooks (model.dropout): active in training mode only, removable, switched on late by
LateDropout (model.dropout_from_epoch), refused where the model has no Llama / Qwen2 style decoder."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture()
def qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64)
    return Qwen2ForCausalLM(cfg)


def test_dropout_is_active_while_training_and_gone_after_remove(qwen2):
    from llmrec.llm.dropout import add_hidden_dropout

    ids = torch.randint(0, 64, (2, 7))
    qwen2.eval()
    with torch.no_grad():
        plain = qwen2(input_ids=ids).logits
    hooks = add_hidden_dropout(qwen2, 0.3)
    assert len(hooks.handles) == 1 + 2 * 2  # embeddings + attention and MLP of each layer
    with torch.no_grad():
        assert torch.equal(qwen2(input_ids=ids).logits, plain)  # eval mode: untouched
        qwen2.train()
        a, b = qwen2(input_ids=ids).logits, qwen2(input_ids=ids).logits
        assert not torch.allclose(a, b) and not torch.allclose(a, plain)
        hooks.remove()
        assert torch.allclose(qwen2(input_ids=ids).logits, plain, atol=1e-6)  # no dropout of its own
    assert add_hidden_dropout(qwen2, 0.0).handles == []


def test_dropout_refuses_bad_settings_and_models_without_decoder_layers():
    from llmrec.config import validate_config
    from llmrec.io import LlmrecError
    from llmrec.llm.dropout import add_hidden_dropout
    from llmrec.train.config import ModelConfig

    with pytest.raises(LlmrecError, match=r"model.dropout must be in \[0, 1\)"):
        validate_config(ModelConfig(dropout=1.0))
    with pytest.raises(LlmrecError, match="model.dropout_from_epoch must be >= 0"):
        validate_config(ModelConfig(dropout=0.1, dropout_from_epoch=-1))
    with pytest.raises(LlmrecError, match="model.dropout needs a decoder"):
        add_hidden_dropout(torch.nn.Linear(3, 3), 0.1)


def test_late_dropout_starts_after_the_given_passes(qwen2):
    from transformers import TrainerControl, TrainerState

    from llmrec.llm.dropout import add_hidden_dropout
    from llmrec.train.common import LateDropout

    ids = torch.randint(0, 64, (2, 7))
    hooks = add_hidden_dropout(qwen2, 0.3)
    late = LateDropout(hooks, from_epoch=2.0)
    assert not hooks.active
    qwen2.train()
    state = TrainerState()
    with torch.no_grad():
        for epoch, dropping in ((0.0, False), (1.5, False), (2.0, True), (3.1, True)):
            state.epoch = epoch
            late.on_step_begin(None, state, TrainerControl())
            same = torch.equal(qwen2(input_ids=ids).logits, qwen2(input_ids=ids).logits)
            assert same != dropping, epoch
