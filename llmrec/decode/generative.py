"""`GenerativeRecommender`: model + tokenizer + SidMap + trie + prompt rendering, the one way to
recommend with the LLM. Evaluation (LLMRanker), serving (serve.Recommender), GRPO rollouts and
validation, and the translation check all go through it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from llmrec.corpus import PromptLibrary, load_templates, make_messages, render_prompt, seqrec_messages
from llmrec.corpus.tasks import answer_ends_after_item, sid_history
from llmrec.data.records import Item
from llmrec.decode.recommend import recommend, sample_items
from llmrec.decode.trie import SidTrie
from llmrec.io import LlmrecError
from llmrec.llm import load_model
from llmrec.sid.sidmap import SidMap

ItemScores = list[tuple[str, float]]


def model_prompt_format(model) -> str:
    """The seqrec prompt format a model was trained on (recorded by SFT in its config.json)."""
    config = getattr(model, "config", None)
    return getattr(config, "llmrec_prompt_format", None) or "window"


def model_prompt_library(model) -> PromptLibrary:
    """The prompt templates a model was trained with (recorded by SFT in its config.json as
    `llmrec_prompts`); the shipped templates for models that predate the record."""
    record = getattr(getattr(model, "config", None), "llmrec_prompts", None)
    if not record:
        return load_templates()
    return PromptLibrary.from_dict(record, source=f"{getattr(model.config, '_name_or_path', 'model')} config.json "
                                                  "(llmrec_prompts)")


class GenerativeRecommender:
    """Recommend catalogue items with a fine-tuned LLM through trie-constrained decoding.

    `max_history` keeps the most recent items in a prompt; `template_index` picks the prompt
    paraphrase (0: what eval and serving use); `num_beams` is the default beam width;
    `prompt_format` (window | session | stream) defaults to the format recorded in the model's config at
    training time (`llmrec_prompt_format`; window for models that predate it), and `library` (the prompt
    templates) to the ones recorded there (`model_prompt_library`).
    """

    def __init__(self, model, tokenizer, sid_map: SidMap, items: Mapping[str, Item] | None = None, *,
                 trie: SidTrie | None = None, max_history: int | None = None, template_index: int = 0,
                 num_beams: int = 20, prompt_format: str | None = None, library: PromptLibrary | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.sid_map = sid_map
        self.items = items
        self.max_history = max_history
        self.template_index = template_index
        self.num_beams = num_beams
        self.prompt_format = prompt_format or model_prompt_format(model)
        self.library = library or model_prompt_library(model)
        self.trie = trie or SidTrie(sid_map, tokenizer, device=next(model.parameters()).device)

    @classmethod
    def from_dir(cls, model_dir: str | Path, items: Mapping[str, Item] | None = None, *,
                 device: str | None = None, **kwargs: Any) -> GenerativeRecommender:
        """Load a model folder written by llmrec (its own sid_map.json is used)."""
        model, tokenizer, sid_map = load_model(model_dir)
        if device:
            model.to(device)
        model.eval()
        return cls(model, tokenizer, sid_map, items, **kwargs)

    # ---- prompts -----------------------------------------------------------------------------
    def prompt(self, history_ids: Sequence[str], behavior: str | None = None) -> str:
        """The rendered prompt for a history (oldest first): the training seqrec prompt, or the
        behavior_item task when a target behavior is asked for."""
        if behavior is None:
            msgs = seqrec_messages(history_ids, self.sid_map, self.items, template_index=self.template_index,
                                   max_history=self.max_history, prompt_format=self.prompt_format,
                                   library=self.library)
        else:
            lib = self.library
            hist = list(history_ids)[-self.max_history:] if self.max_history else list(history_ids)
            msgs = make_messages("behavior_item", {"history": sid_history(hist, self.sid_map),
                                                   "target_behavior": lib.behavior_name(behavior)},
                                 library=lib, template_index=self.template_index)
        return render_prompt(self.tokenizer, msgs)

    # ---- recommending ------------------------------------------------------------------------
    def recommend_prompts(self, prompts: Sequence[str] | Any, k: int, *, num_beams: int | None = None,
                          exclude: Sequence[Iterable[str] | None] | None = None,
                          batch_size: int = 16) -> list[ItemScores]:
        """Top-k distinct items per rendered prompt, [(item_id, log_prob), ...] best first."""
        beams = max(k, num_beams or self.num_beams)
        return recommend(self.model, self.tokenizer, self.trie, prompts, k=k, num_beams=beams, exclude=exclude,
                         batch_size=batch_size, score_end=answer_ends_after_item(self.prompt_format))

    def recommend(self, histories: Sequence[Sequence[str]], k: int = 10, *, behavior: str | None = None,
                  exclude_history: bool = False, num_beams: int | None = None,
                  batch_size: int = 16) -> list[ItemScores]:
        """Top-k items after each history of item ids; `exclude_history` never returns a history item."""
        for h in histories:
            missing = [i for i in h if i not in self.sid_map]
            if missing:
                raise LlmrecError(f"item(s) {missing[:3]} have no Semantic ID in this model's SidMap")
        prompts = [self.prompt(h, behavior) for h in histories]
        exclude = [set(h) for h in histories] if exclude_history else None
        return self.recommend_prompts(prompts, k, num_beams=num_beams, exclude=exclude, batch_size=batch_size)

    def sample_prompts(self, prompts: Sequence[str] | Any, n: int, *, temperature: float = 1.0,
                       batch_size: int = 16) -> list[ItemScores]:
        """Up to n distinct items per prompt by constrained sampling (GRPO's sample rollout)."""
        return sample_items(self.model, self.tokenizer, self.trie, prompts, n=n, temperature=temperature,
                            batch_size=batch_size)
