"""The compact answer-only loss equals TRL's fused LM-head loss, value and gradients."""

from __future__ import annotations

import pytest
import torch
from train_fixture import TINY_MODEL


def _model_and_batch(peft: bool):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    cfg = dict(TINY_MODEL)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**cfg, tie_word_embeddings=True))
    add_fused_lm_head(model, outputs=("log_probs",))
    if peft:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 modules_to_save=["embed_tokens", "lm_head"]))
    model.train()
    ids = torch.randint(0, cfg["vocab_size"], (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # right padding on one row
    labels = torch.full_like(ids, -100)
    labels[0, 8:] = ids[0, 8:]
    labels[1, 6:9] = ids[1, 6:9]
    labels[2, 10:] = ids[2, 10:]
    return model, {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("peft", [False, True])
@pytest.mark.parametrize("num_items", [None, 11])
def test_compact_loss_matches_trl_fused_head(peft, num_items):
    from llmrec.train.answer_loss import answer_only_loss, compact_loss_supported

    model, batch = _model_and_batch(peft)
    assert compact_loss_supported(model, num_processes=1, device=torch.device("cpu"))
    assert not compact_loss_supported(model, num_processes=2, device=torch.device("cpu"))

    ours, stats = answer_only_loss(model, batch, num_items)
    ours.backward()
    g_ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    out = model(**batch, fused_lm_head=True)
    denom = out.label_mask.sum() if num_items is None else num_items
    ref = -out.log_probs.sum() / denom
    ref.backward()
    g_ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    assert torch.allclose(ours, ref, atol=1e-5)
    assert int(stats["num_valid"]) == int(out.label_mask.sum()) == 4 + 3 + 2
    assert g_ours.keys() == g_ref.keys() and g_ours
    for name, grad in g_ref.items():
        assert torch.allclose(g_ours[name], grad, atol=1e-5), name
