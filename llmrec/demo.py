"""`llmrec demo`: the whole pipeline on the embedded defaults, sized for a 2-core CPU (~7 min).

data prepare -> SIDs -> corpus -> SFT (tiny) -> short GRPO -> eval (LLM vs baselines) -> chat.
Every stage writes its usual folder under runs/demo/, so each can be inspected or rerun alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llmrec.io import LlmrecError, data_dir, write_json

log = logging.getLogger(__name__)

DEFAULT_DATASET = "amazon18_scientific"


@dataclass
class DemoConfig:
    """Budgets and sizes of the demo; the defaults fit ~7 minutes on 2 CPU cores."""

    out: str = "runs/demo"
    dataset: str = DEFAULT_DATASET
    sft_minutes: float = 5.0
    grpo_minutes: float = 2.0
    eval_users: int = 1000  # test users scored for the LLMs and baselines (full split: `llmrec eval`)
    sasrec_epochs: int = 8
    seed: int = 42


class Stages:
    """Prints numbered stage headers with elapsed time (the stages show their own progress bars)."""

    def __init__(self, total: int):
        self.total = total
        self.n = 0
        self.t0 = time.time()
        self.times: dict[str, float] = {}
        self._last: tuple[str, float] | None = None

    def start(self, name: str, what: str) -> None:
        self._close()
        self.n += 1
        print(f"\n[{self.n}/{self.total}] {what}  (t+{time.time() - self.t0:.0f}s)", flush=True)
        self._last = (name, time.time())

    def _close(self) -> None:
        if self._last:
            self.times[self._last[0]] = round(time.time() - self._last[1], 1)
            self._last = None

    def finish(self) -> dict[str, float]:
        self._close()
        self.times["total"] = round(time.time() - self.t0, 1)
        return self.times


def _find_dataset(name: str) -> str:
    """The dataset to use, or a clear message on what to do when neither local data nor internet works."""
    from llmrec.data.loaders import resolve_dataset

    try:
        resolve_dataset(name, None)
        return name
    except LlmrecError as local_error:
        if name != DEFAULT_DATASET:
            raise
        log.info("no local %s (%s); trying to download MovieLens-100K from GroupLens", name, local_error)
        try:
            from llmrec.data.download import download_movielens_100k

            return str(download_movielens_100k())
        except Exception as e:
            raise LlmrecError(
                f"no dataset for the demo: {name} is not under {data_dir()} and downloading MovieLens-100K "
                f"failed ({e}). Set LLMREC_DATA_DIR to a folder holding amazon18_scientific/ (e.g. "
                "LLMREC_DATA_DIR=../shared/data), or run with internet access, or pass --dataset PATH.") from e


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    from llmrec.pipeline import CPU_CORPUS, ensure_corpus, ensure_data, ensure_sids
    from llmrec.sid.build import SidConfig
    from llmrec.train.config import (
        AdapterConfig,
        GRPORecipe,
        GRPOSettings,
        ModelConfig,
        SFTRecipe,
        TrainConfig,
    )

    run = Path(cfg.out)
    stages = Stages(7)
    stages.start("data", f"data: {cfg.dataset} -> {run / 'data'}")
    prepared = ensure_data(_find_dataset(cfg.dataset), run, reuse=False)
    print(f"  {prepared.manifest['counts']}")

    stages.start("sid", "Semantic IDs: MiniLM text embeddings -> balanced residual k-means 3x256")
    sid_map = ensure_sids(prepared, run, SidConfig(seed=cfg.seed), reuse=False)
    stats = json.loads((run / "sid" / "stats.json").read_text())
    print(f"  {len(sid_map)} items, {stats.get('distinct_sids')} distinct SIDs, "
          f"collisions {stats.get('collisions_before')} -> {stats.get('collisions_after')}")

    stages.start("corpus", "instruction corpus (seqrec, item<->SID, fusion)")
    manifest = ensure_corpus(prepared, sid_map, run, replace(CPU_CORPUS, seed=cfg.seed), reuse=False)
    print(f"  train rows per task: {manifest['counts']['train']}")

    stages.start("sft", f"SFT: tiny Qwen2-style model, full fine-tune, {cfg.sft_minutes:g} min budget")
    from llmrec.train.sft import run_sft

    sft = run_sft(SFTRecipe(
        run=str(run), model=ModelConfig(preset="tiny", init="semantic"), adapter=AdapterConfig(mode="full"),
        train=TrainConfig(epochs=1, max_minutes=cfg.sft_minutes, learning_rate=1e-3, lr_scheduler="constant",
                          warmup_ratio=0.02, batch_size=32, max_length=256, logging_steps=20, save_steps=100000,
                          eval_steps=None, max_eval_samples=128, report_to=["tensorboard"], seed=cfg.seed)))
    print(f"  {sft['global_step']} steps, loss {_fmt(sft['loss_first'])} -> {_fmt(sft['loss_last'])}, "
          f"valid seqrec loss {_fmt(sft['eval_loss_seqrec'])}")

    stages.start("grpo", f"GRPO: SASRec for the collaborative reward, then constrained beam rollouts (G=8), "
                         f"{cfg.grpo_minutes:g} min")
    from llmrec.baselines.sasrec import cached_sasrec
    from llmrec.train.grpo import run_grpo

    cached_sasrec(run, prepared, epochs=cfg.sasrec_epochs, seed=cfg.seed)  # cached; eval reuses it

    grpo = run_grpo(GRPORecipe(
        run=str(run), adapter=AdapterConfig(mode="full"),
        # recipes/tiny-cpu/grpo.yaml's learning rate and schedule, over the steps 2 minutes allow
        train=TrainConfig(max_steps=100, max_minutes=cfg.grpo_minutes, learning_rate=5e-5,
                          lr_scheduler="cosine", warmup_ratio=0.0, batch_size=32, logging_steps=5,
                          save_steps=100000, report_to=["tensorboard"], seed=cfg.seed),
        grpo=GRPOSettings(num_generations=8, beta=0.04, num_seqrec=4000, num_item2sid=0, eval_every=0,
                          eval_samples=300, rewards={"collaborative": 1.0, "valid": 1.0})))
    print(f"  {grpo['global_step']} steps, reward {_fmt(grpo['reward_mean_first'])} -> "
          f"{_fmt(grpo['reward_mean_last'])}, distinct items per group {_fmt(grpo['distinct_per_group'])}")

    stages.start("eval", f"eval on {cfg.eval_users} test users: SFT, SFT+GRPO, most-popular, SASRec")
    from llmrec.commands.eval import run_eval

    run_eval(argparse.Namespace(
        run=str(run), model=[str(run / "sft" / "model"), str(run / "grpo" / "model")], split="test",
        baselines="popular,sasrec", k="1,5,10,20", num_beams=20, limit=cfg.eval_users, batch_size=None,
        exclude_history=False, head_frac=0.2, tail_frac=0.5, no_resume=True, retrain_sasrec=False,
        sasrec_epochs=cfg.sasrec_epochs, seed=cfg.seed, threads=None, translation=200))

    stages.start("chat", "chat with the final model")
    chats = demo_chats(run, prepared)
    times = stages.finish()
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    summary = {
        "out": str(run), "dataset": cfg.dataset, "seconds": times,
        "sft": {k: sft[k] for k in ("global_step", "loss_first", "loss_last", "eval_loss_seqrec", "tokens_per_s")},
        "grpo": {k: grpo[k] for k in ("global_step", "reward_mean_first", "reward_mean_last",
                                      "distinct_per_group", "s_per_step")},
        "test": {r["ranker"]: {k: round(v, 4) for k, v in r["metrics"].items() if k.split("@")[0] in ("HR", "NDCG")}
                 for r in metrics["rankers"]},
        "chat": chats,
    }
    write_json(run / "summary.json", summary)
    print(f"\ndone in {times['total'] / 60:.1f} min; results in {run}/ (summary.json, eval/comparison.md, "
          "eval/metrics.png, sft/loss.png, grpo/grpo.png)")
    print((run / "eval" / "comparison.md").read_text())
    return summary


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) else "n/a"


def demo_chats(run: Path, prepared) -> list[dict[str, Any]]:
    """A few chat turns: two built from real test histories (by title) and one with no known item."""
    from llmrec.llm import load_model
    from llmrec.serve import Recommender

    model, tokenizer, sid_map = load_model(run / "grpo" / "model")
    rec = Recommender(model, tokenizer, sid_map, prepared.items)
    messages = []
    for ex in prepared.split.test[:2]:
        titles = [prepared.items[i].title.rstrip(". ") for i in ex.history[-2:] if prepared.items[i].title]
        if titles:
            messages.append("I just bought " + " and ".join(titles) + ". What else do I need?")
    messages.append("What's the weather like on Mars today?")
    out = []
    for msg in messages:
        reply = rec.chat(msg, k=3)
        print(f"\n> {msg}\n{reply.text}")
        out.append({"message": msg, "reply": reply.text, "items": [r.item_id for r in reply.items]})
    return out
