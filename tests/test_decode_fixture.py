"""Shared fixture for the decode tests (no tests here): a tiny real Qwen2 model + BPE tokenizer
with SID tokens, built by llmrec.llm.load_base('tiny') when available, else built directly."""

from __future__ import annotations

import os
import random

import torch

from llmrec.sid.sidmap import SidMap

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXTS = ["red lab beaker glass", "steel tweezers set", "digital caliper gauge", "nitrile gloves box",
         "magnifying lens kit", "user history items recommend next"] * 4


def synthetic_map(n_items: int = 60, levels: int = 3, size: int = 6, seed: int = 0,
                  extra_level_for: int = 0) -> SidMap:
    """Random distinct SIDs; the first `extra_level_for` items share a base SID with another item and
    get a 4th disambiguation level (then the other item also gets one, keeping it prefix-free)."""
    rng = random.Random(seed)
    seen: set[tuple[int, ...]] = set()
    codes: dict[str, tuple[int, ...]] = {}
    while len(codes) < n_items:
        c = tuple(rng.randrange(size) for _ in range(levels))
        if c not in seen:
            seen.add(c)
            codes[f"i{len(codes)}"] = c
    if extra_level_for:
        ids = list(codes)
        for j in range(extra_level_for):
            a, b = ids[2 * j], ids[2 * j + 1]
            codes[b] = codes[a] + (1,)
            codes[a] = codes[a] + (0,)
    sm = SidMap(codes)
    sm.validate()
    return sm


def tiny_model(sid_map: SidMap, seed: int = 0):
    """(model, tokenizer) with the SID tokens of `sid_map` as atomic tokens."""
    try:
        from llmrec.llm import TinyConfig, load_base
    except ImportError:
        return _fallback(sid_map, seed)
    cfg = TinyConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, intermediate_size=128, min_frequency=1)
    model, tok = load_base("tiny", sid_map=sid_map, extra_texts=TEXTS, init="random", seed=seed,
                           tiny_config=cfg)
    model.eval()
    return model, tok


def _fallback(sid_map: SidMap, seed: int):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXTS, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   padding_side="left")
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    fast.add_tokens([AddedToken(t, normalized=False, special=False) for t in sid_map.all_tokens()])
    cfg = Qwen2Config(vocab_size=len(fast), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=128, eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.pad_token_id)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).eval()
    return model, fast


def chat_prompts(tokenizer, sid_map: SidMap, n: int, seed: int = 0) -> tuple[list[str], list[set[str]]]:
    """Rendered ChatML prompts of different lengths (histories of 1..6 items) and the history sets."""
    rng = random.Random(seed)
    items = sid_map.item_ids
    prompts, hists = [], []
    for _ in range(n):
        hist = rng.sample(items, rng.randint(1, 6))
        msg = [{"role": "user", "content": "History: " + ", ".join(sid_map.sid_string(i) for i in hist)
                + ". Recommend the next item."}]
        prompts.append(tokenizer.apply_chat_template(msg, tokenize=False, add_generation_prompt=True))
        hists.append(set(hist))
    return prompts, hists
