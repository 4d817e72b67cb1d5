"""The one entry point everyone uses: `load_base`, plus `save_model` / `load_model` for trained models."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch

from llmrec.data.records import Item
from llmrec.io import LlmrecError, atomic_path, write_json
from llmrec.llm.presets import is_from_scratch, load_pretrained, resolve_dtype
from llmrec.llm.sid_tokens import (
    SID_RECORD_FILE,
    SID_RECORD_KEY,
    add_sid_tokens,
    check_sid_map,
    init_sid_rows,
    read_sid_record,
    record_sid_map,
    resize_for_tokens,
)
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)

SID_MAP_FILE = "sid_map.json"


def load_base(preset_or_path: str, *, sid_map: SidMap, items: dict[str, Item] | None = None,
              init: str = "semantic", dtype: str | torch.dtype | None = None,
              extra_texts: Iterable[str] | None = None, seed: int = 0, trust_remote_code: bool = False,
              load_in_4bit: bool = False, device_map=None, tiny_config=None,
              sequences: Mapping[str, Sequence[str]] | None = None, collaborative: float = 0.0):
    """Build/load the base LLM, add the SidMap's tokens, initialise their rows, record the SidMap.

    `preset_or_path`: 'tiny', 'smollm2-135m', a local folder or a Hugging Face id.
    `init`: 'semantic' (needs `items` for titles; for the from-scratch `tiny` preset each level's
    rows are also spread like the base rows), 'mean' or 'random'. `collaborative`: the share of each
    semantic row taken from collaborative item vectors of the training `sequences` (`init_sid_rows`).
    Returns (model, tokenizer); `model.config.llmrec_sid` and `tokenizer.init_kwargs['llmrec_sid']`
    hold the SidMap fingerprint and SID token id range.
    """
    t0 = time.perf_counter()
    model, tokenizer = load_pretrained(preset_or_path, items=items, extra_texts=extra_texts, dtype=dtype,
                                       seed=seed, trust_remote_code=trust_remote_code,
                                       load_in_4bit=load_in_4bit, device_map=device_map,
                                       tiny_config=tiny_config)
    base_len = len(tokenizer)
    ids = add_sid_tokens(tokenizer, sid_map)
    resize_for_tokens(model, tokenizer)
    # a from-scratch model's rows are random: its semantic SID rows need the base rows' spread
    report = init_sid_rows(model, tokenizer, sid_map, mode=init, items=items, base_vocab_size=base_len,
                           seed=seed, spread=is_from_scratch(preset_or_path), sequences=sequences,
                           collaborative=collaborative)
    rec = record_sid_map(tokenizer, sid_map, ids)
    rec["init"] = report
    rec["base"] = preset_or_path
    model.config.llmrec_sid = rec
    log.info("load_base(%s): %d SID tokens (ids %d..%d), init=%s, %.1f s", preset_or_path, len(ids),
             rec["first_id"], rec["last_id"], report["mode"], time.perf_counter() - t0)
    return model, tokenizer


def is_quantized(model) -> bool:
    """True for a model loaded through bitsandbytes (4 or 8 bit)."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def merge_adapter(model):
    """PEFT model -> plain model with the adapter merged in; anything else is returned as it is.

    On a bitsandbytes (QLoRA) base, PEFT's `merge_and_unload` adds the LoRA update and re-quantizes
    each weight to 4 bit, which rounds away much of a small update. Here each LoRA layer's base
    weight is dequantized, the update added in float32, and the result is an unquantized model.
    """
    if not hasattr(model, "merge_and_unload"):
        return model
    base = model.get_base_model()
    if not is_quantized(base):
        return model.merge_and_unload()
    from peft.tuners.lora import LoraLayer
    from peft.utils.integrations import dequantize_bnb_weight

    merged: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in base.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            if any(module.use_dora.get(a, False) for a in module.active_adapters) or module.merged:
                log.warning("merge_adapter: %s uses DoRA or is already merged; using PEFT's merge", name)
                return model.merge_and_unload()
            layer = module.get_base_layer()
            w = dequantize_bnb_weight(layer.weight, state=getattr(layer, "state", None)).float()
            for a in module.active_adapters:
                if a in module.lora_A:
                    w = w + module.get_delta_weight(a).float()
            merged[name] = w
    plain = _dequantize(model.unload())  # unload keeps the trained modules_to_save (embed_tokens, lm_head)
    with torch.no_grad():
        for name, w in merged.items():
            lin = plain.get_submodule(name)
            lin.weight.copy_(w.to(lin.weight.dtype))
    out, inp = plain.get_output_embeddings(), plain.get_input_embeddings()
    if (getattr(plain.config, "tie_word_embeddings", False) and out is not None
            and out.weight.data_ptr() != inp.weight.data_ptr()):
        plain.config.tie_word_embeddings = False  # embed_tokens and lm_head were trained as two copies
    return plain


