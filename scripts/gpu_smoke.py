"""GPU smoke test of the training stack: SFT (full / LoRA / QLoRA), constrained decoding, GRPO and
`accelerate launch`, on a small real run (Amazon Scientific, the tiny preset, a hand-made SidMap so
no faiss is needed). Each section is timed and reports loss, tokens/s and peak GPU memory; a failing
section is recorded with its traceback and the others still run.

    LLMREC_DATA_DIR=../shared/data python scripts/gpu_smoke.py --work /tmp/gpu_smoke --out gpu_smoke.json

On a machine without the pinned packages, carry them as wheels and put them first on PYTHONPATH
(pip install --no-deps --target /tmp/site ...; PYTHONPATH=/tmp/site:$PWD). Sections: --only NAME ...
Prints one JSON summary as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch

RESULTS: dict = {}


def log(*a):
    print(f"[gpu_smoke {time.strftime('%H:%M:%S')}]", *a, flush=True)


def section(name):
    def wrap(fn):
        def run(*a, **k):
            log(f"--- {name}")
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            t0 = time.time()
            try:
                res = fn(*a, **k) or {}
                res["ok"] = True
            except Exception as e:  # noqa: BLE001 - a smoke test reports and goes on
                res = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()}
                log(res["traceback"])
            res["wall_s"] = round(time.time() - t0, 1)
            if torch.cuda.is_available():
                res["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            RESULTS[name] = res
            log(name, json.dumps({k: v for k, v in res.items() if k != "traceback"}, default=str)[:1500])
            return res
        return run
    return wrap


def build_run(run_dir: Path, n_items: int) -> Path:
    """runs/X/{data,sid,corpus} over the n_items most popular items (as tests/train_fixture.py)."""
    import numpy as np

    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest, save_corpus
    from llmrec.data.loaders import load_dataset
    from llmrec.data.records import RecDataset
    from llmrec.data.splits import leave_one_out
    from llmrec.data.store import load_prepared, save_prepared
    from llmrec.sid.sidmap import SidMap

    full = load_dataset("amazon18_scientific")
    top = {i for i, _ in Counter(x.item for x in full.interactions).most_common(n_items)}
    inter = [x for x in full.interactions if x.item in top]
    users = Counter(x.user for x in inter)
    inter = [x for x in inter if users[x.user] >= 3]
    ds = RecDataset(name="sci-gpu", items={i: full.items[i] for i in sorted(top, key=int)}, interactions=inter,
                    source={"subset_of": "amazon18_scientific", "n_items": n_items})
    save_prepared(run_dir / "data", ds, leave_one_out(ds, max_history=10))
    prepared = load_prepared(run_dir / "data")
    ids = list(prepared.items)
    sid_map = SidMap({i: (j // 64, (j // 8) % 8, j % 8) for j, i in enumerate(ids)},
                     level_sizes=[max(1, (len(ids) + 63) // 64), 8, 8])
    (run_dir / "sid").mkdir(parents=True, exist_ok=True)
    sid_map.save(run_dir / "sid" / "sid_map.json")
    np.save(run_dir / "sid" / "embeddings.npy", np.random.default_rng(0).normal(size=(len(sid_map), 16)))
    cfg = CorpusConfig(tasks=["seqrec", "item2sid_title", "sid2item_title"], max_history=10)
    corpus, manifest = build_corpus_with_manifest(prepared, sid_map, cfg)
    save_corpus(run_dir / "corpus", corpus, manifest)
    return run_dir


def sft_recipe(run: Path, out: Path, *, mode="full", steps=60, dtype="float32", load_in_4bit=False, lr=3e-3,
               batch=32):
    from llmrec.train.config import AdapterConfig, ModelConfig, SFTRecipe, TrainConfig

    adapter = AdapterConfig(mode=mode) if mode != "lora" else AdapterConfig(mode="lora", r=8, alpha=16)
    return SFTRecipe(run=str(run), output=str(out),
                     model=ModelConfig(preset="tiny", init="semantic", dtype=dtype, load_in_4bit=load_in_4bit),
                     adapter=adapter,
                     train=TrainConfig(max_steps=steps, learning_rate=lr, lr_scheduler="constant", warmup_ratio=0.0,
                                       batch_size=batch, logging_steps=5, save_steps=10_000, report_to=[],
                                       max_length=192, seed=3, eval_steps=None))


def prompts_for(run: Path, tok, sid_map, n=64):
    from llmrec.corpus import render_prompt, seqrec_messages
    from llmrec.data.store import load_prepared

    prepared = load_prepared(run / "data")
    ex = prepared.split.valid[:n]
    return [render_prompt(tok, seqrec_messages(e.history, sid_map, prepared.items, template_index=0)) for e in ex], \
        [e.target for e in ex]


def check_decode(run: Path, model_dir: Path, k=10) -> dict:
    from llmrec.decode import SidTrie, recommend
    from llmrec.llm import load_model

    cuda = torch.cuda.is_available()
    model, tok, sid_map = load_model(model_dir, device_map="cuda" if cuda else None)
    dev = next(model.parameters()).device
    trie = SidTrie(sid_map, tok, device=dev)
    texts, targets = prompts_for(run, tok, sid_map)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.time()
    ranked = recommend(model, tok, trie, texts, k=k, num_beams=20)
    if cuda:
        torch.cuda.synchronize()
    dt = time.time() - t0
    valid = all(it in sid_map.codes for r in ranked for it, _ in r)
    distinct = all(len({it for it, _ in r}) == len(r) for r in ranked)
    hits = sum(t in [it for it, _ in r] for r, t in zip(ranked, targets))
    return {"device": str(dev), "dtype": str(next(model.parameters()).dtype), "prompts": len(texts),
            "per_prompt": [len(r) for r in ranked][:3], "all_valid": valid, "all_distinct": distinct,
            f"HR@{k}": round(hits / len(texts), 3), "decode_s": round(dt, 2),
            "prompts_per_s": round(len(texts) / dt, 1)}


def _sft_summary(s: dict) -> dict:
    keep = ("global_step", "train_seconds", "model_load_seconds", "tokens_per_s", "loss_first", "loss_last",
            "trainable_params")
    return {k: s.get(k) for k in keep}


@section("env")
def env():
    import accelerate
    import peft
    import transformers
    import trl

    from llmrec.train.common import precision_kwargs

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
           "trl": trl.__version__, "peft": peft.__version__, "accelerate": accelerate.__version__,
           "cuda": torch.cuda.is_available(), "precision_kwargs": precision_kwargs()}
    try:
        import bitsandbytes

        out["bitsandbytes"] = bitsandbytes.__version__
    except Exception as e:  # noqa: BLE001
        out["bitsandbytes"] = f"missing: {e}"
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


@section("warmup")
def warmup(run, work):
    """A few steps first, so CUDA start-up is not charged to the first measured section."""
    from llmrec.train.sft import run_sft

    return _sft_summary(run_sft(sft_recipe(run, work / "warmup", steps=5)))


@section("sft_full")
def sft_full(run, work, steps):
    from llmrec.train.sft import run_sft

    s = run_sft(sft_recipe(run, work / "sft_full", steps=steps))
    cfg = json.loads((work / "sft_full" / "model" / "config.json").read_text())
    out = _sft_summary(s)
    out["saved_dtype"] = cfg.get("dtype") or cfg.get("torch_dtype")
    out["decode"] = check_decode(run, work / "sft_full" / "model")
    return out


@section("sft_full_bf16_weights")
def sft_full_bf16(run, work, steps):
    from llmrec.train.sft import run_sft

    return _sft_summary(run_sft(sft_recipe(run, work / "sft_bf16", steps=steps, dtype="bf16")))


@section("sft_lora")
def sft_lora(run, work, steps):
    from llmrec.train.sft import run_sft

    s = run_sft(sft_recipe(run, work / "sft_lora", mode="lora", steps=steps, lr=2e-3))
    out = _sft_summary(s)
    out["decode"] = check_decode(run, work / "sft_lora" / "model")
    return out


@section("sft_qlora")
def sft_qlora(run, work, steps):
    from llmrec.train.sft import run_sft

    s = run_sft(sft_recipe(run, work / "sft_qlora", mode="lora", steps=steps, lr=2e-3, load_in_4bit=True))
    cfg = json.loads((work / "sft_qlora" / "model" / "config.json").read_text())
    out = _sft_summary(s)
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


def _launch(name, cmd, env_extra, timeout):
    env = dict(os.environ, TRANSFORMERS_VERBOSITY="info", **env_extra)
    t0 = time.time()
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.time() - t0
    text = p.stdout + p.stderr
    out_path = Path(os.environ.get("OUT", ".")) / f"{name}.log"
    out_path.write_text(text[-200_000:])
    res = {"rc": p.returncode, "wall_s": round(wall, 1), "cmd": " ".join(cmd)}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if lines:
        try:
            res["summary"] = _sft_summary(json.loads(lines[-1]))
        except json.JSONDecodeError:
            pass
    m = re.findall(r"Total train batch size[^=]*=\s*([\d,]+)", text)
    res["total_train_batch"] = m[-1] if m else None
    res["world_sizes_seen"] = sorted(set(re.findall(r"world_size[=: ]+(\d+)", text)))[:5]
    res["devices_seen"] = sorted(set(re.findall(r"device[=: ]+'?(cuda:?\d*|cpu)", text)))[:5]
    if p.returncode:
        res["tail"] = text[-3000:]
    return res


PROBE = """import os
from accelerate import PartialState
from transformers import TrainingArguments
from llmrec.train.common import precision_kwargs
st = PartialState()
pk = precision_kwargs()
a = TrainingArguments(output_dir="/tmp/llmrec_probe", report_to=[], **pk)
print("PROBE", {"rank": st.process_index, "world": st.num_processes, "state_device": str(st.device),
                "trainer_device": str(a.device), "precision": pk, "backend": st.backend}, flush=True)
