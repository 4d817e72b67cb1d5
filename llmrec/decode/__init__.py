"""Trie-constrained decoding: SID trie as tensors, a LogitsProcessor, top-K recommendation."""

from llmrec.decode.generative import GenerativeRecommender
from llmrec.decode.processor import SidConstrainedLogitsProcessor
from llmrec.decode.recommend import (
    clean_generation_config,
    constrained_generation_config,
    encode_prompts,
    recommend,
    recommend_hf,
    sample_items,
)
from llmrec.decode.trie import SidTrie, default_end_ids

__all__ = [
    "GenerativeRecommender",
    "SidConstrainedLogitsProcessor",
    "SidTrie",
    "clean_generation_config",
    "constrained_generation_config",
    "default_end_ids",
    "encode_prompts",
    "recommend",
    "recommend_hf",
    "sample_items",
]
