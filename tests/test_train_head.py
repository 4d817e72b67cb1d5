"""The LM head runs only at labelled positions during SFT, and that changes nothing but the cost:
loss and gradients equal the standard full-logits loss, and a real SFTTrainer run with gradient
accumulation takes the same optimizer steps as TRL's own loss path."""

from __future__ import annotations

import itertools

import pytest
import torch
from train_fixture import TINY_MODEL


def _batch(vocab: int):
    torch.manual_seed(1)
    ids = torch.randint(0, vocab, (3, 14))
    mask = torch.ones_like(ids)
    mask[2, 10:] = 0  # right padding on one row
    labels = torch.full_like(ids, -100)
    labels[0, 9:] = ids[0, 9:]
    labels[1, 4:7] = ids[1, 4:7]
    labels[1, 11:] = ids[1, 11:]  # two answer spans in one row (a session row)
    labels[2, 7:10] = ids[2, 7:10]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _model(peft: bool):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**TINY_MODEL, tie_word_embeddings=True))
    if peft:  # what LoRA SFT of a pretrained model (smollm2) wraps it in
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 modules_to_save=["embed_tokens", "lm_head"]))
    model.train()
    return model


def _grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return out


@pytest.mark.parametrize("peft", [False, True])
@pytest.mark.parametrize("num_items", [None, 17])
def test_labelled_positions_loss_equals_full_logits_loss(peft, num_items):
    from llmrec.train.answer_loss import answer_only_loss

    model, batch = _model(peft), _batch(TINY_MODEL["vocab_size"])
    ours, stats = answer_only_loss(model, batch, num_items)
    ours.backward()
    g_ours = _grads(model)

    # transformers' own causal-LM loss over logits at every position (num_items_in_batch: GA normalisation)
    kwargs = {} if num_items is None else {"num_items_in_batch": num_items}
    ref = model(**batch, **kwargs).loss
    ref.backward()
    g_ref = _grads(model)

    assert torch.allclose(ours, ref, atol=1e-5), (ours.item(), ref.item())
    assert int(stats["num_valid"]) == 5 + 3 + 3 + 3  # every labelled position has an input before it
    assert g_ours.keys() == g_ref.keys() and g_ref
    for name, grad in g_ref.items():
        assert torch.allclose(g_ours[name], grad, atol=1e-5), name


def _tiny_trainer(tmp_path, compact: bool, texts: list[str]):
    from datasets import Dataset
    from trl import SFTConfig

    from llmrec.llm.tiny import TinyConfig, build_tiny
    from llmrec.train.answer_loss import sft_trainer_class

    model, tok = build_tiny(extra_texts=texts * 3, seed=0,
                            config=TinyConfig(vocab_size=400, hidden_size=32, intermediate_size=64,
                                              num_attention_heads=2, num_key_value_heads=1, min_frequency=1))
    rows = [{"prompt": [{"role": "user", "content": f"Which item follows {a}?"}],
             "completion": [{"role": "assistant", "content": b}]} for a, b in itertools.pairwise(texts)]
    args = SFTConfig(output_dir=str(tmp_path / ("c" if compact else "t")), use_cpu=True, bf16=False,
                     per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=3,
                     learning_rate=0.5, optim="sgd", lr_scheduler_type="constant", max_grad_norm=1e9,
                     logging_steps=1, save_strategy="no", report_to=[], seed=0, completion_only_loss=True,
                     train_sampling_strategy="group_by_length", dataloader_num_workers=0)
    trainer = sft_trainer_class()(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer._compact = compact  # the decision the first step would make; False = TRL's own loss
    return trainer


def test_sft_steps_with_gradient_accumulation_match_trl_loss_path(tmp_path):
    from llmrec.train import answer_loss

    texts = ["red lamp with a long cable", "blue microscope slide box", "digital caliper steel",
             "lab glass beaker set", "soldering iron station kit", "safety goggles clear",
             "pipette tips sterile pack", "magnifier with light", "graph paper pad"]
    calls = []
    original = answer_loss.answer_only_loss

    def counting(*a, **k):
        calls.append(1)
        return original(*a, **k)

    runs = {}
    for compact in (True, False):
        trainer = _tiny_trainer(tmp_path, compact, texts)
        if compact:
            answer_loss.answer_only_loss = counting
        try:
            trainer.train()
        finally:
            answer_loss.answer_only_loss = original
        runs[compact] = (trainer.state.log_history, dict(trainer.model.named_parameters()))
    assert len(calls) == 3 * 2  # every micro-batch of every step went through the labelled-positions head

    (h_c, p_c), (h_t, p_t) = runs[True], runs[False]
    for a, b in zip([h["loss"] for h in h_c if "loss" in h], [h["loss"] for h in h_t if "loss" in h], strict=True):
        assert a == pytest.approx(b, abs=1e-4)
    for name, p in p_t.items():
        assert torch.allclose(p_c[name], p, atol=1e-5), name
    logged = [h for h in h_c if "loss" in h]
    # TRL's metrics still log: accuracy over the answer tokens, the running token count
    assert all(0.0 <= h["mean_token_accuracy"] <= 1.0 for h in logged)
    assert logged[-1]["num_tokens"] == [h for h in h_t if "loss" in h][-1]["num_tokens"] > 0
