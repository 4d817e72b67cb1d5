"""SFT on the tiny preset: a few steps lower the loss; a resumed run matches an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_fixture import TINY_MODEL, build_small_run


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, data_root):
    return build_small_run(tmp_path_factory.mktemp("run") / "small")


def _recipe(run, out, **train):
    from llmrec.train.config import AdapterConfig, ModelConfig, SFTRecipe, TrainConfig

    base = {"max_steps": 8, "learning_rate": 3e-3, "lr_scheduler": "constant", "warmup_ratio": 0.0, "batch_size": 8,
            "logging_steps": 1, "save_steps": 4, "report_to": [], "max_length": 128, "seed": 3}
    base.update(train)
    return SFTRecipe(run=str(run), output=str(out), model=ModelConfig(preset="tiny", init="semantic", tiny=TINY_MODEL),
                     adapter=AdapterConfig(mode="full"), train=TrainConfig(**base))


def test_sft_lowers_loss_and_saves_a_loadable_model(small_run, tmp_path):
    from llmrec.llm import load_model
    from llmrec.train.sft import run_sft

    recipe = _recipe(small_run, tmp_path / "sft", max_steps=12)
    recipe.model.init_collaborative = 0.5  # the SID rows' start reads the run's training sequences
    summary = run_sft(recipe)
    assert summary["global_step"] == 12
    assert summary["loss_last"] < summary["loss_first"]
    model, _, sid_map = load_model(tmp_path / "sft" / "model")
    assert sid_map.fingerprint == summary["sid_fingerprint"]
    assert model.config.llmrec_sid["init"]["collaborative"] == 0.5
    assert (tmp_path / "sft" / "loss.png").exists()


def test_resume_from_checkpoint_matches_uninterrupted_run(small_run, tmp_path):
    from llmrec.llm import load_model
    from llmrec.train.sft import run_sft

    run_sft(_recipe(small_run, tmp_path / "a"))  # 8 steps, checkpoints at 4 and 8
    ckpt = tmp_path / "a" / "checkpoint-4"
    assert ckpt.exists()
    _, _, ckpt_map = load_model(ckpt)  # a checkpoint loads on its own: sid_map.json is written into it
    assert ckpt_map.fingerprint == load_model(tmp_path / "a" / "model")[2].fingerprint
    resumed = _recipe(small_run, tmp_path / "b")
    resumed.resume = str(ckpt)
    summary = run_sft(resumed)
    assert summary["global_step"] == 8
    a, _, _ = load_model(tmp_path / "a" / "model")
    b, _, _ = load_model(tmp_path / "b" / "model")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-5), name


def test_sft_with_late_dropout_changes_training_from_that_epoch_and_saves_no_hooks(small_run, tmp_path):
    """model.dropout with dropout_from_epoch far away trains exactly as without dropout; from epoch 0
    it changes the losses; the saved model decodes without hooks either way."""
    from llmrec.llm import load_model
    from llmrec.train.sft import run_sft

    def losses(out, **model):
        recipe = _recipe(small_run, tmp_path / out, max_steps=6)
        for k, v in model.items():
            setattr(recipe.model, k, v)
        run_sft(recipe)
        rows = json.loads((tmp_path / out / "log_history.json").read_text())
        return [r["loss"] for r in rows if "loss" in r]

    plain = losses("plain")
    assert losses("late", dropout=0.3, dropout_from_epoch=1000.0) == plain
    assert losses("early", dropout=0.3) != plain
    model, _, _ = load_model(tmp_path / "early" / "model")
    assert not any(m._forward_hooks for m in model.modules())


def test_validation_loss_through_the_compact_head_equals_trls(small_run, tmp_path, monkeypatch):
    """The periodic validation loss projects answer positions only, as training does; the value is TRL's."""
    from llmrec.train import answer_loss
    from llmrec.train.sft import run_sft

    modes = []

    def counted(model, *args, **kwargs):
        modes.append(model.training)
        return compact_loss(model, *args, **kwargs)

    compact_loss = answer_loss.answer_only_loss
    monkeypatch.setattr(answer_loss, "answer_only_loss", counted)
    ours = run_sft(_recipe(small_run, tmp_path / "compact", max_steps=4, eval_steps=2, max_eval_samples=24))
    assert modes.count(True) == 4 and modes.count(False) == 3  # three evaluations of one batch each
    monkeypatch.setattr(answer_loss, "compact_loss_supported", lambda *a, **k: False)  # TRL's path throughout
    trl = run_sft(_recipe(small_run, tmp_path / "trl", max_steps=4, eval_steps=2, max_eval_samples=24))
    assert ours["eval_loss_seqrec"] == pytest.approx(trl["eval_loss_seqrec"], rel=1e-4)
    history = json.loads((tmp_path / "compact" / "log_history.json").read_text())
    evals = [row for row in history if "eval_loss" in row]
    assert [row["step"] for row in evals] == [2, 4, 4]  # periodic runs, then the final evaluate()
    assert all(0 <= row["eval_mean_token_accuracy"] <= 1 and row["eval_entropy"] > 0 for row in evals)


