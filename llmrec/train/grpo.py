"""GRPO after SFT, in the manner of MiniOneRec, on TRL's GRPOTrainer.

    llmrec train grpo --config recipes/tiny-cpu/grpo.yaml --run runs/demo
    accelerate launch -m llmrec.train.grpo --config recipes/qwen2.5-0.5b/grpo.yaml

Rollouts: TRL 1.16 has no logits-processor hook for its own generation, and beam search through
`generation_kwargs` returns the same completion for every member of a group (zero advantage). We
therefore pass TRL's (experimental) `rollout_func`: it runs our trie-constrained beam search once
per distinct prompt and hands member r of each group the r-th best distinct catalogue item, so a
group is G distinct valid items. We chose `rollout_func` over a trainer subclass because it keeps
TRL's loss, KL, reference-model and logging code untouched; the price is that the function must
know which member of a group each repeated prompt is, which it derives from the prompt order TRL
documents (each prompt repeated `num_generations` times, consecutively, across processes).
"""

from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from trl import GRPOConfig, GRPOTrainer

from llmrec.config import validate_config
from llmrec.corpus import PromptLibrary, render_prompt
from llmrec.corpus.tasks import answer_ends_after_item
from llmrec.decode import GenerativeRecommender, SidTrie
from llmrec.decode.generative import model_prompt_format, model_prompt_library
from llmrec.io import LlmrecError, write_json
from llmrec.llm import load_model
from llmrec.llm.loading import merge_adapter
from llmrec.llm.sid_softmax import SidLevelGroups, model_sid_softmax
from llmrec.train.answer_loss import compact_loss_supported
from llmrec.train.args import stage_main
from llmrec.train.common import (
    NonFiniteGuard,
    SidMapInCheckpoints,
    WallTimeLimit,
    common_training_kwargs,
    latest_checkpoint,
    load_run_inputs,
    peft_config_for,
    run_path,
)
from llmrec.train.config import GRPORecipe, GRPOSettings, recipe_to_dict
from llmrec.train.rewards import CompletionItems, RewardContext, build_rewards
from llmrec.train.schedule import TimeBudgetSchedule, time_budget
from llmrec.train.sft import save_trained
from llmrec.train.trl_internals import log_metric
from llmrec.train.validation import ValidationCallback, has_ranking, plot_validation

log = logging.getLogger(__name__)


def build_rl_dataset(inputs, settings: GRPOSettings, seed: int, prompt_format: str = "window",
                     library: PromptLibrary | None = None):
    """seqrec prompts from the training split plus item2sid prompts, in the model's format and
    templates (`library`; None: the shipped ones); columns: prompt (messages), target, history, task.

    seqrec prompts (`settings.seqrec_prompts`): `events`, the window before each of a random subset
    of training events, target that event's item; `last`, the whole training history of a random
    subset of users, target "" (none exists: what follows is held out). `last` prompts are the inputs
    the valid/test splits ask about (test one item later); only target-free rewards can score them."""
    from datasets import Dataset

    from llmrec.corpus import make_messages, seqrec_messages

    rng = random.Random(seed)
    items = inputs.prepared.items
    if settings.seqrec_prompts == "last":
        cases = [([x.item for x in seq[-settings.max_history:]], "") for seq in inputs.prepared.split.train.values()
                 if seq]
    else:
        cases = [(ex.history, ex.target)
                 for ex in inputs.prepared.split.train_examples(max_history=settings.max_history)]
    rng.shuffle(cases)
    rows = []
    for history, target in cases[: settings.num_seqrec]:
        rows.append({"prompt": seqrec_messages(history, inputs.sid_map, items, template_index=0,
                                               prompt_format=prompt_format, library=library),
                     "target": target, "history": history, "task": "seqrec"})
    with_title = [i for i, it in items.items() if it.title and i in inputs.sid_map]
    rng.shuffle(with_title)
    for item_id in with_title[: settings.num_item2sid]:
        prompt = make_messages("item2sid_title", {"title": items[item_id].title}, seed=seed, key=item_id,
                               library=library)
        rows.append({"prompt": prompt, "target": item_id,
                     "history": [], "task": "item2sid"})
    rng.shuffle(rows)
    if not rows:
        raise LlmrecError("no RL prompts: the training split is empty")
    return Dataset.from_list(rows)


