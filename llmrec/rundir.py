"""`RunDir`: the one owner of a run folder's layout (every stage reads the previous stage's folder).

    RUN/data/      prepared items, interactions, split, manifest.json      (llmrec data prepare)
    RUN/sid/       sid_map.json, codebooks, stats.json, embeddings.npy      (llmrec sid build)
    RUN/corpus/    datasets.save_to_disk() folders per split + manifest     (llmrec corpus build)
    RUN/sft/       trained model (model/), checkpoints, loss.png            (llmrec train sft)
    RUN/grpo/      policy (model/), checkpoints, grpo.png                   (llmrec train grpo)
    RUN/baselines/ cached baselines (sasrec/, ...)                          (llmrec eval)
    RUN/eval/      metrics.json, comparison.md, metrics.png; eval/valid/    (llmrec eval)
    RUN/bundle/    model + sid map + catalogue + card, ready to push        (llmrec bundle)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGES = ("data", "sid", "corpus", "sft", "grpo", "baselines", "eval", "bundle")


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run folder; creates nothing."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    def __str__(self) -> str:
        return str(self.root)

    @property
    def name(self) -> str:
        return self.root.resolve().name

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sid(self) -> Path:
        return self.root / "sid"

    @property
    def sid_map(self) -> Path:
        return self.sid / "sid_map.json"

    @property
    def embeddings(self) -> Path:
        return self.sid / "embeddings.npy"

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def baselines(self) -> Path:
        return self.root / "baselines"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    def stage(self, name: str) -> Path:
        """RUN/<name> for a training stage (sft, sft_rec, grpo, ...)."""
        return self.root / name

    def model(self, stage: str) -> Path:
        """The trained model of a stage: RUN/<stage>/model."""
        return self.root / stage / "model"

    def eval(self, split: str = "test") -> Path:
        """RUN/eval for the test split, RUN/eval/<split> for any other."""
        return self.root / "eval" if split == "test" else self.root / "eval" / split

    def path(self, value: str | None, default: str) -> Path:
        """A config path: `value` with `{run}` replaced by this folder, or RUN/`default` when unset."""
        if not value:
            return self.root / default
        return Path(value.replace("{run}", str(self.root)))

    def newest_model(self) -> Path | None:
        """The model of the latest training stage present (grpo, then sft_rec, then sft)."""
        for stage in ("grpo", "sft_rec", "sft"):
            if (self.model(stage) / "config.json").exists():
                return self.model(stage)
        return None

    def present(self) -> list[str]:
        """Stage folders that exist (in pipeline order)."""
        return [s for s in STAGES if (self.root / s).exists()]