def test_second_stage_continues_from_a_trained_model_on_its_own_corpus(small_run, tmp_path):
    """init_model keeps every weight (SID rows included: no re-initialisation); `corpus` picks the rows."""
    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest, load_corpus, save_corpus
    from llmrec.data.store import load_prepared
    from llmrec.llm import load_model
    from llmrec.sid.sidmap import SidMap
    from llmrec.train.sft import run_sft

    first = run_sft(_recipe(small_run, tmp_path / "stage1", max_steps=12))
    rec_rows, manifest = build_corpus_with_manifest(load_prepared(small_run / "data"),
                                                    SidMap.load(small_run / "sid" / "sid_map.json"),
                                                    CorpusConfig(tasks=["seqrec"], max_history=10))
    save_corpus(tmp_path / "corpus_rec", rec_rows, manifest)
    recipe = _recipe(small_run, tmp_path / "stage2", max_steps=2, learning_rate=0.0)
    recipe.init_model = str(tmp_path / "stage1" / "model")
    recipe.corpus = str(tmp_path / "corpus_rec")
    second = run_sft(recipe)
    assert second["init_model"] == str(tmp_path / "stage1" / "model")
    assert set(load_corpus(tmp_path / "corpus_rec")["train"]["task"]) == {"seqrec"}
    assert second["loss_first"] < first["loss_first"]  # starts where stage one ended, not from scratch
    a, _, _ = load_model(tmp_path / "stage1" / "model")
    b, _, _ = load_model(tmp_path / "stage2" / "model")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name  # learning rate 0: nothing may have moved


def test_run_path_names_the_run_folder(tmp_path):
    from llmrec.train.common import run_path

    assert run_path(tmp_path, None, "sft") == tmp_path / "sft"
    assert run_path(tmp_path, "{run}/sft_rec", "sft") == tmp_path / "sft_rec"
    assert run_path(tmp_path, "elsewhere/x", "sft") == Path("elsewhere/x")


def test_command_line_paths_may_name_the_run_folder():
    import argparse

    from llmrec.train.args import add_stage_arguments, recipe_from_args

    parser = argparse.ArgumentParser()
    add_stage_arguments(parser, "sft")
    args = parser.parse_args(["--run", "runs/x", "--init-model", "{run}/sft/model", "--corpus", "{run}/corpus_rec",
                              "--output", "{run}/sft_rec"])
    recipe = recipe_from_args("sft", args)
    assert (recipe.run, recipe.init_model, recipe.corpus, recipe.output) == (
        "runs/x", "{run}/sft/model", "{run}/corpus_rec", "{run}/sft_rec")


