"""The level softmax (llmrec.llm.sid_softmax): SFT's two loss paths agree with each other and with a
hand-written masked cross-entropy; beam search and GRPO score a level model by its level
log-probabilities; SFT records the mode and every later stage reads it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_decode_fixture import chat_prompts, synthetic_map, tiny_model
from train_fixture import TINY_MODEL, build_small_run, short_sft

from llmrec.llm.sid_softmax import SID_SOFTMAX_MODES, SidLevelGroups, model_sid_softmax

LEVELS = [list(range(700, 708)), list(range(708, 712)), list(range(712, 716))]


def _model_and_batch(peft: bool):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**TINY_MODEL, tie_word_embeddings=True))
    if peft:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 modules_to_save=["embed_tokens", "lm_head"]))
    model.train()
    ids = torch.randint(0, 700, (3, 12))
    ids[:, 8:11] = torch.tensor([701, 709, 713])  # one SID (3 levels) then a text end token
    ids[1, 4:7] = torch.tensor([707, 711, 715])
    mask = torch.ones_like(ids)
    mask[1, 11:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 8:] = ids[:, 8:]
    labels[1, 4:7] = ids[1, 4:7]
    labels[1, 11:] = -100
    return model, {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _masked_reference(model, batch, groups):
    """By hand: full logits; a SID target's logits outside its level set to -inf; mean NLL."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    target = batch["labels"][:, 1:]
    total, n = 0.0, 0
    for r in range(target.shape[0]):
        for p in range(target.shape[1]):
            t = int(target[r, p])
            if t < 0:
                continue
            row = logits[r, p]
            g = int(groups.group[t])
            if g >= 0:
                keep = torch.full_like(row, float("-inf"))
                keep[groups.rows[g]] = 0.0
                row = row + keep
            total = total - F.log_softmax(row, -1)[t]
            n += 1
    return total / n


@pytest.mark.parametrize("peft", [False, True])
def test_compact_and_masked_level_losses_equal_the_hand_written_one(peft):
    from llmrec.train.answer_loss import answer_only_loss, level_softmax_loss

    model, batch = _model_and_batch(peft)
    groups = SidLevelGroups(LEVELS, TINY_MODEL["vocab_size"])
    compact, stats = answer_only_loss(model, batch, groups=groups)
    compact.backward()
    g_compact = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    masked, _ = level_softmax_loss(model, batch, groups)
    masked.backward()
    g_masked = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    assert compact.item() == pytest.approx(masked.item(), abs=1e-5)
    assert compact.item() == pytest.approx(_masked_reference(model, batch, groups).item(), abs=1e-5)
    vocab_loss, _ = answer_only_loss(model, batch)
    assert vocab_loss.item() > compact.item() + 0.5  # SID targets no longer compete with ~800 rows
    assert int(stats["num_valid"]) == 4 + 6 + 4 and 0 <= int(stats["num_correct"]) <= 14
    assert g_compact.keys() == g_masked.keys() and g_compact
    for name, grad in g_masked.items():
        assert torch.allclose(g_compact[name], grad, atol=1e-5), name


def test_groups_refuse_shared_or_out_of_range_ids():
    from llmrec.io import LlmrecError

    with pytest.raises(LlmrecError, match="shares token ids"):
        SidLevelGroups([[1, 2], [2, 3]], 10)
    with pytest.raises(LlmrecError, match="outside the model's 10 vocabulary rows"):
        SidLevelGroups([[1, 12]], 10)
    groups = SidLevelGroups([[3, 4], [5]], 10)
    logits = torch.randn(2, 10)
    lp = groups.token_log_probs(logits, torch.tensor([[3, 5, 0], [4, 4, 9]]))
    assert lp[0, 1].item() == pytest.approx(0.0, abs=1e-6)  # the only token of its level
    assert lp[0, 0].item() == pytest.approx(F.log_softmax(logits[0, [3, 4]], -1)[0].item(), abs=1e-6)
    assert lp[0, 2].item() == pytest.approx(F.log_softmax(logits[0], -1)[0].item(), abs=1e-6)