"""


@section("launch_probes")
def launch_probes(run, work, repo):
    """Which device, world size and precision each process of each launcher gets."""
    import ast

    probe = work / "probe.py"
    probe.write_text(PROBE)
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    variants = {
        "single_gpu_yaml": (["--config_file", str(repo / "recipes/accelerate/single_gpu.yaml")], {}),
        "cpu_yaml": (["--config_file", str(repo / "recipes/accelerate/cpu.yaml")], {}),
        "cpu_flag_2proc": (["--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                            "--dynamo_backend", "no"], {}),
        "multi_gpu_flag_2proc_no_cuda": (["--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                                          "--mixed_precision", "no", "--dynamo_backend", "no"],
                                         {"CUDA_VISIBLE_DEVICES": ""}),
    }
    out = {}
    for name, (flags, env_extra) in variants.items():
        p = subprocess.run(launch + flags + [str(probe)], check=False, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, **env_extra))
        rows = [ast.literal_eval(ln[6:]) for ln in p.stdout.splitlines() if ln.startswith("PROBE ")]
        out[name] = {"rc": p.returncode, "procs": rows}
        if p.returncode:
            out[name]["tail"] = (p.stdout + p.stderr)[-1500:]
    return out


def _launch_yaml(run: Path, work: Path) -> Path:
    path = work / "sft_launch.yaml"
    path.write_text(f"""run: {run}
