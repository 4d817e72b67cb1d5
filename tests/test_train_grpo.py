"""GRPO: rewards on hand-made groups, constrained rollouts, and a few real steps on the tiny preset."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
import torch
from train_fixture import TINY_MODEL, build_small_run


class _Decoder:
    """Stands in for CompletionItems in the pure reward tests: completion ids are item ids."""

    def items(self, completion_ids):
        return [None if c[0] < 0 else str(c[0]) for c in completion_ids]


def test_rule_ranking_validity_rewards_on_a_hand_made_group():
    from llmrec.train.rewards import ranking_reward, rule_reward, validity_reward

    dec = _Decoder()
    group = [[5], [7], [-1], [9]]  # rank 0..3; item 7 is the target; one invalid completion
    target = ["7"] * 4
    assert rule_reward(dec)(completion_ids=group, target=target) == [0.0, 1.0, 0.0, 0.0]
    w = np.array([1 / math.log2(r + 2) for r in range(4)])
    w /= w.sum()
    ranking = ranking_reward(dec, group_size=4)(completion_ids=group, target=target)
    assert ranking[1] == 1.0
    assert ranking[0] == pytest.approx(-w[0]) and ranking[3] == pytest.approx(-w[3])
    assert ranking[0] < ranking[3] < 0  # a confident wrong answer costs more than a late one
    two_groups = ranking_reward(dec, group_size=4)(completion_ids=group + [[1], [2], [3], [4]], target=["7"] * 8)
    assert two_groups[:4] == ranking and two_groups[4:] == [0.0] * 4  # a group without the target: no signal
    assert validity_reward(dec)(completion_ids=group) == [0.0, 0.0, -1.0, 0.0]


def test_repeat_reward_penalises_items_from_the_history():
    from llmrec.train.rewards import repeat_reward

    group = [[5], [7], [-1], [9]]
    history = [["7", "9"]] * 4
    assert repeat_reward(_Decoder())(completion_ids=group, history=history) == [0.0, -1.0, 0.0, -1.0]
    assert repeat_reward(_Decoder())(completion_ids=[[5]], history=[[]]) == [0.0]


def test_semantic_and_collaborative_rewards():
    from llmrec.train.rewards import collaborative_reward, semantic_reward

    dec = _Decoder()
    vecs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    index = {"0": 0, "1": 1, "2": 2}
    sem = semantic_reward(dec, vecs, index)(completion_ids=[[0], [1], [2], [-1]], target=["0"] * 4)
    assert sem == pytest.approx([1.0, 0.0, 1 / math.sqrt(2), 0.0])

    scored: list[int] = []

    def scores(histories):  # item 2 best, then 1, then 0, whatever the history
        scored.append(len(histories))
        return torch.tensor([[0.1, 0.5, 0.9]] * len(histories))

    pct = collaborative_reward(dec, scores, index, shape="percentile")
    assert pct(completion_ids=[[2], [1], [0]], history=[["0"]] * 3) == pytest.approx([2 / 3, 1 / 3, 0.0])
    dcg = collaborative_reward(dec, scores, index)  # default: 1/log2(rank + 2), rank 0 = top pick
    assert dcg(completion_ids=[[2], [1], [0], [-1]], history=[["0"]] * 4) == pytest.approx(
        [1.0, 1 / math.log2(3), 0.5, 0.0])
    assert scored[-1] == 1  # one shared history is scored once, not once per completion
    with pytest.raises(ValueError, match="shape"):
        collaborative_reward(dec, scores, index, shape="linear")


def test_completion_items_reads_ids_not_text(tmp_path):
    """Rewards see SIDs through token ids; decoding with skip_special_tokens keeps them too."""
    from llmrec.llm import load_base
    from llmrec.sid.sidmap import SidMap
    from llmrec.train.rewards import CompletionItems

    sid_map = SidMap({"x": (0, 1), "y": (1, 0)})
    _, tok = load_base("tiny", sid_map=sid_map, init="mean", extra_texts=["a small catalogue of tools"] * 20)
    dec = CompletionItems.from_tokenizer(tok, sid_map)
    ids = tok.convert_tokens_to_ids(sid_map.tokens("y")) + [tok.convert_tokens_to_ids("<|im_end|>")]
    assert dec.item(ids) == "y"
    assert dec.item(ids[::-1]) is None
    assert sid_map.item_for_string(tok.decode(ids, skip_special_tokens=True)) == "y"


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory, data_root):
    from llmrec.data.store import load_prepared
    from llmrec.llm import load_base, save_model
    from llmrec.llm.tiny import TinyConfig
    from llmrec.sid.sidmap import SidMap

    run = build_small_run(tmp_path_factory.mktemp("grpo") / "small")
    sid_map = SidMap.load(run / "sid" / "sid_map.json")
    model, tok = load_base("tiny", sid_map=sid_map, items=load_prepared(run / "data").items,
                           tiny_config=TinyConfig(**TINY_MODEL))
    save_model(model, tok, sid_map, run / "sft" / "model")
    # item vectors for the semantic reward (rows in SidMap order, as `llmrec sid build` writes them)
    np.save(run / "sid" / "embeddings.npy", np.random.default_rng(0).normal(size=(len(sid_map), 8)))
    return run


def _recipe(run, out, steps=2):
    from llmrec.train.config import AdapterConfig, GRPORecipe, GRPOSettings, TrainConfig

    return GRPORecipe(
        run=str(run), output=str(out), adapter=AdapterConfig(mode="full"),
        train=TrainConfig(max_steps=steps, learning_rate=5e-3, lr_scheduler="constant", warmup_ratio=0.0,
                          batch_size=8, logging_steps=1, save_steps=100, report_to=[], seed=1),
        grpo=GRPOSettings(num_generations=4, beta=0.1, num_seqrec=16, num_item2sid=4, eval_every=2, eval_samples=8,
                          eval_beams=10, keep_best=True,
                          rewards={"rule": 1.0, "ranking": 1.0, "semantic": 1.0, "valid": 1.0}))


@pytest.mark.parametrize("prompt_format", ["window", "stream"])
def test_rollout_gives_distinct_valid_items_per_group(grpo_run, prompt_format):
    """...and a completion is the item's SID tokens plus the end token, or (a stream model, which
    continues with the next SID) the SID tokens alone."""
    from llmrec.decode import SidTrie
    from llmrec.llm import load_model
    from llmrec.train.config import GRPOSettings
    from llmrec.train.grpo import ConstrainedRollout
    from llmrec.train.rewards import CompletionItems

    model, tok, sid_map = load_model(grpo_run / "sft" / "model")
    trie = SidTrie(sid_map, tok)

    class _Accel:
        process_index = 0

        def unwrap_model(self, m):
            return m

    class _Trainer:  # the attributes of GRPOTrainer the rollout reads
        num_generations = num_generations_eval = 4
        accelerator = _Accel()
    _Trainer.model = model
    _Trainer._metrics = {"train": defaultdict(list)}
    model.train()
    from llmrec.corpus import seqrec_messages

    ids = list(sid_map.codes)
    prompts = [seqrec_messages(ids[i:i + 3], sid_map, prompt_format=prompt_format) for i in (0, 5)]
    repeated = [p for p in prompts for _ in range(4)]
    out = ConstrainedRollout(tok, sid_map, trie, GRPOSettings(num_generations=4),
                             end_token=prompt_format != "stream")(repeated, _Trainer)
    items = CompletionItems.from_tokenizer(tok, sid_map).items(out["completion_ids"])
    assert None not in items
    for item, comp in zip(items, out["completion_ids"]):
        sid_ids = tok.convert_tokens_to_ids(sid_map.tokens(item))
        assert comp == list(sid_ids) + ([] if prompt_format == "stream" else [trie.end_ids[0]])
    for g in range(2):
        assert len(set(items[g * 4:(g + 1) * 4])) == 4
    assert out["beam_rank"] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert model.training  # the rollout restores train mode


def test_grpo_steps_change_policy_and_keep_reference_fixed(grpo_run, tmp_path):
    from llmrec.llm import load_model
    from llmrec.train.grpo import run_grpo

    before, _, _ = load_model(grpo_run / "sft" / "model")
    summary = run_grpo(_recipe(grpo_run, tmp_path / "grpo", steps=2))
    assert summary["global_step"] == 2
    assert summary["distinct_per_group"] == 4 and summary["valid_rate"] == 1.0
    assert [v["step"] for v in summary["validation"]] == [0, 2]
    best = max(summary["validation"], key=lambda v: v["NDCG@10"])  # keep_best: the first best step is saved
    assert summary["kept_step"] == best["step"]
    after, _, _ = load_model(tmp_path / "grpo" / "model")
    changed = [n for (n, a), b in zip(before.state_dict().items(), after.state_dict().values())
               if not torch.allclose(a, b)]
    assert changed, "GRPO did not change the policy"
    ref_state = summary["reference_checksum"]
    assert ref_state["before"] == ref_state["after"]  # the reference model stays fixed
    assert ref_state["after"] != ref_state["policy_after"]


def test_grpo_follows_a_wall_time_schedule(grpo_run, tmp_path):
    """train.schedule_by=time is honoured by GRPO too (not only SFT): with 90% of the budget as warmup
    the first step runs at the warmup's floor, and a budget spent within that step ends the schedule
    (learning rate 0), where the step-counted schedule over 2 planned steps would reach half the peak."""
    import dataclasses
    import json

    from llmrec.train.grpo import run_grpo

    recipe = _recipe(grpo_run, tmp_path / "grpo", steps=2)
    recipe.train = dataclasses.replace(recipe.train, schedule_by="time", max_minutes=0.0001, warmup_ratio=0.9,
                                       lr_scheduler="linear")
    recipe.grpo = dataclasses.replace(recipe.grpo, eval_every=0, keep_best=False)
    summary = run_grpo(recipe)
    lrs = [h["learning_rate"] for h in json.loads((tmp_path / "grpo" / "log_history.json").read_text())
           if "learning_rate" in h]
    assert summary["global_step"] >= 1
    assert lrs and max(lrs) < 0.01 * recipe.train.learning_rate


def test_dense_rewards_are_wired_from_run_artifacts(grpo_run):
    """semantic (RUN/sid/embeddings.npy) and collaborative (RUN/baselines/sasrec) rewards load and score."""
    from llmrec.baselines.sasrec import SASRecConfig, train_sasrec
    from llmrec.llm import load_model
    from llmrec.train.common import load_run_inputs
    from llmrec.train.config import GRPOSettings
    from llmrec.train.rewards import CompletionItems, RewardContext, build_rewards

    inputs = load_run_inputs(grpo_run)
    ids = list(inputs.sid_map.codes)
    seqs = [[x.item for x in s] for s in inputs.prepared.split.train.values()]
    sas, _ = train_sasrec(seqs, list(inputs.prepared.items), (), SASRecConfig(epochs=1), progress=False)
    sas_dir = grpo_run / "baselines" / "sasrec"
    sas.save(sas_dir, extra={"data_fingerprint": inputs.prepared.fingerprint})
    stamp = (sas_dir / "model.safetensors").stat().st_mtime_ns
    _, tok, _ = load_model(grpo_run / "sft" / "model")
    dec = CompletionItems.from_tokenizer(tok, inputs.sid_map)
    settings = GRPOSettings(rewards={"semantic": 0.5, "collaborative": 0.25})
    funcs, weights = build_rewards(RewardContext(dec, settings, grpo_run, inputs.sid_map, inputs.prepared))
    assert (sas_dir / "model.safetensors").stat().st_mtime_ns == stamp  # the run's own SASRec is reused
    assert [f.__name__ for f in funcs] == ["semantic", "collaborative"] and weights == [0.5, 0.25]
    target = ids[0]
    comp = [tok.convert_tokens_to_ids(inputs.sid_map.tokens(i)) for i in (ids[0], ids[1])]
    sem = funcs[0](completion_ids=comp, target=[target] * 2)
    assert sem[0] == pytest.approx(1.0) and sem[1] < 1.0
    col = funcs[1](completion_ids=comp, history=[[ids[2]]] * 2)
    assert all(0.0 <= c <= 1.0 for c in col)


def test_collaborative_reward_trains_the_missing_sasrec(grpo_run, tmp_path):
    """Without RUN/baselines/sasrec, GRPO trains the run's SASRec (as `llmrec eval` would) and caches it."""
    import shutil

    from llmrec.baselines.sasrec import read_meta
    from llmrec.llm import load_model
    from llmrec.train.common import load_run_inputs
    from llmrec.train.config import GRPOSettings
    from llmrec.train.rewards import CompletionItems, RewardContext, build_rewards

    run = tmp_path / "run"
    shutil.copytree(grpo_run, run, ignore=shutil.ignore_patterns("baselines"))
    inputs = load_run_inputs(run)
    _, tok, _ = load_model(run / "sft" / "model")
    funcs, _ = build_rewards(RewardContext(CompletionItems.from_tokenizer(tok, inputs.sid_map),
                                           GRPOSettings(rewards={"collaborative": 1.0}), run, inputs.sid_map,
                                           inputs.prepared))
    assert read_meta(run / "baselines" / "sasrec")["data_fingerprint"] == inputs.prepared.fingerprint
    ids = list(inputs.sid_map.codes)
    comp = [tok.convert_tokens_to_ids(inputs.sid_map.tokens(i)) for i in ids[:3]]
    assert all(0.0 < c <= 1.0 for c in funcs[0](completion_ids=comp, history=[[ids[3]]] * 3))