class BudgetedGRPOTrainer(TimeBudgetSchedule, GRPOTrainer):
    """GRPOTrainer whose LR may follow a wall-time budget (train.schedule_by=time), that scores a
    level-softmax model's completions the way it was trained (`sid_groups`, llmrec.llm.sid_softmax),
    and that projects only completion positions through the LM head on a single-process CPU."""

    #: set by run_grpo for a model trained with the level softmax
    sid_groups: SidLevelGroups | None = None

    def _own_logps(self, model) -> bool:
        """Whether token log-probabilities come from `_completion_logps` (see there) or TRL's path."""
        if self.sid_groups is not None:
            return True
        if getattr(self, "_compact_logps", None) is None:
            self._compact_logps = compact_loss_supported(model, num_processes=self.accelerator.num_processes,
                                                         device=self.args.device)
        return self._compact_logps

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                           batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                           **multimodal):
        if not self._own_logps(model) or compute_aux_loss or any(v is not None for v in multimodal.values()):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        return self._completion_logps(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy)

    def _completion_logps(self, model, input_ids, attention_mask, logits_to_keep: int, batch_size: int | None,
                          compute_entropy: bool):
        """Per-token log-probabilities (and entropies) of the completion tokens, projecting only the
        completion positions (`logits_to_keep`). Written by hand: TRL 1.16's fused head projects every
        position of every row off Triton devices (GRPO steps ~4x slower on a CPU), and normalises over
        the whole vocabulary, where a level-softmax model's SID tokens normalise over their level."""
        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids, am = input_ids[start:start + batch_size], attention_mask[start:start + batch_size]
            with self.accelerator.autocast():
                logits = model(input_ids=ids, attention_mask=am, logits_to_keep=logits_to_keep + 1).logits
            logits = logits[:, :-1].float() / self.temperature
            completion = ids[:, -logits_to_keep:]
            if self.sid_groups is not None:
                logits = self.sid_groups.mask_logits(logits, completion)
            logp = logits.log_softmax(-1)
            logps.append(logp.gather(-1, completion.unsqueeze(-1)).squeeze(-1))
            if compute_entropy:
                entropies.append(-(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1))
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None


