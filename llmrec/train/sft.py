"""LoRA / full / embeddings-only supervised fine-tuning on the instruction corpus (TRL SFTTrainer).

    llmrec train sft --config recipes/tiny-cpu/sft.yaml --run runs/demo
    accelerate launch -m llmrec.train.sft --config recipes/smollm2-135m/sft.yaml --run runs/sci
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from llmrec.config import validate_config
from llmrec.io import write_json
from llmrec.llm.dropout import add_hidden_dropout
from llmrec.llm.sid_softmax import SidLevelGroups
from llmrec.train.answer_loss import sft_trainer_class
from llmrec.train.args import stage_main
from llmrec.train.common import (
    LateDropout,
    NonFiniteGuard,
    SidMapInCheckpoints,
    WallTimeLimit,
    common_training_kwargs,
    freeze_for_mode,
    latest_checkpoint,
    load_run_inputs,
    peft_config_for,
    run_path,
)
from llmrec.train.config import SFTRecipe, recipe_to_dict
from llmrec.train.schedule import time_budget
from llmrec.train.validation import ValidationCallback, has_ranking, plot_validation

log = logging.getLogger(__name__)


def _seqrec_eval_subset(dataset, limit: int):
    """Validation loss is reported on seqrec prompts (the task that matters for recommendation)."""
    if dataset is None or len(dataset) == 0:
        return None
    if "task" in dataset.column_names:
        dataset = dataset.filter(lambda t: t == "seqrec", input_columns="task")
    if len(dataset) > limit:
        dataset = dataset.shuffle(seed=0).select(range(limit))
    return dataset


def _drop_metadata(dataset):
    keep = {"prompt", "completion", "messages", "text"}
    return dataset.remove_columns([c for c in dataset.column_names if c not in keep])


def run_sft(recipe: SFTRecipe) -> dict[str, Any]:
    """Train, save the model bundle into RUN/sft (or recipe.output), return the summary."""
    validate_config(recipe)  # every field checked before torch, data or a model load
    from trl import SFTConfig

    from llmrec.corpus import corpus_prompt_library, load_corpus, load_corpus_manifest
    from llmrec.llm import load_base, load_model

    inputs = load_run_inputs(recipe.run)
    out_dir = run_path(inputs.run_dir, recipe.output, "sft")
    corpus_dir = run_path(inputs.run_dir, recipe.corpus, "corpus")
    datasets = load_corpus(corpus_dir, sid_map=inputs.sid_map)
    manifest = load_corpus_manifest(corpus_dir)
    library = corpus_prompt_library(corpus_dir, manifest)
    torch.manual_seed(recipe.train.seed)
    t0 = time.time()
    init_dir = run_path(inputs.run_dir, recipe.init_model, "sft/model") if recipe.init_model else None
    if init_dir is not None:
        log.info("continuing from %s (its SID rows are kept)", init_dir)
        model, tokenizer, _ = load_model(init_dir, sid_map=inputs.sid_map, dtype=recipe.model.dtype,
                                         load_in_4bit=recipe.model.load_in_4bit)
    else:
        model, tokenizer = load_base(recipe.model.preset, sid_map=inputs.sid_map, items=inputs.prepared.items,
                                     extra_texts=_prompt_texts(library), init=recipe.model.init, dtype=recipe.model.dtype, seed=recipe.train.seed,
                                     trust_remote_code=recipe.model.trust_remote_code,
                                     load_in_4bit=recipe.model.load_in_4bit, tiny_config=_tiny_config(recipe),
                                     sequences=inputs.prepared.split.train_items() if recipe.model.init_collaborative else None,
                                     collaborative=recipe.model.init_collaborative)
    load_s = time.time() - t0
    seqrec_format = manifest.get("config", {}).get("seqrec_format", "window")
    multi_turn = seqrec_format == "session"
    if multi_turn:  # every assistant turn is trained, user turns between them are not
        tokenizer.chat_template = training_chat_template(tokenizer)
    # Recorded in config.json: GenerativeRecommender prompts the model in the format and with the
    # templates it learnt.
    model.config.llmrec_prompt_format = seqrec_format
    model.config.llmrec_prompts = library.to_dict()
    model.config.llmrec_sid_softmax = recipe.model.sid_softmax  # how GRPO and decoding must score it
    freeze_for_mode(model, recipe.adapter.mode)
    dropout = add_hidden_dropout(model, recipe.model.dropout)  # training only; removed before saving

    cfg = recipe.train
    eval_ds = _seqrec_eval_subset(datasets.get("valid"), cfg.max_eval_samples)
    args = SFTConfig(
        **common_training_kwargs(cfg, out_dir),
        max_length=cfg.max_length,
        packing=cfg.packing,
        completion_only_loss=True,
        assistant_only_loss=multi_turn,
        eval_strategy="steps" if (eval_ds is not None and cfg.eval_steps) else "no",
        eval_steps=cfg.eval_steps,
        # Tokenising a large corpus in one process takes minutes on a small CPU.
        dataset_num_proc=min(4, os.cpu_count() or 1) if len(datasets["train"]) > 20000 else None,
    )
    train_ds = _drop_metadata(datasets["train"])
    guard = NonFiniteGuard()
    val_cb = _validation_callback(recipe, inputs, model, tokenizer, library)
    trainer = sft_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=_drop_metadata(eval_ds) if eval_ds is not None else None,
        processing_class=tokenizer,
        peft_config=peft_config_for(recipe.adapter),
        callbacks=[WallTimeLimit(cfg.max_minutes), guard, SidMapInCheckpoints(inputs.sid_map), val_cb]
        + ([LateDropout(dropout, recipe.model.dropout_from_epoch)] if dropout.modules else []),
    )
    trainer.time_budget = time_budget(cfg)
    if recipe.model.sid_softmax == "level":
        trainer.sid_groups = SidLevelGroups.for_model(tokenizer, inputs.sid_map,
                                                      model.get_output_embeddings().weight.shape[0])
    resume = latest_checkpoint(out_dir, recipe.resume)
    if recipe.resume is True and resume is None:
        log.info("no checkpoint in %s; starting fresh", out_dir)
    if resume:
        val_cb.resume_from(resume)  # the runs before the interruption and the step they kept
    t1 = time.time()
    result = trainer.train(resume_from_checkpoint=resume or None)
    train_s = time.time() - t1
    dropout.remove()
    guard.raise_if_diverged()
    best = val_cb.finish(trainer.state.global_step, trainer.model)  # keep_best: weights of the best run
    metrics: dict[str, Any] = dict(result.metrics)
    if eval_ds is not None:
        metrics.update(trainer.evaluate())
    tokens = _count_train_tokens(trainer)
    summary = {
        "stage": "sft",
        "preset": recipe.model.preset,
        "init_model": str(init_dir) if init_dir else None,
        "corpus": str(corpus_dir),
        "mode": recipe.adapter.mode,
        "global_step": trainer.state.global_step,
        "train_seconds": round(train_s, 1),
        "model_load_seconds": round(load_s, 1),
        "tokens_per_s": round(tokens / train_s, 1) if tokens and train_s > 0 else None,
        "loss_first": _first_loss(trainer.state.log_history),
        "loss_last": _last_loss(trainer.state.log_history),
        "eval_loss_seqrec": metrics.get("eval_loss"),
        "eval_ppl_seqrec": math.exp(metrics["eval_loss"]) if metrics.get("eval_loss") is not None else None,
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "validation": val_cb.history,
        "validation_split": val_cb.split if val_cb.enabled else None,
        # validation.keep_best: the saved model is this step's (the validation row it was chosen by)
        "kept_step": best["step"] if best else trainer.state.global_step,
        "recipe": recipe_to_dict(recipe),
        "sid_fingerprint": inputs.sid_map.fingerprint,
        "data_fingerprint": inputs.prepared.fingerprint,
    }
    if trainer.is_world_process_zero():
        save_trained(trainer.model, tokenizer, inputs.sid_map, out_dir)
        write_json(out_dir / "train_summary.json", summary)
        write_json(out_dir / "log_history.json", trainer.state.log_history)
        _plot_losses(trainer.state.log_history, out_dir / "loss.png", val_cb.history, best["step"] if best else None)
    return summary


# SmolLM2-Instruct's ChatML (default system turn) with the assistant reply inside generation markers;
# TRL 1.16 ships marked versions of Qwen2.5/Qwen3/Llama 3/... templates but not this one.
_SMOLLM2_MARKED = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}{% endif %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_PROBE_CHAT = [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"},
               {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"},
               {"role": "assistant", "content": "a2"}]


def training_chat_template(tokenizer) -> str:
    """The tokenizer's chat template with `{% generation %}` markers around assistant replies, rendering
    every conversation exactly as the original does (checked on a probe with and without a system
    turn): the original when it is marked already (the tiny preset's), else TRL's patched template,
    else our marked SmolLM2 template. The model is saved with it, so eval and serving render the same."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    from llmrec.io import LlmrecError

    original = tokenizer.chat_template
    if isinstance(original, str) and has_generation_markers(original):
        return original
    candidates = [_SMOLLM2_MARKED]
    try:
        patched = get_training_chat_template(tokenizer)
        candidates.insert(0, patched or original)
    except ValueError:
        pass

    def render(template: str, messages: list[dict], gen: bool) -> str:
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             add_generation_prompt=gen)

    probes = [(_PROBE_CHAT, False), (_PROBE_CHAT[1:], False), (_PROBE_CHAT[1:4], True)]
    for cand in candidates:
        try:
            same = all(render(cand, m, g) == render(original, m, g) for m, g in probes)
        except Exception:  # noqa: BLE001 - a template that cannot render the probe is not a match
            same = False
        if same and has_generation_markers(cand):
            return cand
    raise LlmrecError(f"{getattr(tokenizer, 'name_or_path', 'this model')}: its chat template has no "
                      "{% generation %} markers and none known renders it identically; seqrec_format: session "
                      "needs them (assistant-only loss). Add the markers to the template, or use "
                      "seqrec_format: window.")