def test_keep_best_restores_the_best_validated_policy():
    """keep_best: the weights of the step with the best validation NDCG@10 are what gets saved."""
    from llmrec.data.records import Example
    from llmrec.train.validation import ValidationCallback

    model = torch.nn.Linear(1, 1, bias=False)
    examples = [Example(user="u", history=["a"], target="b")]

    class _SignRanker:  # ranks the target first while the single weight is positive
        name = "sign"

        def __init__(self, m):
            self.m = m

        def rank(self, exs, k):
            return [["b", "c"] if self.m.weight.item() > 0 else ["c", "b"] for _ in exs]

    cb = ValidationCallback(_SignRanker, examples, every=1, catalogue=["a", "b", "c"], popularity={"a": 1},
                            ks=(1, 2), keep_best=True, metric="NDCG@1")
    for step, w in ((0, -1.0), (1, 2.0), (2, -3.0)):
        with torch.no_grad():
            model.weight.fill_(w)
        cb.run(step, model)
    assert [round(r["NDCG@1"], 3) for r in cb.history] == [0.0, 1.0, 0.0]
    best = cb.restore_best(model)
    assert best["step"] == 1 and model.weight.item() == 2.0
    assert ValidationCallback(_SignRanker, examples, every=1, catalogue=[], popularity={}).restore_best(model) is None