def test_lora_mode_trains_sid_rows_and_saves_merged_model(small_run, tmp_path):
    from llmrec.llm import load_model
    from llmrec.train.config import AdapterConfig
    from llmrec.train.sft import run_sft

    runs = {}
    for name, lr in (("lora", 3e-3), ("frozen", 0.0)):  # lr 0: the saved rows are the initial ones
        recipe = _recipe(small_run, tmp_path / name, max_steps=3, learning_rate=lr)
        recipe.adapter = AdapterConfig(mode="lora", r=4, alpha=8, target_modules=["q_proj", "v_proj"])
        runs[name] = run_sft(recipe)
    assert runs["lora"]["global_step"] == 3
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").exists()
    trained, tok, sid_map = load_model(tmp_path / "lora" / "model")
    initial, _, _ = load_model(tmp_path / "frozen" / "model")
    sid_ids = tok.convert_tokens_to_ids(sid_map.all_tokens())
    moved = (trained.get_input_embeddings().weight[sid_ids] - initial.get_input_embeddings().weight[sid_ids]).abs()
    assert moved.amax(dim=1).gt(0).float().mean() > 0.5  # most SID rows were trained (modules_to_save)
    model, _, _ = load_model(tmp_path / "lora" / "model")
    assert not any("lora" in n for n, _ in model.named_parameters())


def test_recipe_numbers_written_without_a_dot_are_numbers(tmp_path):
    from llmrec.io import LlmrecError
    from llmrec.train.config import SFTRecipe, load_recipe

    path = tmp_path / "r.yaml"
    path.write_text("run: runs/x\ntrain:\n  learning_rate: 1e-4\n")
    recipe = load_recipe(SFTRecipe, path, ["train.weight_decay=1e-2", "train.max_steps=5"])
    assert recipe.train.learning_rate == 1e-4 and recipe.train.weight_decay == 0.01 and recipe.train.max_steps == 5
    with pytest.raises(LlmrecError, match="train.learning_rate"):
        load_recipe(SFTRecipe, path, ["train.learning_rate=fast"])


def test_time_schedule_spans_the_wall_time_budget():
    """schedule_by=time: warmup then cosine/linear decay laid over max_minutes, whatever the step count."""
    import pytest

    from llmrec.train.schedule import time_schedule

    now = [100.0]
    f = time_schedule("cosine", 0.1, 60.0, clock=lambda: now[0])
    assert f(0) == pytest.approx(1e-3)  # the clock starts at the first call (the scheduler's creation)
    now[0] = 103.0
    assert f(7) == pytest.approx(0.5)  # half-way through the warmup
    now[0] = 106.0 + 27.0
    assert f(50) == pytest.approx(0.5)  # half-way through the decay
    now[0] = 1000.0
    assert f(99) == pytest.approx(0.0)
    g = time_schedule("linear", 0.0, 10.0, clock=lambda: now[0])
    assert g(0) == pytest.approx(1.0)
    now[0] += 2.5
    assert g(1) == pytest.approx(0.75)
    # planned steps that end before the budget end the schedule with them (GRPO's max_steps on a fast machine)
    h = time_schedule("linear", 0.0, 600.0, clock=lambda: now[0], total_steps=100)
    assert h(0) == pytest.approx(1.0)
    now[0] += 60.0
    assert h(50) == pytest.approx(0.5)  # half the steps in a tenth of the budget
    assert h(100) == pytest.approx(0.0)
    now[0] += 480.0
    assert h(10) == pytest.approx(0.1)  # and time still ends it when the steps lag


def test_time_schedule_needs_a_budget():
    import pytest

    from llmrec.config import validate_config
    from llmrec.io import LlmrecError
    from llmrec.train.config import TrainConfig

    with pytest.raises(LlmrecError, match="max_minutes"):
        validate_config(TrainConfig(schedule_by="time"))