class ConstrainedRollout:
    """TRL `rollout_func`: G distinct catalogue items per prompt from trie-constrained decoding."""

    def __init__(self, tokenizer, sid_map, trie, settings: GRPOSettings, *, end_token: bool = True):
        self.tokenizer = tokenizer
        self.sid_map = sid_map
        self.trie = trie
        self.settings = settings
        # A completion is the item's SID tokens plus the end of the answer; a `stream` model goes on
        # with the next SID instead, so its completions are the SID tokens alone (end_token False).
        self.end_ids = [trie.end_ids[0]] if end_token else []

    def __call__(self, prompts: list, trainer) -> dict[str, Any]:
        G = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        # Global position of each local prompt -> rank within its group (groups may span processes).
        offset = trainer.accelerator.process_index * len(prompts)
        ranks = [(offset + j) % G for j in range(len(prompts))]
        distinct: list[Any] = []
        slot: list[int] = []
        for j, p in enumerate(prompts):
            if j == 0 or ranks[j] == 0 or p != prompts[j - 1]:
                distinct.append(p)
            slot.append(len(distinct) - 1)
        texts = [render_prompt(self.tokenizer, p) for p in distinct]
        model = trainer.accelerator.unwrap_model(trainer.model)
        rec = GenerativeRecommender(model, self.tokenizer, self.sid_map, trie=self.trie)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            if self.settings.rollout == "beam":
                ranked = rec.recommend_prompts(texts, k=G, num_beams=max(G, 2))
            else:  # "sample" (the recipe's choices are checked before training starts)
                ranked = rec.sample_prompts(texts, n=G, temperature=self.settings.temperature)
        if was_training:
            model.train()
        prompt_ids, completion_ids, logprobs, beam_rank = [], [], [], []
        enc = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        group_items = []
        for j in range(len(prompts)):
            cands = ranked[slot[j]]
            item, score = cands[ranks[j] % len(cands)] if cands else (None, 0.0)
            ids = self.tokenizer.convert_tokens_to_ids(self.sid_map.tokens(item)) if item is not None else []
            ids = list(ids) + self.end_ids
            prompt_ids.append(list(enc[slot[j]]))
            completion_ids.append(ids)
            logprobs.append([float(score) / len(ids)] * len(ids))
            beam_rank.append(ranks[j])
            group_items.append(item)
        self._log(trainer, group_items, G)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs,
                "beam_rank": beam_rank}

    @staticmethod
    def _log(trainer, group_items: list, G: int) -> None:
        mode = "train" if trainer.model.training else "eval"
        groups = [group_items[i:i + G] for i in range(0, len(group_items), G)]
        distinct = np.mean([len({x for x in g if x is not None}) for g in groups]) if groups else 0.0
        valid = np.mean([x is not None for x in group_items]) if group_items else 0.0
        log_metric(trainer, "rollout/distinct_per_group", distinct, mode)
        log_metric(trainer, "rollout/valid_rate", valid, mode)


