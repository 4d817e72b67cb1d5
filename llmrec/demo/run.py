"""`llmrec demo`: the whole pipeline on the embedded defaults, sized for a 2-core CPU (~14 min).

data prepare -> SIDs -> corpus -> SFT (tiny) -> short GRPO -> eval (LLM vs baselines) -> bundle -> chat,
each stage from the shipped recipes (recipes/tiny-cpu) with the demo's budgets as overrides.
Every stage writes its usual folder under runs/demo/, so each can be inspected or rerun alone.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, NamedTuple

from llmrec.baselines.sasrec import cached_sasrec
from llmrec.bundle.run import bundle_from_run
from llmrec.config import load_config, validate_config
from llmrec.corpus.config import CorpusConfig
from llmrec.data.config import DataConfig
from llmrec.data.download import download_movielens_100k
from llmrec.data.loaders import resolve_dataset
from llmrec.demo.config import DEFAULT_DATASET, DemoConfig
from llmrec.eval.config import EvalConfig
from llmrec.eval.run import run_eval
from llmrec.io import LlmrecError, data_dir, read_json, write_json
from llmrec.pipeline import ensure_corpus, ensure_data, ensure_sids, recipes_dir, sid_config_for
from llmrec.rundir import RunDir
from llmrec.serve import Recommender
from llmrec.sid.build import SidConfig
from llmrec.train.config import GRPORecipe, SFTRecipe
from llmrec.train.grpo import run_grpo
from llmrec.train.sft import run_sft

log = logging.getLogger(__name__)



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
    try:
        resolve_dataset(name, None)
        return name
    except LlmrecError as local_error:
        if name != DEFAULT_DATASET:
            raise
        log.info("no local %s (%s); trying to download MovieLens-100K from GroupLens", name, local_error)
        try:
            return str(download_movielens_100k())
        except Exception as e:
            raise LlmrecError(
                f"no dataset for the demo: {name} is not under {data_dir()} and downloading MovieLens-100K "
                f"failed ({e}). Set LLMREC_DATA_DIR to a folder holding amazon18_scientific/ (e.g. "
                "LLMREC_DATA_DIR=../shared/data), or run with internet access, or pass --dataset PATH.") from e


class DemoRecipes(NamedTuple):
    """The configs of the demo's stages (also what scripts/bench_quality.py runs)."""

    data: DataConfig
    sid: SidConfig
    corpus: CorpusConfig
    sft: SFTRecipe
    grpo: GRPORecipe


