"""The `tiny` preset: a from-scratch Qwen2-style decoder plus a byte-level BPE tokenizer.

The tokenizer is trained on the catalogue text (titles, descriptions, brands, categories) plus any
extra texts (prompt templates), so it builds in a second or two on CPU and is fully reproducible
from its inputs. Everything downstream talks to it through `apply_chat_template` (ChatML).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch

from llmrec.data.records import Item
from llmrec.io import LlmrecError, sha256_json

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"

#: ChatML with `{% generation %}` markers so TRL's assistant-only loss can find the replies.
#: System messages are left out: a from-scratch model learns nothing from a constant preamble, and
#: the corpus's system prompts were about a third of every training row's tokens.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}"
    "{%- elif message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"""
    r"""\s+(?!\S)|\s+"""
)

# Text the tokenizer must handle well even when no prompt templates are passed in.
_CHAT_TEXTS = [
    "system\nYou are a helpful recommender assistant.",
    "user\nHere is my purchase history. What should I buy next?",
    "assistant\nYou might like this item.",
]


@dataclass
class TinyConfig:
    """Shape of the tiny decoder (2.7M parameters with the default vocabulary).

    One layer with an MLP four times the hidden width: the tiny model's job is memorising title <->
    SID pairs and short next-item patterns from scratch. On a 2-core CPU (same data, same minutes)
    one 2048-wide layer learned item2sid/sid2item several times faster than four 768-wide ones; a
    1024-wide one then made 43% more steps than the 2048-wide one in the same minutes and learned
    translation faster still, ranking equally on Amazon Scientific (a small corpus such as
    MovieLens-100K is over-trained sooner: README, "Model shape at 30 minutes").
    """

    vocab_size: int = 6000  # BPE target size (before SID tokens are added)
    hidden_size: int = 256
    num_hidden_layers: int = 1
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 1024
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0
    min_frequency: int = 2


def catalogue_texts(items: dict[str, Item] | Iterable[Item]) -> list[str]:
    """Every text field of the catalogue: title, description, brand and categories per item."""
    values = items.values() if isinstance(items, dict) else items
    out: list[str] = []
    for it in values:
        for text in (it.title, it.description, it.brand, " ".join(it.categories)):
            if text:
                out.append(text)
    return out


def train_tokenizer(texts: list[str], vocab_size: int = 6000, min_frequency: int = 2):
    """Byte-level BPE trained on `texts`, wrapped as a transformers fast tokenizer with ChatML."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not any(t.strip() for t in texts):
        raise LlmrecError("tiny tokenizer: no text to train on; pass items (catalogue) or extra_texts.")
    specials = [ENDOFTEXT, IM_START, IM_END]
    # Exactly Qwen2's pipeline: AutoTokenizer maps a saved qwen2 folder to Qwen2Tokenizer, which
    # rebuilds normalizer/pre-tokenizer from its own code; any other pipeline would change on reload.
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts) + _CHAT_TEXTS * 8, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        bos_token=None,
        model_max_length=2048,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny(items: dict[str, Item] | None = None, extra_texts: Iterable[str] | None = None,
               seed: int = 0, config: TinyConfig | None = None, dtype: torch.dtype | None = None):
    """Train the tokenizer, then build a randomly initialised Qwen2ForCausalLM sized to it.

    Returns (model, tokenizer). Deterministic for the same items, extra texts, seed and config.
    """
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    cfg = config or TinyConfig()
    texts = catalogue_texts(items or {}) + [t for t in (extra_texts or []) if t]
    tokenizer = train_tokenizer(texts, vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency)
    qcfg = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings,
        rope_theta=cfg.rope_theta,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(qcfg)
    if dtype is not None:
        model = model.to(dtype)
    model.generation_config = GenerationConfig(
        eos_token_id=qcfg.eos_token_id, pad_token_id=qcfg.pad_token_id, do_sample=False)
    # Record what the preset was built from (kept in config.json when saved).
    model.config.llmrec_tiny = {"config": asdict(cfg), "seed": seed, "texts_sha256": sha256_json(texts)}
    model.eval()
    return model, tokenizer