class _CountRanker:
    """Ranks a validation subset by one weight: the first round(weight) users get their target first."""

    name = "count"

    def __init__(self, m):
        self.m = m

    def rank(self, exs, k):
        n = round(self.m.weight.item())
        return [["b", "c"] if i < n else ["c", "b"] for i in range(len(exs))]


def test_keep_best_margin_ignores_a_gain_within_validation_noise():
    """keep_best_z: a step whose paired gain over the kept one is within z standard errors is not kept."""
    from llmrec.data.records import Example
    from llmrec.train.validation import ValidationCallback

    model = torch.nn.Linear(1, 1, bias=False)
    examples = [Example(user=f"u{i}", history=["a"], target="b") for i in range(10)]

    def kept(margin_z: float, weights: tuple[float, ...]) -> int:
        cb = ValidationCallback(_CountRanker, examples, every=1, catalogue=["a", "b", "c"], popularity={"a": 1},
                                ks=(1, 2), keep_best=True, metric="NDCG@1", margin_z=margin_z)
        for step, w in enumerate(weights):
            with torch.no_grad():
                model.weight.fill_(w)
            cb.run(step, model)
        return cb.restore_best(model)["step"]

    # one user of ten gains: +0.1 with a standard error of 0.1 (one standard error)
    assert kept(0.0, (0, 1)) == 1
    assert kept(2.0, (0, 1)) == 0
    # every user gains at step 2: kept whatever the margin; a later drop is never kept
    assert kept(2.0, (0, 1, 10, 3)) == 2