def _validation_callback(recipe: SFTRecipe, inputs, model, tokenizer, library) -> ValidationCallback:
    """HR/NDCG on `recipe.validation.samples` validation users during training (`validation.runs` > 0):
    spread over the wall-time budget under schedule_by=time, else over the planned steps; keep_best
    favours the final, annealed weights."""
    from llmrec.decode import SidTrie

    v, cfg = recipe.validation, recipe.train
    by_time = cfg.schedule_by == "time" and v.runs > 0
    trie = SidTrie(inputs.sid_map, tokenizer, device=model.device) if v.runs else None
    return ValidationCallback.for_policy(inputs.prepared, tokenizer, inputs.sid_map, trie, library,
                                         samples=v.samples if v.runs else 0, beams=v.beams, seed=cfg.seed,
                                         name="sft-model", keep_best=v.keep_best, margin_z=v.keep_best_z,
                                         every_s=cfg.max_minutes * 60.0 / v.runs if by_time else 0.0,
                                         runs=0 if by_time else v.runs, favour_last=True)


def _prompt_texts(lib) -> list[str]:
    """The prompt templates' words, for the tiny preset's tokenizer (trained from scratch): frequent
    enough to become whole tokens, so prompts stay short, and text to train on at all when the
    catalogue has none (sequence-only datasets). Other presets ignore them."""
    from llmrec.corpus.tasks import SESSION_NEXT

    texts = [t.system for t in lib.tasks.values()] + [p for t in lib.tasks.values() for p in t.paraphrases]
    return (texts + [SESSION_NEXT]) * 4


