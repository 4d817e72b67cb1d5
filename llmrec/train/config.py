"""Training recipes (SFT, GRPO): dataclasses of the one config layer (llmrec.config), loaded from yaml."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any, TypeVar

from llmrec.config import load_config, option
from llmrec.io import LlmrecError
from llmrec.registry import did_you_mean, is_dotted_path

T = TypeVar("T")

ADAPTER_MODES = ("lora", "full", "embeddings")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = ("auto", "float32", "bfloat16", "float16")
SID_INITS = ("semantic", "mean", "random")
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                 "warmup_stable_decay", "greedy")
REPORTERS = ("none", "all", "tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "clearml", "dvclive",
             "azure_ml", "neptune", "codecarbon", "dagshub", "flyte", "swanlab", "kubeflow")
ROLLOUTS = ("beam", "sample")
COLLABORATIVE_SHAPES = ("dcg", "percentile")
# the reward names GRPO knows (llmrec.train.rewards.REWARDS registers their factories; kept here
# as plain names so a recipe is checked before torch is imported)
REWARD_NAMES = ("rule", "ranking", "valid", "repeat", "semantic", "collaborative")
#: rewards that compare a completion with the prompt's target item (a `last` prompt has none)
TARGET_REWARDS = ("rule", "ranking", "semantic")
SEQREC_PROMPTS = ("events", "last")
SID_SOFTMAX_MODES = ("vocab", "level")  # = llmrec.llm.sid_softmax.SID_SOFTMAX_MODES (no torch import here)


@dataclasses.dataclass
class ModelConfig:
    """Which base model, how SID rows start, how it is loaded."""

    preset: str = option("tiny", help="tiny | smollm2-135m | any Hugging Face id or local path")
    init: str = option("semantic", help="how new SID token rows start", choices=SID_INITS)
    init_collaborative: float = option(0.0, help="share of each semantic SID row's start taken from collaborative "
                                       "item vectors (PPMI-SVD of the training sequences) instead of the item's "
                                       "title: items that follow one another start close; 0 = titles only (a "
                                       "catalogue without text starts from the mean row either way)")
    dtype: str | None = option("float32", help="weights as trained: float32 master weights with bf16/fp16 "
                               "autocast on GPUs; bfloat16 halves memory but rounds away small AdamW updates; "
                               "auto/null: bf16 on GPUs that support it, float32 on CPU",
                               choices=(*DTYPES, None))
    trust_remote_code: bool = option(False, help="run model code from the Hub repo (off: safer)")
    load_in_4bit: bool = option(False, help="QLoRA: 4-bit base weights (CUDA GPU + bitsandbytes)")
    tiny: dict[str, Any] = option(default_factory=dict, help="overrides of the tiny preset's architecture")
    sid_softmax: str = option("vocab", help="SFT: normalise a SID token's probability over the whole vocabulary "
                              "(vocab) or over its own SID level's tokens (level: less LM-head work per step); "
                              "recorded in config.json, GRPO and decoding then score the model the same way",
                              choices=SID_SOFTMAX_MODES)
    dropout: float = option(0.0, help="SFT: dropout on the token embeddings and on each decoder layer's attention "
                            "and MLP outputs while training (GPT-2 / SASRec style; Qwen2 and Llama layers have "
                            "none); not saved with the model")
    dropout_from_epoch: float = option(0.0, help="SFT: passes over the corpus before model.dropout starts (late "
                                       "dropout: a run that has not begun to memorise keeps learning at full speed)")

    def validate(self) -> None:
        if not 0.0 <= self.init_collaborative <= 1.0:
            raise LlmrecError(f"model.init_collaborative must be in [0, 1], got {self.init_collaborative}")
        if not 0.0 <= self.dropout < 1.0:
            raise LlmrecError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.dropout_from_epoch < 0:
            raise LlmrecError(f"model.dropout_from_epoch must be >= 0, got {self.dropout_from_epoch}")


@dataclasses.dataclass
class AdapterConfig:
    """How the model is adapted."""

    mode: str = option("lora", help="lora: LoRA + trainable embed/lm_head rows; full: every weight; "
                       "embeddings: only embed/lm_head", choices=ADAPTER_MODES)
    r: int = option(16, help="LoRA rank")
    alpha: int = option(32, help="LoRA alpha")
    dropout: float = option(0.05, help="LoRA dropout")
    target_modules: list[str] | str = option(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        help="modules that get LoRA adapters (a list, or 'all-linear')")
    modules_to_save: list[str] = option(default_factory=lambda: ["embed_tokens", "lm_head"],
                                        help="modules trained in full beside LoRA (the SID rows live here)")

    def validate(self) -> None:
        if self.r < 1:
            raise LlmrecError(f"adapter.r must be at least 1, got {self.r}")


@dataclasses.dataclass
class TrainConfig:
    """Optimisation settings shared by SFT and GRPO (mapped onto TRL's configs)."""

    epochs: float = option(1.0, help="passes over the corpus")
    max_steps: int = option(-1, help="stop after this many optimizer steps (-1: by epochs)")
    max_minutes: float | None = option(None, help="stop cleanly after this wall time (a checkpoint is saved)")
    learning_rate: float = option(2e-4, help="peak learning rate")
    lr_scheduler: str = option("cosine", help="transformers scheduler name", choices=LR_SCHEDULERS)
    warmup_ratio: float = option(0.03, help="share of steps (or of max_minutes) spent warming up")
    schedule_by: str = option("steps", choices=("steps", "time"),
                              help="time (SFT): the lr schedule (linear/cosine/constant + warmup) runs over "
                              "max_minutes of wall time, so a budget-bound run always completes its schedule "
                              "whatever the corpus size or machine speed; steps: over the planned steps")
    weight_decay: float = option(0.0, help="AdamW weight decay")
    batch_size: int = option(16, help="examples per device per step")
    grad_accum: int = option(1, help="gradient accumulation steps")
    eval_batch_size: int = option(32, help="examples per device for validation loss")
    max_length: int = option(512, help="longest tokenized example (longer ones are cut)")
    logging_steps: int = option(10, help="steps between log lines")
    eval_steps: int | None = option(None, help="steps between validation-loss runs (null: none)")
    save_steps: int = option(500, help="steps between checkpoints")
    save_total_limit: int = option(2, help="checkpoints kept")
    seed: int = option(42, help="random seed")
    gradient_checkpointing: bool = option(False, help="trade compute for memory")
    num_workers: int = option(0, help="dataloader worker processes")
    report_to: list[str] = option(default_factory=lambda: ["tensorboard"], help="experiment trackers",
                                  choices=REPORTERS)
    max_eval_samples: int = option(512, help="validation rows used for the validation loss")
    packing: bool = option(False, help="pack several examples into one sequence")
    group_by_length: bool = option(True, help="batches of similar length: far less padding on CPU")
    precision: str = option("auto", help="auto: bf16/fp16 autocast on GPU, fp32 on CPU", choices=PRECISIONS)

    def validate(self) -> None:
        for name in ("batch_size", "grad_accum", "eval_batch_size", "max_length", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise LlmrecError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.schedule_by == "time" and not self.max_minutes:
            raise LlmrecError("train.schedule_by=time needs train.max_minutes (the schedule spans that budget)")
        if self.schedule_by == "time" and self.lr_scheduler not in ("linear", "cosine", "constant"):
            raise LlmrecError(f"train.schedule_by=time supports lr_scheduler linear, cosine or constant, "
                              f"not {self.lr_scheduler!r}")
        if self.learning_rate < 0:
            raise LlmrecError(f"train.learning_rate must be >= 0, got {self.learning_rate}")
        packages = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow",
                    "comet_ml": "comet_ml", "clearml": "clearml", "dvclive": "dvclive", "azure_ml": "azureml",
                    "neptune": "neptune", "codecarbon": "codecarbon", "swanlab": "swanlab"}
        for name in self.report_to:
            module = packages.get(name)
            if module and importlib.util.find_spec(module) is None:
                raise LlmrecError(f"train.report_to names {name!r} but the {module} package is not installed: "
                                  f"pip install {module}, or --set train.report_to=[tensorboard]")


@dataclasses.dataclass
class SFTValidation:
    """Ranking quality on validation users during SFT (HR/NDCG through the evaluator of `llmrec eval`)."""

    runs: int = option(0, help="validation runs spread evenly over training (by wall time under "
                       "train.schedule_by=time, else by planned steps), one more at the end; 0: off")
    samples: int = option(500, help="validation users per run (a fixed random subset)")
    beams: int = option(20, help="beams for validation ranking")
    keep_best: bool = option(False, help="save the model of the best validated run instead of the last: a long "
                             "budget on a small corpus can memorise the training sequences")
    keep_best_z: float = option(0.0, help="keep_best: the final model is saved unless the best earlier run's "
                                "paired per-user NDCG@10 gain over it exceeds this many standard errors (0: any gain)")

    def validate(self) -> None:
        if self.runs < 0 or self.samples < 1 or self.beams < 1:
            raise LlmrecError(f"validation.runs must be >= 0, validation.samples and validation.beams >= 1 "
                              f"(got runs={self.runs}, samples={self.samples}, beams={self.beams})")
        if self.keep_best and not self.runs:
            raise LlmrecError("validation.keep_best needs validation.runs > 0")
        if self.keep_best and self.beams < 10:
            raise LlmrecError(f"validation.keep_best compares NDCG@10, which needs validation.beams >= 10 "
                              f"(got {self.beams})")
        if self.keep_best_z < 0:
            raise LlmrecError(f"validation.keep_best_z must be >= 0 (got {self.keep_best_z})")


def _require_run(run: str | None) -> None:
    if not run:
        raise LlmrecError("no run folder: pass --run RUN (recipes name no default run, so nothing is "
                          "written into another run by accident)")


@dataclasses.dataclass
class SFTRecipe:
    """A whole SFT recipe (yaml beside the accelerate configs)."""

    run: str | None = option(None, help="run folder (reads RUN/data, RUN/sid, RUN/corpus)")
    output: str | None = option(None, help="output folder (default RUN/sft); paths may name {run}")
    init_model: str | None = option(None, help="continue from a model llmrec trained, e.g. '{run}/sft/model' "
                                    "(SID tokens and rows kept; model.preset/init unused)")
    corpus: str | None = option(None, help="corpus folder (default RUN/corpus)")
    model: ModelConfig = option(default_factory=ModelConfig, help="base model")
    adapter: AdapterConfig = option(default_factory=AdapterConfig, help="adaptation")
    train: TrainConfig = option(default_factory=TrainConfig, help="optimisation")
    validation: SFTValidation = option(default_factory=SFTValidation, help="ranking on validation users")
    resume: bool | str = option(False, help="true: newest complete checkpoint in output; or a checkpoint path")

    def validate(self) -> None:
        _require_run(self.run)
        if self.model.load_in_4bit and self.adapter.mode != "lora":
            raise LlmrecError("model.load_in_4bit (QLoRA) trains LoRA adapters only: set adapter.mode=lora")


@dataclasses.dataclass
class GRPOSettings:
    """The RL-specific knobs."""

    num_generations: int = option(8, help="G: items per group")
    rollout: str = option("beam", help="beam: distinct top-G items; sample: constrained sampling",
                          choices=ROLLOUTS)
    temperature: float = option(1.0, help="sampling temperature (rollout=sample)")
    beta: float = option(0.04, help="KL to the reference policy (the SFT model)")
    loss_type: str = option("grpo", help="TRL GRPO loss type",
                            choices=("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"))
    scale_rewards: str = option("group", help="TRL reward scaling", choices=("group", "batch", "none"))
    rewards: dict[str, float] = option(default_factory=lambda: {"rule": 1.0, "ranking": 1.0, "valid": 1.0},
                                       help=f"reward name -> weight ({', '.join(REWARD_NAMES)}, or "
                                            "package.module:factory)")
    num_seqrec: int = option(2000, help="RL prompts sampled from training sequences")
    seqrec_prompts: str = option("events", help="events: histories before random training events (each has its "
                                 "target); last: each user's whole training history, the state the held-out "
                                 "splits start from, which has no target (target-free rewards only)",
                                 choices=SEQREC_PROMPTS)
    num_item2sid: int = option(200, help="RL prompts asking for an item's SID from its title")
    max_history: int = option(20, help="most recent history items in a prompt")
    eval_every: int = option(50, help="steps between validation HR/NDCG runs (0: off)")
    eval_samples: int = option(200, help="validation users per run")
    keep_best: bool = option(False, help="save the policy of the best validated step instead of the last")
    keep_best_z: float = option(0.0, help="keep_best: a step replaces the kept one only when its paired per-user "
                                "NDCG@10 gain exceeds this many standard errors (0: any gain)")
    eval_beams: int = option(20, help="beams for validation ranking")
    sasrec_dir: str | None = option(None, help="SASRec for the collaborative reward (default: the run's, "
                                    "trained if missing)")
    collaborative_shape: str = option("dcg", help="dcg: 1/log2(rank+2) under SASRec; percentile",
                                      choices=COLLABORATIVE_SHAPES)

    def validate(self) -> None:
        for name in self.rewards:
            if name not in REWARD_NAMES and not is_dotted_path(name):
                raise LlmrecError(f"grpo.rewards: unknown reward {name!r}{did_you_mean(name, REWARD_NAMES)}; "
                                  f"known: {', '.join(REWARD_NAMES)} or package.module:factory")
        if not any(self.rewards.values()):
            raise LlmrecError("grpo.rewards: every weight is zero")
        if self.num_generations < 2:
            raise LlmrecError("grpo.num_generations must be at least 2 (advantages compare a group)")
        needs_target = [n for n in TARGET_REWARDS if self.rewards.get(n)]
        if self.seqrec_prompts == "last" and needs_target:
            raise LlmrecError(f"grpo.seqrec_prompts: last prompts have no target item, but the rewards "
                              f"{', '.join(needs_target)} compare with it; set their weights to 0 or use "
                              "seqrec_prompts: events")
        if self.keep_best and not self.eval_every:
            raise LlmrecError("grpo.keep_best needs grpo.eval_every > 0")
        if self.keep_best_z < 0:
            raise LlmrecError(f"grpo.keep_best_z must be >= 0 (got {self.keep_best_z})")


@dataclasses.dataclass
class GRPORecipe:
    """A whole GRPO recipe."""

    run: str | None = option(None, help="run folder")
    init_model: str | None = option(None, help="model to start from (default RUN/sft/model); may name {run}")
    output: str | None = option(None, help="output folder (default RUN/grpo)")
    adapter: AdapterConfig = option(default_factory=lambda: AdapterConfig(mode="full"), help="adaptation")
    train: TrainConfig = option(default_factory=lambda: TrainConfig(learning_rate=1e-5, batch_size=8,
                                                                     logging_steps=5, save_steps=100),
                                help="optimisation")
    grpo: GRPOSettings = option(default_factory=GRPOSettings, help="RL settings")
    resume: bool | str = option(False, help="true: newest complete checkpoint in output; or a checkpoint path")

    def validate(self) -> None:
        _require_run(self.run)
        per_step = self.train.batch_size * self.train.grad_accum
        if per_step % self.grpo.num_generations:
            raise LlmrecError(f"train.batch_size*grad_accum ({per_step}) must be a multiple of "
                              f"grpo.num_generations ({self.grpo.num_generations})")


def load_recipe(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """A recipe from yaml plus `a.b=value` overrides (see llmrec.config.load_config)."""
    return load_config(cls, path, overrides)


def recipe_to_dict(recipe: Any) -> dict[str, Any]:
    return dataclasses.asdict(recipe)