def run_grpo(recipe: GRPORecipe) -> dict[str, Any]:
    validate_config(recipe)  # every field checked before torch, data or a model load
    inputs = load_run_inputs(recipe.run)
    run_dir = inputs.run_dir
    init_dir = run_path(run_dir, recipe.init_model, "sft/model")
    out_dir = run_path(run_dir, recipe.output, "grpo")
    # float32 master weights (bf16 autocast on GPUs): at GRPO's learning rates (~1e-5) AdamW steps are
    # smaller than bf16's spacing, so a policy held in bf16 would barely move.
    model, tokenizer, sid_map = load_model(init_dir, sid_map=inputs.sid_map, dtype=torch.float32)
    if recipe.adapter.mode == "lora":
        model = merge_adapter(model)  # a fresh adapter on top of the SFT weights (plain models unchanged)
    settings = recipe.grpo
    cfg = recipe.train
    prompt_format, library = model_prompt_format(model), model_prompt_library(model)
    dataset = build_rl_dataset(inputs, settings, cfg.seed, prompt_format, library)
    trie = SidTrie(sid_map, tokenizer, device=model.device)
    decoder = CompletionItems.from_tokenizer(tokenizer, sid_map)
    reward_funcs, weights = build_rewards(RewardContext(decoder, settings, run_dir, sid_map, inputs.prepared))
    G = settings.num_generations
    args = GRPOConfig(
        **common_training_kwargs(cfg, out_dir),
        num_generations=G,
        max_completion_length=max(len(c) for c in sid_map.codes.values()) + 1,
        beta=settings.beta,
        loss_type=settings.loss_type,
        scale_rewards=settings.scale_rewards,
        reward_weights=weights,
        temperature=settings.temperature,
        remove_unused_columns=False,
        log_completions=False,
    )
    val_cb = ValidationCallback.for_policy(inputs.prepared, tokenizer, sid_map, trie, library,
                                           samples=settings.eval_samples, beams=settings.eval_beams, seed=cfg.seed,
                                           name="grpo-policy", max_history=settings.max_history,
                                           every=settings.eval_every, keep_best=settings.keep_best,
                                           margin_z=settings.keep_best_z)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is a deliberate choice (see top)
    guard = NonFiniteGuard()
    trainer = BudgetedGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config_for(recipe.adapter),
        rollout_func=ConstrainedRollout(tokenizer, sid_map, trie, settings,
                                        end_token=answer_ends_after_item(prompt_format)),
        callbacks=[WallTimeLimit(cfg.max_minutes), val_cb, guard, SidMapInCheckpoints(sid_map)],
    )
    trainer.time_budget = time_budget(cfg)
    if model_sid_softmax(model) == "level":
        trainer.sid_groups = trie.level_groups(model)
    resume = latest_checkpoint(out_dir, recipe.resume)
    if resume:
        val_cb.resume_from(resume)  # the runs before the interruption and the step they kept
    ref_before = _checksum(trainer.ref_model)
    t0 = time.time()
    trainer.train(resume_from_checkpoint=resume or None)
    train_s = time.time() - t0
    guard.raise_if_diverged()
    best = val_cb.finish(trainer.state.global_step, trainer.model)
    history = trainer.state.log_history
    rewards = [h["reward"] for h in history if "reward" in h]
    summary = {
        "stage": "grpo",
        "global_step": trainer.state.global_step,
        "train_seconds": round(train_s, 1),
        "s_per_step": round(train_s / max(1, trainer.state.global_step), 2),
        "reward_mean_first": rewards[0] if rewards else None,
        "reward_mean_last": rewards[-1] if rewards else None,
        "distinct_per_group": _last(history, "rollout/distinct_per_group"),
        "valid_rate": _last(history, "rollout/valid_rate"),
        "kl_last": _last(history, "kl"),
        "validation": val_cb.history,
        "validation_split": val_cb.split if val_cb.enabled else None,
        # keep_best: the saved policy is this step's (the validation row it was chosen by)
        "kept_step": best["step"] if best else trainer.state.global_step,
        # With LoRA there is no separate reference model (TRL disables the adapter instead): None.
        "reference_checksum": {"before": ref_before, "after": _checksum(trainer.ref_model),
                               "policy_after": _checksum(trainer.model)},
        "recipe": recipe_to_dict(recipe),
        "sid_fingerprint": sid_map.fingerprint,
    }
    if trainer.is_world_process_zero():
        save_trained(trainer.model, tokenizer, sid_map, out_dir)
        write_json(out_dir / "train_summary.json", summary)
        write_json(out_dir / "log_history.json", history)
        _plot(history, val_cb.history, out_dir / "grpo.png", kept_step=best["step"] if best else None)
    return summary


def _checksum(model) -> float | None:
    """Sum of all weights (float64): a cheap fingerprint to show the reference model stays fixed."""
    if model is None:
        return None
    with torch.no_grad():
        return float(sum(p.detach().double().sum() for p in model.parameters()))


def _last(history: list[dict], key: str):
    return next((h[key] for h in reversed(history) if key in h), None)


def _plot(history: list[dict], validation: list[dict], path: Path, kept_step: int | None = None) -> None:
    """grpo.png: reward (and KL on a second axis) per step, with a legend and labelled axes; a validation
    panel only when validation ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_val = has_ranking(validation)
    fig, axes = plt.subplots(1, 2 if has_val else 1, figsize=(10 if has_val else 5.5, 3.5), squeeze=False)
    ax = axes[0][0]
    steps = [h["step"] for h in history if "reward" in h]
    lines = ax.plot(steps, [h["reward"] for h in history if "reward" in h], label="reward (mean of the group)")
    kl = [(h["step"], h["kl"]) for h in history if "kl" in h]
    if kl:
        ax2 = ax.twinx()
        lines += ax2.plot(*zip(*kl), color="tab:red", alpha=0.6, label="KL to the reference")
        ax2.set_ylabel("KL")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_title("GRPO training")
    ax.legend(lines, [ln.get_label() for ln in lines], loc="best", fontsize=8)
    if has_val:
        plot_validation(axes[0][1], validation, kept_step)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    return stage_main("grpo", run_grpo, argv)


if __name__ == "__main__":
    raise SystemExit(main())
