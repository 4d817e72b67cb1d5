"""Resume picks the newest *complete* checkpoint and says what it skipped (issue 15, defect 5):
a folder cut off mid-save, a truncated model.safetensors, checkpoint-10.bak."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from llmrec.io import LlmrecError
from llmrec.train.common import latest_checkpoint


def _checkpoint(out, step, *, state=True, weights=True, optimizer=True):
    d = out / f"checkpoint-{step}"
    d.mkdir(parents=True)
    if weights:
        save_file({"w": np.full((64, 8), step, np.float32)}, str(d / "model.safetensors"))
    if optimizer:
        torch.save({"state": {0: torch.ones(64)}}, d / "optimizer.pt")
        torch.save({"last_epoch": step}, d / "scheduler.pt")
    if state:
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return d


def _cut(path, keep=0.5):
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def test_newest_complete_checkpoint_skips_broken_ones(tmp_path, caplog):
    out = tmp_path / "sft"
    _checkpoint(out, 4)
    _checkpoint(out, 8)
    _cut(_checkpoint(out, 12) / "model.safetensors")
    _cut(_checkpoint(out, 16) / "optimizer.pt")
    _checkpoint(out, 20, state=False)  # killed before trainer_state.json was written
    _checkpoint(out, 100).rename(out / "checkpoint-10.bak")  # a user's copy: not a checkpoint name
    with caplog.at_level(logging.WARNING, logger="llmrec"):
        assert latest_checkpoint(out) == str(out / "checkpoint-8")
    log = caplog.text
    assert "checkpoint-20: no trainer_state.json" in log
    assert "checkpoint-16: optimizer.pt is incomplete" in log
    assert "checkpoint-12: model.safetensors is cut off" in log
    assert "resuming from checkpoint-8" in log and ".bak" not in log


def test_problems_are_named(tmp_path):
    from llmrec.train.checkpoints import checkpoint_problem

    out = tmp_path / "o"
    assert checkpoint_problem(_checkpoint(out, 1)) is None
    assert "no model weights" in checkpoint_problem(_checkpoint(out, 2, weights=False))
    assert "no optimizer.pt" in checkpoint_problem(_checkpoint(out, 3, optimizer=False))
    d = _checkpoint(out, 5)
    (d / "trainer_state.json").write_text('{"global_step": 5, "log_hist')
    assert "cut off or not JSON" in checkpoint_problem(d)
    d = _checkpoint(out, 6)
    (d / "trainer_state.json").write_text('{"global_step": 7}')
    assert "says step 7" in checkpoint_problem(d)


def test_explicit_checkpoints_and_nothing_complete(tmp_path, caplog):
    from llmrec.train.checkpoints import resume_checkpoint

    out = tmp_path / "o"
    good = _checkpoint(out, 2)
    bad = _checkpoint(out, 4)
    _cut(bad / "model.safetensors", 0.9)
    assert resume_checkpoint(str(good), out) == str(good)
    assert resume_checkpoint(str(out), tmp_path / "elsewhere") == str(good)  # an output folder: its newest
    with pytest.raises(LlmrecError, match=r"cannot resume from .*checkpoint-4: model.safetensors is cut off.*"
                                          r"resume from .*checkpoint-2 instead"):
        resume_checkpoint(str(bad), out)
    with pytest.raises(LlmrecError, match="no such checkpoint folder"):
        resume_checkpoint(str(tmp_path / "nope"), out)
    assert resume_checkpoint(False, out) is None
    (good / "trainer_state.json").unlink()
    with caplog.at_level(logging.WARNING, logger="llmrec"):
        assert resume_checkpoint(True, out) is None
    assert "no complete checkpoint" in caplog.text


@pytest.mark.slow
def test_sft_resumes_past_a_truncated_checkpoint(tmp_path, data_root):
    """Real Trainer: the newest checkpoint's weights are cut off; --resume continues from the one
    before and reaches the same final step (before: a raw SafetensorError)."""
    from train_fixture import TINY_MODEL, build_small_run

    from llmrec.train.checkpoints import checkpoint_problem
    from llmrec.train.config import AdapterConfig, ModelConfig, SFTRecipe, TrainConfig
    from llmrec.train.sft import run_sft

    run = build_small_run(tmp_path / "run")

    def recipe(resume):
        return SFTRecipe(run=str(run), output=str(tmp_path / "sft"), resume=resume,
                         model=ModelConfig(preset="tiny", init="semantic", tiny=TINY_MODEL),
                         adapter=AdapterConfig(mode="full"),
                         train=TrainConfig(max_steps=6, learning_rate=3e-3, lr_scheduler="constant", warmup_ratio=0.0,
                                           batch_size=8, logging_steps=1, save_steps=3, report_to=[],
                                           max_length=128, seed=3))

    run_sft(recipe(False))
    _cut(tmp_path / "sft" / "checkpoint-6" / "model.safetensors")
    summary = run_sft(recipe(True))
    assert summary["global_step"] == 6
    assert checkpoint_problem(tmp_path / "sft" / "checkpoint-6") is None  # saved again, whole