def test_favour_last_keeps_the_final_weights_unless_an_earlier_run_beats_them_beyond_noise():
    """favour_last (SFT): the margin protects the final, annealed weights instead of the first ones."""
    from llmrec.data.records import Example
    from llmrec.train.validation import ValidationCallback

    model = torch.nn.Linear(1, 1, bias=False)
    examples = [Example(user=f"u{i}", history=["a"], target="b") for i in range(10)]

    def saved_weight(margin_z: float, weights: tuple[float, ...]) -> tuple[int, float]:
        cb = ValidationCallback(_CountRanker, examples, every=1, catalogue=["a", "b", "c"], popularity={"a": 1},
                                ks=(1, 2), keep_best=True, metric="NDCG@1", margin_z=margin_z, favour_last=True)
        for step, w in enumerate(weights):
            with torch.no_grad():
                model.weight.fill_(w)
            cb.run(step, model)
        kept = cb.finish(len(weights) - 1, model)
        return kept["step"], model.weight.item()

    # step 1 beats the final step by one user of ten (one standard error)
    assert saved_weight(0.0, (0, 3, 2)) == (1, 3.0)
    assert saved_weight(2.0, (0, 3, 2)) == (2, 2.0)  # within the margin: the final weights stay
    assert saved_weight(2.0, (0, 10, 2)) == (1, 10.0)  # far beyond it: the earlier run is restored
    assert saved_weight(2.0, (0, 1, 5)) == (2, 5.0)


