"""Pieces SFT and GRPO share: device/precision choice, PEFT config, wall-time limit, run inputs."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from llmrec.data.pairing import check_sid_for_data
from llmrec.data.store import PreparedData, load_prepared
from llmrec.io import LlmrecError
from llmrec.llm.dropout import HiddenDropout
from llmrec.llm.presets import use_cuda
from llmrec.sid.sidmap import SidMap
from llmrec.train.checkpoints import checkpoint_folder, resume_checkpoint
from llmrec.train.config import PRECISIONS, AdapterConfig, TrainConfig

log = logging.getLogger(__name__)


@dataclass
class RunInputs:
    """The earlier stages' artifacts a training stage reads from runs/NAME/."""

    run_dir: Path
    prepared: PreparedData
    sid_map: SidMap


def load_run_inputs(run_dir: str | Path) -> RunInputs:
    run_dir = Path(run_dir)
    sid_path = run_dir / "sid" / "sid_map.json"
    if not sid_path.exists():
        raise LlmrecError(f"{sid_path} not found; run `llmrec sid build --run {run_dir}` first.")
    inputs = RunInputs(run_dir=run_dir, prepared=load_prepared(run_dir / "data"), sid_map=SidMap.load(sid_path))
    check_sid_for_data(inputs.sid_map, inputs.prepared, run=run_dir)  # SIDs built from other data: refused
    return inputs


def run_path(run_dir: Path, value: str | None, default: str) -> Path:
    """A recipe path: `value` with `{run}` replaced by the run folder, or RUN/`default` when unset."""
    if not value:
        return Path(run_dir) / default
    return Path(value.replace("{run}", str(run_dir)))




def precision_kwargs(precision: str = "auto") -> dict[str, Any]:
    """TRL 1.16 defaults to bf16 and refuses CPU: choose explicitly (`accelerate launch --cpu` counts as CPU).

    'auto': bf16 autocast on GPUs that support it (else fp16), float32 on CPU. 'fp32' turns
    autocast off on a GPU too (a from-scratch model at a high learning rate can overflow in bf16).
    """
    if precision not in PRECISIONS:
        raise LlmrecError(f"train.precision {precision!r} unknown; choose one of {', '.join(PRECISIONS)}")
    if not use_cuda():
        return {"bf16": False, "fp16": False, "use_cpu": True}
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16", "use_cpu": False}


def common_training_kwargs(cfg: TrainConfig, output_dir: Path) -> dict[str, Any]:
    """TrainingArguments fields shared by SFTConfig and GRPOConfig."""
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio of total steps
        weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed,
        gradient_checkpointing=cfg.gradient_checkpointing,
        dataloader_num_workers=cfg.num_workers,
        report_to=cfg.report_to,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        **precision_kwargs(cfg.precision),
    )


def peft_config_for(adapter: AdapterConfig, task_type: str = "CAUSAL_LM"):
    """LoRA config, or None for full / embeddings-only training.

    New SID rows train through `modules_to_save=[embed_tokens, lm_head]`: PEFT's
    `trainable_token_indices` breaks TRL's fused LM head on tied-embedding models.
    """
    if adapter.mode in ("full", "embeddings"):
        return None
    if adapter.mode != "lora":
        raise LlmrecError(f"adapter.mode {adapter.mode!r}: expected lora, full or embeddings")
    from peft import LoraConfig

    return LoraConfig(r=adapter.r, lora_alpha=adapter.alpha, lora_dropout=adapter.dropout,
                      target_modules=adapter.target_modules, modules_to_save=list(adapter.modules_to_save),
                      task_type=task_type)


def freeze_for_mode(model: torch.nn.Module, mode: str) -> None:
    """For mode=embeddings train only the input embeddings and the output head."""
    if mode != "embeddings":
        return
    for p in model.parameters():
        p.requires_grad_(False)
    model.get_input_embeddings().weight.requires_grad_(True)
    out = model.get_output_embeddings()
    if out is not None:
        out.weight.requires_grad_(True)


class WallTimeLimit(TrainerCallback):
    """Stop training (and save a checkpoint) after `minutes` of wall time."""

    def __init__(self, minutes: float | None):
        self.limit = None if minutes is None else minutes * 60.0
        self.start = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.limit is not None and time.monotonic() - self.start > self.limit:
            log.info("wall-time limit of %.1f min reached at step %d; stopping", self.limit / 60, state.global_step)
            control.should_training_stop = True
            control.should_save = True
        return control


class LateDropout(TrainerCallback):
    """Keeps `model.dropout`'s hooks detached until training has made `from_epoch` passes over the
    corpus (fractional; a resumed run reads the restored epoch)."""

    def __init__(self, dropout: HiddenDropout, from_epoch: float):
        self.dropout = dropout
        self.from_epoch = from_epoch
        if from_epoch > 0:
            dropout.remove()

    def on_step_begin(self, args, state, control, **kwargs):
        if (state.epoch or 0.0) < self.from_epoch:
            self.dropout.remove()
        elif not self.dropout.active:
            log.info("model.dropout %.2f on from epoch %.2f (step %d)", self.dropout.p, state.epoch or 0.0,
                     state.global_step)
            self.dropout.attach()


class NonFiniteGuard(TrainerCallback):
    """Stop at the first logged non-finite loss or gradient norm, so a diverged model is never saved.

    Trainer keeps going after a NaN (TRL then logs the loss as 0); `diverged` holds the step and the
    offending values, and the stage raises `raise_if_diverged()` instead of saving.
    """

    KEYS = ("loss", "grad_norm")

    def __init__(self) -> None:
        self.diverged: dict[str, Any] | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        bad = {k: logs[k] for k in self.KEYS if isinstance((logs or {}).get(k), (int, float))
               and not math.isfinite(float(logs[k]))}
        if bad and self.diverged is None:
            self.diverged = {"step": state.global_step, **bad}
            log.error("training diverged at step %d (%s); stopping", state.global_step, bad)
            control.should_training_stop = True
            control.should_save = False
        return control

    def raise_if_diverged(self, hint: str = "") -> None:
        if self.diverged is not None:
            raise LlmrecError(f"training diverged at step {self.diverged['step']} "
                              f"({', '.join(f'{k}={v}' for k, v in self.diverged.items() if k != 'step')}); "
                              "nothing was saved. Lower train.learning_rate, or set train.precision=fp32 "
                              f"on a GPU{hint}.")


class SidMapInCheckpoints(TrainerCallback):
    """Write sid_map.json into every checkpoint, so a checkpoint loads (and evaluates) on its own."""

    def __init__(self, sid_map) -> None:
        self.sid_map = sid_map

    def on_save(self, args, state, control, **kwargs):
        folder = checkpoint_folder(args.output_dir, state.global_step)
        if state.is_world_process_zero and folder.is_dir():
            self.sid_map.save(folder / "sid_map.json")


def latest_checkpoint(output_dir: Path, resume: bool | str = True) -> str | None:
    """The checkpoint to resume from: the newest *complete* one (llmrec.train.checkpoints)."""
    return resume_checkpoint(resume, output_dir)
