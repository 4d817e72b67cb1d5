"""The model part of a bundle: full weights through llmrec.llm.load_model, a LoRA adapter through PEFT's
AutoPeftModelForCausalLM; safetensors only."""

from __future__ import annotations

import logging
from pathlib import Path

from llmrec.bundle.io import SID_MAP_FILE, assert_safetensors_only, is_adapter_dir
from llmrec.bundle.paths import looks_local
from llmrec.io import LlmrecError, read_json
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)


def load_model_dir(model_dir: str | Path, sid_map: SidMap | None = None, device: str | None = None):
    """(model, tokenizer, sid_map) from a bundle or save_model folder: full weights or a PEFT adapter.

    Refuses a folder with pickle-based weight files (.bin, .pt, ...): only safetensors are read.
    """
    from llmrec.llm import load_model

    model_dir = Path(model_dir)
    assert_safetensors_only(model_dir)
    if is_adapter_dir(model_dir) and not (model_dir / "config.json").exists():
        model, tok, sm = _load_adapter(model_dir, sid_map)
    else:
        model, tok, sm = load_model(model_dir, sid_map)
    if device:
        model.to(device)
    model.eval()
    return model, tok, sm


def _load_adapter(model_dir: Path, sid_map: SidMap | None):
    """Base model named in adapter_config.json, resized to the tokenizer's SID tokens, adapter applied
    (AutoPeftModelForCausalLM does the resize when the folder carries the tokenizer)."""
    from peft import AutoPeftModelForCausalLM

    from llmrec.llm.presets import load_tokenizer
    from llmrec.llm.sid_tokens import SID_RECORD_KEY, check_sid_map, read_sid_record

    sid_map = sid_map or SidMap.load(model_dir / SID_MAP_FILE)
    check_sid_map(model_dir, sid_map)
    base = read_json(model_dir / "adapter_config.json").get("base_model_name_or_path")
    if not base:
        raise LlmrecError(f"{model_dir}/adapter_config.json names no base_model_name_or_path; re-bundle with "
                          "`llmrec bundle --merge` so it carries full weights.")
    tok = load_tokenizer(model_dir)
    rec, _ = read_sid_record(model_dir)
    tok.init_kwargs[SID_RECORD_KEY] = rec
    try:
        model = AutoPeftModelForCausalLM.from_pretrained(str(model_dir), use_safetensors=True)
    except (OSError, ValueError) as e:
        raise LlmrecError(f"{model_dir}: adapter base {base!r} cannot be loaded ({e}); bundle with --merge so "
                          "it carries full weights.") from e
    if model.get_input_embeddings().weight.shape[0] < len(tok):
        raise LlmrecError(f"{model_dir}: the adapter's base has fewer embedding rows than the tokenizer "
                          f"({len(tok)}); re-bundle with --merge.")
    check_sid_map(tok, sid_map)
    return model, tok, sid_map


def needs_merge(model, merge: bool | None) -> bool:
    """Merge a PEFT model when asked, or (merge=None) when its base is not a Hub id."""
    if not hasattr(model, "merge_and_unload"):
        return False
    if merge is not None:
        return merge
    base = getattr(getattr(model, "peft_config", {}).get("default"), "base_model_name_or_path", None) or ""
    # an adapter is only portable when its base is a Hub id (not a preset or a local path)
    return "/" not in base or looks_local(base)