def test_validation_runs_rank_users_and_keep_the_best_step(small_run, tmp_path):
    """validation.runs spreads HR/NDCG runs over the planned steps (plus step 0 and the end); with
    keep_best the saved model is the best run's, the final one unless an earlier run beats it."""
    import dataclasses

    from llmrec.train.config import SFTValidation
    from llmrec.train.sft import run_sft

    recipe = _recipe(small_run, tmp_path / "sft", max_steps=8)
    recipe.validation = SFTValidation(runs=2, samples=6, beams=10, keep_best=True)
    summary = run_sft(recipe)
    rows = summary["validation"]
    assert [r["step"] for r in rows] == [0, 4, 8]
    assert all(0.0 <= r["NDCG@10"] <= r["HR@10"] <= 1.0 for r in rows)
    best = max(rows, key=lambda r: r["NDCG@10"])  # the first best run; the final one unless it is beaten
    assert summary["kept_step"] == (best["step"] if best["NDCG@10"] > rows[-1]["NDCG@10"] else 8)
    assert (tmp_path / "sft" / "loss.png").exists()
    # a run resumed from a checkpoint still has the runs made before it (and the step they kept)
    from llmrec.train.validation import STATE_FILE

    assert (tmp_path / "sft" / "checkpoint-4" / STATE_FILE).is_file()
    resumed = _recipe(small_run, tmp_path / "resumed", max_steps=8)
    resumed.validation, resumed.resume = recipe.validation, str(tmp_path / "sft" / "checkpoint-4")
    again = run_sft(resumed)
    assert [r["step"] for r in again["validation"]] == [0, 4, 8]
    assert again["validation"][:2] == rows[:2]
    # by wall time under schedule_by=time: runs fall inside the budget, the last at the final step
    timed = _recipe(small_run, tmp_path / "timed", max_steps=-1, epochs=1000, schedule_by="time", max_minutes=0.05,
                    lr_scheduler="linear")
    timed.validation = dataclasses.replace(recipe.validation, runs=3, keep_best=False)
    timed_summary = run_sft(timed)
    rows = timed_summary["validation"]
    assert rows[0]["step"] == 0 and len(rows) >= 3
    assert rows[-1]["step"] == timed_summary["global_step"] > rows[-2]["step"]


def test_validation_ranks_the_tune_split_when_the_data_holds_one(tmp_path, data_root):
    """With a tune split (`data prepare --tune-users`) validation ranks tune users, none of whose tune
    events was trained on; `llmrec eval --split tune` scores the same examples."""
    from train_fixture import build_small_run

    from llmrec.data.store import load_prepared
    from llmrec.eval.config import EvalConfig
    from llmrec.eval.run import run_eval
    from llmrec.io import LlmrecError
    from llmrec.train.config import SFTValidation
    from llmrec.train.sft import run_sft

    run = build_small_run(tmp_path / "tuned", tune_users=40)
    split = load_prepared(run / "data").split
    from datasets import load_from_disk

    rows = load_from_disk(str(run / "corpus"))["train"]
    trained = {(u, t) for u, t, task in zip(rows["user"], rows["target"], rows["task"]) if task == "seqrec"}
    assert len(trained) > 100
    plain = [e for e in split.tune if len(set(e.history + [e.target])) == len(e.history) + 1]  # no repeats
    assert len(plain) > 20 and not trained & {(e.user, i) for e in plain for i in (e.history[-1], e.target)}
    recipe = _recipe(run, tmp_path / "sft", max_steps=2)
    recipe.validation = SFTValidation(runs=1, samples=6, beams=10)
    summary = run_sft(recipe)
    assert summary["validation_split"] == "tune" and summary["validation"]
    report = run_eval(EvalConfig(run=str(run), models=[], split="tune", baselines=["popular"]))
    assert report.n_examples == 40
    untuned = build_small_run(tmp_path / "plain")
    with pytest.raises(LlmrecError, match="--tune-users"):
        run_eval(EvalConfig(run=str(untuned), models=[], split="tune", baselines=["popular"]))


def test_validation_settings_are_checked_before_training(small_run, tmp_path):
    from llmrec.io import LlmrecError
    from llmrec.train.config import SFTValidation
    from llmrec.train.sft import run_sft

    recipe = _recipe(small_run, tmp_path / "sft")
    for bad, says in ((SFTValidation(keep_best=True), "needs validation.runs"),
                      (SFTValidation(runs=2, beams=5, keep_best=True), "beams >= 10"),
                      (SFTValidation(runs=-1), "validation.runs")):
        recipe.validation = bad
        with pytest.raises(LlmrecError, match=says):
            run_sft(recipe)
    assert not (tmp_path / "sft").exists()