def _dequantize(model):
    """bitsandbytes model -> plain model in one dtype (the one it was loaded with): dequantized linear
    layers come back in that dtype, while kept-out modules (embeddings, norms) may be in another."""
    dtype = getattr(model.config, "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    if not isinstance(dtype, torch.dtype):
        dtype = model.get_input_embeddings().weight.dtype
    model = model.dequantize(dtype=dtype)
    return model.to(dtype)


def save_model(model, tokenizer, sid_map: SidMap, out_dir: str | Path) -> Path:
    """Write model (safetensors), tokenizer, sid_map.json and llmrec_sid.json as one atomic folder."""
    rec, where = read_sid_record(tokenizer)
    if rec is None:
        raise LlmrecError(f"tokenizer {where} has no SID tokens recorded; build the model with load_base().")
    check_sid_map(tokenizer, sid_map)
    if is_quantized(model):
        # A 4/8-bit (QLoRA) model: later stages train, serve and run on CPU, so store plain weights.
        model = _dequantize(model)
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        sid_map.save(tmp / SID_MAP_FILE)
        write_json(tmp / SID_RECORD_FILE, rec)
    return out_dir


def load_model(model_dir: str | Path, sid_map: SidMap | str | Path | None = None, *,
               dtype: str | torch.dtype | None = None, device_map=None, load_in_4bit: bool = False):
    """(model, tokenizer, sid_map) from a `save_model` folder; refuses a SidMap it was not trained with.

    With `sid_map=None` the folder's own sid_map.json is used.
    """
    from transformers import AutoModelForCausalLM

    from llmrec.llm.presets import compute_dtype_4bit, load_tokenizer, quantization_config_4bit

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise LlmrecError(f"{model_dir}: no config.json; expected a folder written by llmrec save_model.")
    own = model_dir / SID_MAP_FILE
    if sid_map is None:
        if not own.exists():
            raise LlmrecError(f"{model_dir}: no {SID_MAP_FILE}; pass the SidMap the model was trained with.")
        sid_map = SidMap.load(own)
    elif isinstance(sid_map, (str, Path)):
        src = str(sid_map)
        sid_map = SidMap.load(sid_map)
        sid_map.meta.setdefault("source", src)
    check_sid_map(model_dir, sid_map)
    torch_dtype = resolve_dtype(dtype)
    kwargs = {"dtype": torch_dtype}
    if load_in_4bit:
        kwargs["quantization_config"] = quantization_config_4bit(compute_dtype_4bit(torch_dtype))
        kwargs["device_map"] = device_map or {"": torch.cuda.current_device()}
    elif device_map is not None:
        kwargs["device_map"] = device_map
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    rec, _ = read_sid_record(model_dir)
    tokenizer.init_kwargs[SID_RECORD_KEY] = rec
    check_sid_map(tokenizer, sid_map)
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < len(tokenizer):
        raise LlmrecError(f"{model_dir}: embedding table has {rows} rows < tokenizer size {len(tokenizer)}; "
                          "the folder is inconsistent, re-save it with save_model.")
    model.eval()
    return model, tokenizer, sid_map
