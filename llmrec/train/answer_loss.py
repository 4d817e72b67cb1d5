"""Answer-only SFT loss that sends only the labelled positions through the LM head.

Why by hand: TRL 1.16's fused LM head projects only labelled positions on Triton (GPU) devices;
everywhere else it projects every position of every row and also computes entropy and top-1
side outputs. Our answers are short (a 3-4 token Semantic ID after a ~100-token prompt), so on a
CPU that is ~25x more LM-head work than the loss needs (py-spy: ~37% of a tiny-model step).
On one process without CUDA we run the backbone and project only the answer positions; on GPU
and under DDP / DeepSpeed / FSDP (where the wrapped module must be called as a whole) TRL's own
path is used unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from trl import SFTTrainer

from llmrec.llm.sid_softmax import SidLevelGroups
from llmrec.train.schedule import TimeBudgetSchedule
from llmrec.train.trl_internals import add_train_tokens, log_metric, set_metric

# Config fields that change the logits after the LM head; a model that sets one keeps TRL's path.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                     "logits_scaling")


def compact_loss_supported(model: torch.nn.Module, *, num_processes: int, device: torch.device) -> bool:
    """True when the compact path computes exactly the loss TRL would (plain linear LM head)."""
    if num_processes != 1 or device.type == "cuda":
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    text_config = base.config.get_text_config()
    if any(getattr(text_config, name, None) not in (None, 1.0) for name in _LOGIT_TRANSFORMS):
        return False
    return hasattr(base, "base_model") and base.get_output_embeddings() is not None


def answer_only_loss(model: torch.nn.Module, inputs: dict[str, Any],
                     num_items_in_batch: int | torch.Tensor | None = None,
                     with_stats: bool = True,
                     groups: SidLevelGroups | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(loss, stats) with the next-token NLL summed over labelled positions.

    The loss is divided by `num_items_in_batch` when given (what Trainer passes under gradient
    accumulation), else by the number of labelled tokens, exactly as TRL does. `stats` holds the
    detached `num_valid`, and with `with_stats` also `num_correct` (top-1 hits) and `entropy_sum`
    for TRL's metrics (three more passes over a (tokens x vocab) matrix: only on logging steps).
    With `groups` (the level softmax) a SID target is scored against its own level's rows only.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone_kwargs = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
    hidden = base.base_model(**backbone_kwargs, use_cache=False).last_hidden_state
    labels = inputs["labels"][:, 1:]
    mask = labels != -100
    head = base.get_output_embeddings()
    target = labels[mask]
    if groups is None:
        logits = head(hidden[:, :-1][mask]).float()
        loss_sum = F.cross_entropy(logits, target, reduction="sum")
        parts = [(logits, target)]
    else:
        loss_sum, by_group = groups.nll_sum(hidden[:, :-1][mask], head, target)
        parts = list(by_group.values())
    denom = mask.sum() if num_items_in_batch is None else num_items_in_batch
    loss = loss_sum / torch.as_tensor(denom, device=loss_sum.device).clamp(min=1)
    stats = {"num_valid": mask.sum()}
    if with_stats:
        with torch.no_grad():
            correct, entropy = 0, 0.0
            for logits, tgt in parts:
                logp = logits.log_softmax(-1)
                correct = correct + (logits.argmax(-1) == tgt).sum()
                entropy = entropy - (logp.exp() * logp).sum()
            stats.update(num_correct=torch.as_tensor(correct), entropy_sum=torch.as_tensor(entropy))
    return loss, stats


def level_softmax_loss(model: torch.nn.Module, inputs: dict[str, Any], groups: SidLevelGroups,
                       num_items_in_batch: int | torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
    """The level-softmax loss through the whole (wrapped) model: full logits, each SID target's row
    masked to its level. The path for GPUs and DDP / DeepSpeed / FSDP, where `answer_only_loss`
    cannot call the backbone alone, and for validation loss; equal to it wherever both run. Returns
    (loss, the model's outputs)."""
    labels = inputs["labels"]
    out = model(**{**{k: v for k, v in inputs.items() if k != "labels"}, "use_cache": False})
    logits = out.logits[:, :-1].float()
    target = labels[:, 1:]
    masked = groups.mask_logits(logits, target)
    loss_sum = F.cross_entropy(masked.reshape(-1, masked.shape[-1]), target.reshape(-1), ignore_index=-100,
                               reduction="sum")
    denom = (target != -100).sum() if num_items_in_batch is None else num_items_in_batch
    return loss_sum / torch.as_tensor(denom, device=loss_sum.device).clamp(min=1), out


def sft_trainer_class():
    """TRL's SFTTrainer with the compact loss on single-process CPU training steps."""
    class AnswerOnlySFTTrainer(TimeBudgetSchedule, SFTTrainer):
        """SFTTrainer whose training loss projects only answer positions when that is exact (and whose
        LR may follow a wall-time budget: TimeBudgetSchedule)."""

        def _compact_ok(self, model) -> bool:
            """Whether this run's setup allows the compact loss (decided once, on the first step)."""
            if getattr(self, "_compact", None) is None:
                self._compact = (self.args.loss_type == "nll" and self.label_smoother is None
                                 and self.compute_loss_func is None and not self.aux_loss_enabled
                                 and compact_loss_supported(model, num_processes=self.accelerator.num_processes,
                                                            device=self.args.device))
            return self._compact

        #: set by run_sft for a level-softmax model (llmrec.llm.sid_softmax)
        sid_groups: SidLevelGroups | None = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # validation loss too (TRL's eval path projected every position: ~10% of a demo's SFT minutes)
            compact = not return_outputs and self._compact_ok(model)
            if self.sid_groups is not None and not compact:
                loss, out = level_softmax_loss(model, inputs, self.sid_groups, num_items_in_batch)
                return (loss, out) if return_outputs else loss
            if not compact:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            # entropy / accuracy are logged diagnostics: computed on the batches of logging steps only
            # (and on every validation batch)
            training = model.training
            logs_next = not training or (self.state.global_step + 1) % max(int(self.args.logging_steps), 1) == 0
            loss, stats = answer_only_loss(model, inputs, num_items_in_batch, with_stats=logs_next,
                                           groups=self.sid_groups)
            n = stats["num_valid"].item()
            if logs_next:
                mode = "train" if training else "eval"
                log_metric(self, "entropy", stats["entropy_sum"].item() / n if n else 0.0, mode)
                log_metric(self, "mean_token_accuracy", stats["num_correct"].item() / n if n else 0.0, mode)
            if not training:
                return loss
            mask = inputs.get("attention_mask")
            total = add_train_tokens(self, int(mask.sum().item()) if mask is not None else inputs["input_ids"].numel())
            set_metric(self, "num_tokens", total)
            return loss

    return AnswerOnlySFTTrainer
