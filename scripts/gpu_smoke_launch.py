"""`accelerate launch` sections of the GPU smoke test (scripts/gpu_smoke.py): which device, world size
and precision each launcher gives, and SFT through the single-GPU and two-process launchers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from gpu_smoke_common import section, sft_summary


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
            res["summary"] = sft_summary(json.loads(lines[-1]))
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