def demo_recipes(cfg: DemoConfig) -> DemoRecipes:
    """The shipped recipes of `cfg.recipes`, with the demo's run folder, budgets and seed (a folder
    without data.yaml or sid.yaml gets the default DataConfig or SidConfig)."""
    folder = recipes_dir() / cfg.recipes
    run, seed = str(cfg.out), cfg.seed
    data_path = folder / "data.yaml"
    data = load_config(DataConfig, data_path if data_path.exists() else None, [],
                       {"dataset": cfg.dataset, "out": run})
    sid_path = folder / "sid.yaml"
    sid = load_config(SidConfig, sid_path if sid_path.exists() else None, [f"seed={seed}"])
    corpus = load_config(CorpusConfig, folder / "corpus.yaml", [f"seed={seed}"])
    # the budget ends the run, and the learning-rate schedule is laid over that budget (schedule_by=time)
    sft = load_config(SFTRecipe, folder / "sft.yaml", [f"train.max_minutes={cfg.sft_minutes}", "train.schedule_by=time",
                                                       "train.epochs=1000", f"train.seed={seed}"], {"run": run})
    # GRPO starts from stage one's model (the demo has no second SFT stage), its learning rate decays
    # over its own budget, and it keeps its best validated step; a smaller validation sample fits the budget.
    grpo = load_config(GRPORecipe, folder / "grpo.yaml",
                       [f"train.max_minutes={cfg.grpo_minutes}", "train.schedule_by=time", f"train.seed={seed}",
                        "grpo.eval_samples=500"],
                       {"run": run, "init_model": "{run}/sft/model"})
    return DemoRecipes(data, sid, corpus, sft, grpo)


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    validate_config(cfg)
    data_cfg, sid_cfg, corpus_cfg, sft_recipe, grpo_recipe = demo_recipes(cfg)  # every recipe checked before any work
    run = RunDir(cfg.out)
    stages = Stages(8)
    stages.start("data", f"data: {cfg.dataset} -> {run.data}")
    prepared = ensure_data(_find_dataset(cfg.dataset), run.root, reuse=False, config=data_cfg)
    print(f"  {prepared.manifest['counts']}")

    sid_cfg = sid_config_for(prepared, sid_cfg)
    stages.start("sid", f"Semantic IDs (recipes/{cfg.recipes}/sid.yaml): {sid_cfg.source} vectors -> "
                        f"{sid_cfg.method}" + (f", identity token: {sid_cfg.identity}" if sid_cfg.identity != "none" else ""))
    sid_map = ensure_sids(prepared, run.root, sid_cfg, reuse=False)
    stats = read_json(run.sid / "stats.json")
    print(f"  {len(sid_map)} items, {stats.get('distinct_sids')} distinct SIDs, "
          f"collisions {stats.get('collisions_before')} -> {stats.get('collisions_after')}")

    stages.start("corpus", f"instruction corpus (recipes/{cfg.recipes}/corpus.yaml)")
    manifest = ensure_corpus(prepared, sid_map, run.root, corpus_cfg, reuse=False)
    print(f"  train rows per task: {manifest['counts']['train']}")

    stages.start("sft", f"SFT (recipes/{cfg.recipes}/sft.yaml): {sft_recipe.model.preset} model, "
                        f"{cfg.sft_minutes:g} min budget")
    sft = run_sft(sft_recipe)
    print(f"  {sft['global_step']} steps, loss {_fmt(sft['loss_first'])} -> {_fmt(sft['loss_last'])}, "
          f"valid seqrec loss {_fmt(sft['eval_loss_seqrec'])}" + _kept(sft))

    stages.start("grpo", f"GRPO (recipes/{cfg.recipes}/grpo.yaml): SASRec for the collaborative reward, then "
                         f"constrained beam rollouts, {cfg.grpo_minutes:g} min")
    cached_sasrec(run.root, prepared, epochs=cfg.sasrec_epochs, seed=cfg.seed)  # cached; eval reuses it
    grpo = run_grpo(grpo_recipe)
    print(f"  {grpo['global_step']} steps, reward {_fmt(grpo['reward_mean_first'])} -> "
          f"{_fmt(grpo['reward_mean_last'])}, distinct items per group {_fmt(grpo['distinct_per_group'])}"
          + _kept(grpo))

    stages.start("eval", f"eval on {cfg.eval_users} test users: SFT, SFT+GRPO, most-popular, SASRec")
    report = run_eval(EvalConfig(run=str(run), models=[str(run.model("sft")), str(run.model("grpo"))],
                                 ks=[1, 5, 10, 20], limit=cfg.eval_users, resume=False,
                                 sasrec_epochs=cfg.sasrec_epochs, seed=cfg.seed,
                                 translation=cfg.translation_items))

    stages.start("bundle", f"bundle the final model -> {run.bundle}")
    bundle_from_run(run.root, run.bundle, replace=True)  # the demo rebuilds its whole run

    stages.start("chat", "chat with the final model")
    chats = demo_chats(run.bundle, prepared)
    times = stages.finish()
    summary = {
        "out": str(run), "dataset": cfg.dataset, "recipes": cfg.recipes, "seconds": times,
        "sft": {k: sft[k] for k in ("global_step", "kept_step", "loss_first", "loss_last", "eval_loss_seqrec",
                                    "tokens_per_s")},
        "grpo": {k: grpo[k] for k in ("global_step", "kept_step", "reward_mean_first", "reward_mean_last",
                                      "distinct_per_group", "s_per_step")},
        "test": {r["ranker"]: {k: round(v, 4) for k, v in r["metrics"].items() if k.split("@")[0] in ("HR", "NDCG")}
                 for r in report.results},
        "translation": report.translation,
        "chat": chats,
    }
    write_json(run.root / "summary.json", summary)
    print(f"\ndone in {times['total'] / 60:.1f} min; results in {run}/ (summary.json, eval/limit-{cfg.eval_users}/"
          "comparison.md, sft/loss.png, grpo/grpo.png, bundle/)")
    print(report.table)
    return summary


def _kept(summary: dict[str, Any]) -> str:
    """', kept step S (validation NDCG@10 x on SPLIT)' when validation chose the saved step, else ''."""
    rows = {r["step"]: r for r in summary.get("validation") or []}
    kept = rows.get(summary.get("kept_step"))
    if not (kept and "NDCG@10" in kept):
        return ""
    return f", kept step {kept['step']} (validation NDCG@10 {kept['NDCG@10']:.4f} on {summary.get('validation_split')})"


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) else "n/a"


def demo_chats(bundle: Path, prepared) -> list[dict[str, Any]]:
    """A few chat turns with the bundled model: two built from real test histories (by title) and
    one with no known item."""
    rec = Recommender.from_pretrained(bundle)
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
