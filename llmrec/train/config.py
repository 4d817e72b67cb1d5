"""Recipe configs: dataclasses loaded from yaml, overridable from the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from llmrec.io import LlmrecError

T = TypeVar("T")


@dataclass
class ModelConfig:
    """Which base model, how SID rows start, how it is adapted."""

    preset: str = "tiny"  # tiny | smollm2-135m | any HF id or local path
    init: str = "semantic"  # semantic | mean | random (new SID token rows)
    # Weights as trained: float32 master weights, with bf16/fp16 autocast on GPUs (precision_kwargs).
    # 'bf16' halves memory but AdamW updates below bf16's resolution (lr ~1e-5) are rounded away.
    # None/'auto': bf16 on GPUs that support it, float32 on CPU.
    dtype: str | None = "float32"
    trust_remote_code: bool = False
    load_in_4bit: bool = False  # QLoRA (GPU, bitsandbytes)
    tiny: dict[str, Any] = field(default_factory=dict)  # overrides for the tiny preset's architecture


@dataclass
class AdapterConfig:
    """lora: LoRA + trainable embed/lm_head rows; full: every weight; embeddings: only embed/lm_head."""

    mode: str = "lora"
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | str = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    modules_to_save: list[str] = field(default_factory=lambda: ["embed_tokens", "lm_head"])


@dataclass
class TrainConfig:
    """Optimisation settings shared by SFT and GRPO (mapped onto TRL's configs)."""

    epochs: float = 1.0
    max_steps: int = -1
    max_minutes: float | None = None  # stop cleanly after this wall time (checkpoint saved)
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    batch_size: int = 16
    grad_accum: int = 1
    eval_batch_size: int = 32
    max_length: int = 512
    logging_steps: int = 10
    eval_steps: int | None = None
    save_steps: int = 500
    save_total_limit: int = 2
    seed: int = 42
    gradient_checkpointing: bool = False
    num_workers: int = 0
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    max_eval_samples: int = 512
    packing: bool = False
    group_by_length: bool = True  # batches of similar length: far less padding on CPU
    precision: str = "auto"  # auto (bf16/fp16 autocast on GPU, fp32 on CPU) | fp32 | bf16 | fp16


@dataclass
class SFTRecipe:
    """A whole SFT recipe (yaml file beside the accelerate configs)."""

    run: str = "runs/demo"
    # Paths may name the run folder as {run}: "{run}/sft/model".
    output: str | None = None  # default: RUN/sft
    # Continue from a model llmrec trained (its SID tokens and rows are kept; model.preset/init are then
    # unused), e.g. a second, recommendation-focused stage after the translation-heavy first one.
    init_model: str | None = None
    corpus: str | None = None  # corpus folder (default RUN/corpus)
    model: ModelConfig = field(default_factory=ModelConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    resume: bool | str = False  # True: latest checkpoint in output; or a checkpoint path


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    if not isinstance(data, dict):
        raise LlmrecError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise LlmrecError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        ftype = fields[name].type
        sub = _DATACLASSES.get(ftype if isinstance(ftype, str) else getattr(ftype, "__name__", ""))
        if sub and isinstance(value, dict):
            value = _build(sub, value, f"{where}.{name}")
        kwargs[name] = _coerce_number(value, ftype, f"{where}.{name}")
    return cls(**kwargs)


def _coerce_number(value: Any, ftype: Any, where: str) -> Any:
    """YAML reads `1e-4` (no dot) as a string: turn strings into the field's number type."""
    kinds = {k.strip() for k in str(ftype if isinstance(ftype, str) else getattr(ftype, "__name__", "")).split("|")}
    if not isinstance(value, str) or not kinds & {"float", "int"}:
        return value
    try:
        return float(value) if "float" in kinds else int(value)
    except ValueError:
        raise LlmrecError(f"{where}: expected a number, got {value!r}") from None


_DATACLASSES: dict[str, type] = {"ModelConfig": ModelConfig, "AdapterConfig": AdapterConfig,
                                  "TrainConfig": TrainConfig}


def register_config_class(cls: type) -> type:
    """Let nested recipe sections of another dataclass type be parsed from yaml."""
    _DATACLASSES[cls.__name__] = cls
    return cls


def load_recipe(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Load a recipe dataclass from yaml, then apply `a.b=value` overrides (values parsed as yaml)."""
    data: dict[str, Any] = {}
    if path:
        path = Path(path)
        if not path.exists():
            raise LlmrecError(f"recipe not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise LlmrecError(f"{path}: invalid yaml ({e})") from e
    for ov in overrides or []:
        if "=" not in ov:
            raise LlmrecError(f"override {ov!r}: expected key.sub=value")
        key, value = ov.split("=", 1)
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return _build(cls, data, str(path or "recipe"))


def recipe_to_dict(recipe: Any) -> dict[str, Any]:
    return dataclasses.asdict(recipe)


@register_config_class
@dataclass
class GRPOSettings:
    """The RL-specific knobs."""

    num_generations: int = 8  # G: items per group
    rollout: str = "beam"  # beam (distinct top-G items) | sample (constrained sampling)
    temperature: float = 1.0  # for rollout=sample
    beta: float = 0.04  # KL to the reference policy (SFT model; base with adapter disabled under LoRA)
    loss_type: str = "grpo"
    scale_rewards: str = "group"
    rewards: dict[str, float] = field(default_factory=lambda: {"rule": 1.0, "ranking": 1.0, "valid": 1.0})
    num_seqrec: int = 2000  # RL prompts sampled from training sequences
    num_item2sid: int = 200  # RL prompts asking for an item's SID from its title
    max_history: int = 20
    eval_every: int = 50  # steps between validation HR/NDCG runs (0: off)
    eval_samples: int = 200
    # save the policy of the validation step with the best NDCG@10 instead of the last one (needs eval_every)
    keep_best: bool = False
    eval_beams: int = 20
    sasrec_dir: str | None = None  # for the collaborative reward (default RUN/baselines/sasrec, trained if missing)
    collaborative_shape: str = "dcg"  # dcg (1/log2(rank+2) under SASRec) | percentile (see rewards.py)


@register_config_class
@dataclass
class GRPORecipe:
    run: str = "runs/demo"
    init_model: str | None = None  # default RUN/sft/model; paths may name the run folder as {run}
    output: str | None = None  # default RUN/grpo
    adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(mode="full"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=1e-5, batch_size=8,
                                                                  logging_steps=5, save_steps=100))
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    resume: bool | str = False