def test_validation_state_survives_a_resume(tmp_path):
    """The runs and the kept weights go into a checkpoint; a resumed callback restores the earlier best
    step as the uninterrupted one would, and refuses a checkpoint whose runs ranked other users."""
    from llmrec.data.records import Example
    from llmrec.io import LlmrecError
    from llmrec.train.validation import ValidationCallback

    model = torch.nn.Linear(1, 1, bias=False)
    examples = [Example(user=f"u{i}", history=["a"], target="b") for i in range(10)]

    def callback(exs=examples) -> ValidationCallback:
        return ValidationCallback(_CountRanker, exs, every=1, catalogue=["a", "b", "c"], popularity={"a": 1},
                                  ks=(1, 2), keep_best=True, metric="NDCG@1", margin_z=2.0, favour_last=True)

    before = callback()
    for step, w in enumerate((0.0, 10.0)):
        with torch.no_grad():
            model.weight.fill_(w)
        before.run(step, model)
    before.save_state(tmp_path)
    after = callback()
    assert after.resume_from(tmp_path) and [r["step"] for r in after.history] == [0, 1]
    with torch.no_grad():
        model.weight.fill_(2.0)
    after.run(2, model)
    assert after.finish(2, model)["step"] == 1 and model.weight.item() == 10.0
    with pytest.raises(LlmrecError, match="other users"):
        callback(examples[:5]).resume_from(tmp_path)
    assert not callback().resume_from(tmp_path / "elsewhere")


def test_last_prompts_are_whole_training_histories_without_targets(grpo_run):
    """seqrec_prompts=last: one prompt per sampled user, its history the end of that user's training
    sequence (never a valid/test item), target empty; target rewards are refused with it."""
    from llmrec.io import LlmrecError
    from llmrec.train.common import load_run_inputs
    from llmrec.train.config import GRPOSettings
    from llmrec.train.grpo import build_rl_dataset

    inputs = load_run_inputs(grpo_run)
    split = inputs.prepared.split
    settings = GRPOSettings(rewards={"collaborative": 1.0}, seqrec_prompts="last", num_seqrec=10_000,
                            num_item2sid=0, max_history=5)
    rows = build_rl_dataset(inputs, settings, seed=0).to_list()
    ends = {tuple(x.item for x in seq[-5:]) for seq in split.train.values() if seq}
    assert len(rows) == sum(1 for seq in split.train.values() if seq)
    assert {tuple(r["history"]) for r in rows} == ends and all(r["target"] == "" for r in rows)
    events = build_rl_dataset(inputs, GRPOSettings(num_seqrec=10_000, num_item2sid=0, max_history=5), seed=0)
    assert all(r["target"] for r in events.to_list())  # the default: training events with their items
    with pytest.raises(LlmrecError, match="rule"):
        GRPOSettings(rewards={"rule": 1.0, "collaborative": 1.0}, seqrec_prompts="last").validate()


def test_completion_logps_equal_trl_fused_head(grpo_run):
    """On a CPU GRPO projects only completion positions (BudgetedGRPOTrainer._completion_logps): the
    same per-token log-probabilities and entropies as TRL's fused LM head, at any temperature."""
    import contextlib

    from trl import GRPOTrainer
    from trl.trainer.utils import add_fused_lm_head

    from llmrec.llm import load_model
    from llmrec.train.grpo import BudgetedGRPOTrainer

    model, _, _ = load_model(grpo_run / "sft" / "model")
    add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))

    class _Accel:
        autocast = staticmethod(contextlib.nullcontext)
        is_main_process = True

    class _Self:  # the attributes both implementations read
        accelerator, temperature, sid_groups = _Accel(), 0.7, None

    torch.manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (5, 14))
    mask = torch.ones_like(ids)
    mask[2, :4] = 0  # left padding
    with torch.no_grad():
        ref = GRPOTrainer._get_per_token_logps_and_entropies(_Self(), model, ids, mask, 4, batch_size=2,
                                                             compute_entropy=True)
        ours = BudgetedGRPOTrainer._completion_logps(_Self(), model, ids, mask, 4, 2, True)
    assert torch.allclose(ours[0], ref[0], atol=1e-5)
    assert torch.allclose(ours[1], ref[1], atol=1e-4)