def _tiny_config(recipe: SFTRecipe):
    if not recipe.model.tiny:
        return None
    from llmrec.llm.tiny import TinyConfig

    return TinyConfig(**recipe.model.tiny)


def save_trained(model, tokenizer, sid_map, out_dir: Path) -> Path:
    """Save OUT/model as a plain (merged) model that every later stage loads; with LoRA also keep
    the adapter alone in OUT/adapter (what a Hub bundle of a Hub-hosted base needs)."""
    from llmrec.llm import save_model
    from llmrec.llm.loading import merge_adapter

    if hasattr(model, "merge_and_unload"):
        model.save_pretrained(out_dir / "adapter")
        tokenizer.save_pretrained(out_dir / "adapter")
        model = merge_adapter(model)  # full-precision merge also on a 4-bit (QLoRA) base
    return save_model(model, tokenizer, sid_map, out_dir / "model")


def _count_train_tokens(trainer) -> int:
    """Tokens seen: non-padding tokens per epoch times epochs done (approximate under early stop)."""
    try:
        ds = trainer.train_dataset
        per_epoch = sum(len(x) for x in ds["input_ids"])
        steps_per_epoch = max(1, math.ceil(len(ds) / (trainer.args.per_device_train_batch_size
                                                     * trainer.args.gradient_accumulation_steps)))
        # every process sees its own share of each global step
        return int(per_epoch * trainer.state.global_step / steps_per_epoch) * max(1, trainer.args.world_size)
    except Exception:  # noqa: BLE001 - the figure is informative only
        return 0


def _first_loss(history: list[dict]) -> float | None:
    return next((h["loss"] for h in history if "loss" in h), None)


def _last_loss(history: list[dict]) -> float | None:
    return next((h["loss"] for h in reversed(history) if "loss" in h), None)


def _plot_losses(history: list[dict], path: Path, validation: list[dict] | None = None,
                 kept_step: int | None = None) -> None:
    """loss.png: training and validation loss per step; a validation-ranking panel when it ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not train:
        return
    ranked = has_ranking(validation or [])
    fig, axes = plt.subplots(1, 2 if ranked else 1, figsize=(11 if ranked else 6, 3.5), squeeze=False)
    ax = axes[0][0]
    ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="valid seqrec loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("SFT")
    ax.legend()
    ax.grid(alpha=0.3)
    if ranked:
        plot_validation(axes[0][1], validation, kept_step)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    return stage_main("sft", run_sft, argv)


if __name__ == "__main__":
    raise SystemExit(main())