model: {{preset: tiny, init: semantic}}
adapter: {{mode: full}}
train: {{max_steps: 30, learning_rate: 3.0e-3, lr_scheduler: constant, warmup_ratio: 0.0, batch_size: 32,
        logging_steps: 5, save_steps: 10000, report_to: [], max_length: 192}}
""")
    return path


@section("accelerate_single_gpu")
def launch_single_gpu(run, work, repo):
    y = _launch_yaml(run, work)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(repo / "recipes/accelerate/single_gpu.yaml"), "-m", "llmrec.train.sft", "--config", str(y),
           "--output", str(work / "launch_gpu")]
    return _launch("accelerate_single_gpu", cmd, {}, 300)


@section("accelerate_multi_cpu_torchrun")
def launch_multi_cpu(run, work, repo):
    """Two CPU processes through accelerate's multi-process launcher (torchrun, gloo), GPU hidden.
    (`accelerate launch --cpu --num_processes 2` starts a single process without mpirun.)"""
    y = _launch_yaml(run, work)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "llmrec.train.sft", "--config", str(y), "--output", str(work / "launch_mcpu"), "--max-steps", "10"]
    return _launch("accelerate_multi_cpu_torchrun", cmd, {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "4"}, 300)


SECTIONS = ["env", "warmup", "sft_full_bf16_weights", "sft_full", "sft_lora", "sft_qlora", "grpo_full",
            "grpo_full_bf16_weights", "grpo_lora", "launch_probes", "accelerate_single_gpu",
            "accelerate_multi_cpu_torchrun"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/llmrec_gpu_smoke")
    ap.add_argument("--out", default=None, help="write the full results JSON here")
    ap.add_argument("--n-items", type=int, default=300)
    ap.add_argument("--sft-steps", type=int, default=60)
    ap.add_argument("--grpo-steps", type=int, default=6)
    ap.add_argument("--only", nargs="*", default=None, help=f"sections among {SECTIONS}")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    repo = Path(__file__).resolve().parents[1]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    want = set(args.only or SECTIONS)
    t0 = time.time()
    run = work / "run"
    if not (run / "corpus").exists():
        build_run(run, args.n_items)
    RESULTS["build_run_s"] = round(time.time() - t0, 1)
    calls = {"env": lambda: env(), "warmup": lambda: warmup(run, work),
             "launch_probes": lambda: launch_probes(run, work, repo), "sft_full": lambda: sft_full(run, work, args.sft_steps),
             "sft_full_bf16_weights": lambda: sft_full_bf16(run, work, args.sft_steps),
             "sft_lora": lambda: sft_lora(run, work, args.sft_steps),
             "sft_qlora": lambda: sft_qlora(run, work, args.sft_steps),
             "grpo_full": lambda: grpo_full(run, work, args.grpo_steps),
             "grpo_full_bf16_weights": lambda: grpo_full_bf16(run, work, args.grpo_steps),
             "grpo_lora": lambda: grpo_lora(run, work, args.grpo_steps),
             "accelerate_single_gpu": lambda: launch_single_gpu(run, work, repo),
             "accelerate_multi_cpu_torchrun": lambda: launch_multi_cpu(run, work, repo)}
    for name in SECTIONS:
        if name in want:
            calls[name]()
            if args.out:
                Path(args.out).write_text(json.dumps(RESULTS, indent=1, default=str))
    RESULTS["total_s"] = round(time.time() - t0, 1)
    if args.out:
        Path(args.out).write_text(json.dumps(RESULTS, indent=1, default=str))
    brief = {k: ({kk: vv for kk, vv in v.items() if kk not in ("traceback", "tail")} if isinstance(v, dict) else v)
             for k, v in RESULTS.items()}
    brief["failed"] = [k for k, v in RESULTS.items() if isinstance(v, dict) and not v.get("ok", True)]
    print(json.dumps(brief, default=str))
    return 1 if brief["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
