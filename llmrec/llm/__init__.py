"""LLM side: base model presets, SID tokens in the vocabulary, embedding init, save/load with a SidMap."""

from llmrec.llm.loading import SID_MAP_FILE, load_base, load_model, save_model
from llmrec.llm.presets import PRESETS, load_pretrained, resolve_dtype
from llmrec.llm.sid_tokens import (
    SID_RECORD_FILE,
    add_sid_tokens,
    check_sid_map,
    init_sid_rows,
    resize_for_tokens,
    sid_init_loss,
    sid_token_id_table,
)
from llmrec.llm.tiny import CHATML_TEMPLATE, TinyConfig, build_tiny, catalogue_texts, train_tokenizer

__all__ = [
    "CHATML_TEMPLATE", "PRESETS", "SID_MAP_FILE", "SID_RECORD_FILE", "TinyConfig", "add_sid_tokens",
    "build_tiny", "catalogue_texts", "check_sid_map", "init_sid_rows", "load_base", "load_model",
    "load_pretrained", "resize_for_tokens", "resolve_dtype", "save_model", "sid_init_loss",
    "sid_token_id_table", "train_tokenizer",
]