def test_beam_scores_of_a_level_model_are_level_log_probs():
    """recommend() reads the mode from the model's config: each SID token scores its log-probability
    within its level, the end token within the whole vocabulary; a vocab model is scored as before."""
    from llmrec.decode import SidTrie, recommend

    sm = synthetic_map(n_items=40)
    model, tok = tiny_model(sm, seed=5)
    trie = SidTrie(sm, tok)
    prompts, _ = chat_prompts(tok, sm, 2, seed=1)
    before = recommend(model, tok, trie, prompts, k=40, num_beams=40)
    model.config.llmrec_sid_softmax = "level"
    assert model_sid_softmax(model) == "level"
    recs = recommend(model, tok, trie, prompts, k=40, num_beams=40)
    levels = [[tok.convert_tokens_to_ids(sm.token(lvl, c)) for c in range(n)] for lvl, n in enumerate(sm.level_sizes)]
    for prompt, row, old in zip(prompts, recs, before):
        assert dict(row) != dict(old)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        for item, score in row[:4] + row[-2:]:
            sid = tok.convert_tokens_to_ids(sm.tokens(item))
            ids = torch.tensor([p_ids + list(sid) + [trie.end_ids[0]]])
            with torch.no_grad():
                logits = model(ids).logits[0].float()
            want = 0.0
            for j, t in enumerate(sid):
                row_logits = logits[len(p_ids) - 1 + j, levels[j]]
                want += (logits[len(p_ids) - 1 + j, t] - row_logits.logsumexp(-1)).item()
            end_pos = len(p_ids) - 1 + len(sid)
            want += max(F.log_softmax(logits[end_pos], -1)[e].item() for e in trie.end_ids)
            assert score == pytest.approx(want, abs=1e-4)


def test_sft_records_the_level_softmax_and_grpo_trains_on_it(tmp_path):
    """SFT with model.sid_softmax=level writes it into config.json; GRPO from that model scores its
    completions under the level softmax, and its policy keeps the record."""
    from test_train_grpo import _recipe

    from llmrec.train import config as train_config
    from llmrec.train.grpo import BudgetedGRPOTrainer, run_grpo

    assert train_config.SID_SOFTMAX_MODES == SID_SOFTMAX_MODES  # the recipe's copy (no torch import there)
    run = build_small_run(tmp_path / "run")
    from llmrec.sid.sidmap import SidMap

    n_items = len(SidMap.load(run / "sid" / "sid_map.json"))
    np.save(run / "sid" / "embeddings.npy", np.random.default_rng(0).normal(size=(n_items, 8)))  # semantic reward
    summary = short_sft(run, run / "corpus", run / "sft", sid_softmax="level")
    assert summary["recipe"]["model"]["sid_softmax"] == "level"
    cfg = json.loads((run / "sft" / "model" / "config.json").read_text())
    assert cfg["llmrec_sid_softmax"] == "level"

    seen = {}
    original = BudgetedGRPOTrainer._get_per_token_logps_and_entropies

    def spy(self, *a, **kw):
        out = original(self, *a, **kw)
        seen["groups"] = self.sid_groups
        seen["logps"] = out[0].detach()
        return out

    BudgetedGRPOTrainer._get_per_token_logps_and_entropies = spy
    try:
        g = run_grpo(_recipe(run, tmp_path / "grpo", steps=1))
    finally:
        BudgetedGRPOTrainer._get_per_token_logps_and_entropies = original
    assert g["global_step"] == 1 and g["valid_rate"] == 1.0
    assert seen["groups"] is not None and torch.isfinite(seen["logps"]).all()
    assert (seen["logps"] <= 1e-6).all()
    out_cfg = json.loads((tmp_path / "grpo" / "model" / "config.json").read_text())
    assert out_cfg["llmrec_sid_softmax"] == "level"  # the record travels with the policy
