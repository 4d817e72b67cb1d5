"""Training sections of the GPU smoke test (scripts/gpu_smoke.py): SFT full / bf16 / LoRA / QLoRA (with
the QLoRA merge check) and GRPO full / bf16-weights / LoRA."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from gpu_smoke_common import check_decode, prompts_for, section, sft_recipe, sft_summary


@section("warmup")
def warmup(run, work):
    """A few steps first, so CUDA start-up is not charged to the first measured section."""
    from llmrec.train.sft import run_sft

    return sft_summary(run_sft(sft_recipe(run, work / "warmup", steps=5)))


@section("sft_full")
def sft_full(run, work, steps):
    from llmrec.train.sft import run_sft

    s = run_sft(sft_recipe(run, work / "sft_full", steps=steps))
    cfg = json.loads((work / "sft_full" / "model" / "config.json").read_text())
    out = sft_summary(s)
    out["saved_dtype"] = cfg.get("dtype") or cfg.get("torch_dtype")
    out["decode"] = check_decode(run, work / "sft_full" / "model")
    return out


@section("sft_full_bf16_weights")
def sft_full_bf16(run, work, steps):
    from llmrec.train.sft import run_sft

    return sft_summary(run_sft(sft_recipe(run, work / "sft_bf16", steps=steps, dtype="bf16")))


@section("sft_lora")
def sft_lora(run, work, steps):
    from llmrec.train.sft import run_sft

    s = run_sft(sft_recipe(run, work / "sft_lora", mode="lora", steps=steps, lr=2e-3))
    out = sft_summary(s)
    out["decode"] = check_decode(run, work / "sft_lora" / "model")
    return out


@section("sft_qlora")
def sft_qlora(run, work, steps):
    from llmrec.train.sft import run_sft

    s = run_sft(sft_recipe(run, work / "sft_qlora", mode="lora", steps=steps, lr=2e-3, load_in_4bit=True))
    cfg = json.loads((work / "sft_qlora" / "model" / "config.json").read_text())
    out = sft_summary(s)
    out["saved_quantization_config"] = cfg.get("quantization_config")
    out["saved_dtype"] = cfg.get("dtype") or cfg.get("torch_dtype")
    out["decode"] = check_decode(run, work / "sft_qlora" / "model")
    out["merge"] = qlora_merge_check(run, work / "sft_qlora")
    return out


def qlora_merge_check(run: Path, sft_dir: Path) -> dict:
    """Logits of the trained PEFT(4-bit base) model vs (a) llmrec merge_adapter (dequantize, then merge),
    (b) PEFT merge_and_unload (re-quantizes), (c) the folder run_sft saved."""
    import bitsandbytes.functional as bf
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from peft.utils.integrations import dequantize_bnb_weight

    from llmrec.data.store import load_prepared
    from llmrec.llm import load_base, load_model
    from llmrec.llm.loading import merge_adapter
    from llmrec.sid.sidmap import SidMap

    sid_map = SidMap.load(run / "sid" / "sid_map.json")
    items = load_prepared(run / "data").items

    def peft_model():
        torch.manual_seed(3)
        base, tok = load_base("tiny", sid_map=sid_map, items=items, init="semantic", dtype="float32", seed=3,
                              load_in_4bit=True)
        return PeftModel.from_pretrained(base, sft_dir / "adapter").eval(), tok

    def logits(m, enc):
        with torch.no_grad():
            return m(**{k: v.to(next(m.parameters()).device) for k, v in enc.items()}).logits.float()

    pm, tok = peft_model()
    out = {"base_param_dtypes": dict(Counter(str(p.dtype) for p in pm.get_base_model().parameters()))}
    texts, _ = prompts_for(run, tok, sid_map, n=16)
    tok.padding_side = "left"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    ref = logits(pm, enc)[:, -1]
    # how much of each LoRA update survives re-quantization to NF4 (what merge_and_unload stores)
    kept, err = [], []
    for _, mod in pm.get_base_model().named_modules():
        if isinstance(mod, LoraLayer):
            w = mod.get_base_layer().weight
            w0 = dequantize_bnb_weight(w).float()
            d = mod.get_delta_weight("default").float()
            q, st = bf.quantize_4bit((w0 + d).to(w.quant_state.dtype), blocksize=w.quant_state.blocksize,
                                     quant_type="nf4")
            wq = bf.dequantize_4bit(q, st).float()
            kept.append(float(((wq - w0) * d).sum() / (d * d).sum()))
            err.append(float((wq - w0 - d).norm() / d.norm()))
    out.update({"lora_layers": len(kept), "update_kept_by_requant_mean": round(sum(kept) / len(kept), 3),
                "requant_rel_error_mean": round(sum(err) / len(err), 3)})

    def cmp(name, m):
        lg = logits(m, enc)[:, -1]
        out[name] = {"max_abs": round(float((lg - ref).abs().max()), 4),
                     "mean_abs": round(float((lg - ref).abs().mean()), 5),
                     "top1_agree": round(float((lg.argmax(-1) == ref.argmax(-1)).float().mean()), 3)}

    cmp("merge_adapter", merge_adapter(pm))
    del pm
    pm2, _ = peft_model()
    cmp("peft_merge_and_unload", pm2.merge_and_unload())
    del pm2
    saved, _, _ = load_model(sft_dir / "model", device_map="cuda")  # QLoRA: CUDA only
    cmp("saved_by_run_sft", saved)
    return out


def _changed_fraction(init_dir: Path, out_dir: Path, dtype) -> dict:
    from llmrec.llm import load_model

    a, _, _ = load_model(init_dir, dtype=torch.float32)
    b, _, _ = load_model(out_dir, dtype=torch.float32)
    tot = changed = 0
    rel = []
    for (n, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        pa = pa.to(dtype).float()
        tot += pa.numel()
        changed += int((pa != pb).sum())
        rel.append(float((pb - pa).norm() / (pa.norm() + 1e-12)))
    return {"changed_fraction": round(changed / tot, 4), "mean_rel_change": float(f"{sum(rel) / len(rel):.3g}")}


def grpo_recipe(run, init, out, steps, mode="full", lr=1e-5):
    from llmrec.train.config import AdapterConfig, GRPORecipe, GRPOSettings, TrainConfig

    return GRPORecipe(
        run=str(run), init_model=str(init), output=str(out),
        adapter=AdapterConfig(mode=mode) if mode != "lora" else AdapterConfig(mode="lora", r=8, alpha=16),
        train=TrainConfig(max_steps=steps, learning_rate=lr, lr_scheduler="constant", warmup_ratio=0.0, batch_size=32,
                          logging_steps=1, save_steps=10_000, report_to=[], seed=1),
        grpo=GRPOSettings(num_generations=8, beta=0.04, num_seqrec=256, num_item2sid=32, eval_every=steps,
                          eval_samples=64, eval_beams=20,
                          rewards={"rule": 1.0, "ranking": 1.0, "semantic": 0.5, "valid": 1.0}))


def _grpo_summary(s: dict) -> dict:
    keep = ("global_step", "train_seconds", "s_per_step", "reward_mean_first", "reward_mean_last",
            "distinct_per_group", "valid_rate", "kl_last")
    out = {k: s.get(k) for k in keep}
    out["validation"] = [{k: v for k, v in row.items() if k in ("step", "HR@10", "NDCG@10")}
                         for row in s.get("validation", [])]
    return out


@section("grpo_full")
def grpo_full(run, work, steps):
    from llmrec.train.grpo import run_grpo

    s = run_grpo(grpo_recipe(run, work / "sft_full" / "model", work / "grpo_full", steps))
    out = _grpo_summary(s)
    hist = json.loads((work / "grpo_full" / "log_history.json").read_text())
    out["reward_log_keys"] = sorted({k for h in hist for k in h if "reward" in k})[:20]
    out["policy_change"] = _changed_fraction(work / "sft_full" / "model", work / "grpo_full" / "model",
                                             torch.float32)
    out["decode"] = check_decode(run, work / "grpo_full" / "model")
    return out


@section("grpo_full_bf16_weights")
def grpo_full_bf16(run, work, steps):
    """The old behaviour (policy loaded in bf16) for comparison: how much of the policy moves at lr 1e-5."""
    import llmrec.train.grpo as g
    from llmrec.llm import load_model

    orig = load_model

    def bf16_load(*a, **k):
        k["dtype"] = torch.bfloat16
        return orig(*a, **k)

    import llmrec.llm as L

    L.load_model = bf16_load  # run_grpo imports it from llmrec.llm when called
    try:
        s = g.run_grpo(grpo_recipe(run, work / "sft_full" / "model", work / "grpo_bf16", steps))
    finally:
        L.load_model = orig
    out = _grpo_summary(s)
    out["policy_change"] = _changed_fraction(work / "sft_full" / "model", work / "grpo_bf16" / "model",
                                             torch.bfloat16)
    return out


@section("grpo_lora")
def grpo_lora(run, work, steps):
    from llmrec.train.grpo import run_grpo

    s = run_grpo(grpo_recipe(run, work / "sft_full" / "model", work / "grpo_lora", steps, mode="lora", lr=1e-4))
    return _grpo_summary(s)
