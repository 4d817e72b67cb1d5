"""The session (sequence-level) seqrec format: one conversation per training sequence whose assistant
turns are every item after the first; trained with TRL's assistant-only loss; recorded in the model
so GenerativeRecommender prompts it the same way."""

from __future__ import annotations

import pytest
from train_fixture import build_small_run, short_sft


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, data_root):
    return build_small_run(tmp_path_factory.mktemp("run") / "small")


def _session_corpus(run, **cfg):
    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest
    from llmrec.data.store import load_prepared
    from llmrec.sid.sidmap import SidMap

    prepared = load_prepared(run / "data")
    sid_map = SidMap.load(run / "sid" / "sid_map.json")
    config = CorpusConfig(tasks=["seqrec", "item2sid_title", "sid2item_title"], seqrec_format="session", **cfg)
    corpus, manifest = build_corpus_with_manifest(prepared, sid_map, config)
    return prepared, sid_map, corpus, manifest


def _sessions_by_user(corpus):
    by_user: dict[str, list] = {}
    for row in corpus["train"]:
        if row["task"] == "seqrec":
            by_user.setdefault(row["user"], []).append(row)
    return by_user


@pytest.mark.parametrize("max_history", [10, 3])
def test_sessions_train_every_item_after_the_first_and_no_held_out_target(small_run, max_history):
    prepared, sid_map, corpus, _ = _session_corpus(small_run, max_history=max_history)
    by_user = _sessions_by_user(corpus)
    split = prepared.split
    assert set(by_user) == {u for u, seq in split.train.items() if len(seq) >= 2}
    for user, seq in split.train.items():
        rows = by_user.get(user, [])
        answers = [m["content"] for r in rows for m in r["completion"] if m["role"] == "assistant"]
        # every training item after the first, in order, exactly once
        assert answers == [sid_map.sid_string(x.item) for x in seq[1:]]
        for r in rows:
            assert r["completion"][-1]["role"] == "assistant"
            assert len([m for m in r["completion"] if m["role"] == "assistant"]) <= max_history
            # between two assistant turns there is exactly one short user turn
            roles = [m["role"] for m in r["completion"]]
            assert roles == ["assistant", "user"] * (len(roles) // 2) + ["assistant"]
    held_out = {(ex.user, ex.target) for ex in split.valid + split.test}
    trained_targets = {(u, a) for u, rows in by_user.items() for r in rows
                       for a in [m["content"] for m in r["completion"] if m["role"] == "assistant"]}
    train_sids = {(u, sid_map.sid_string(x.item)) for u, seq in split.train.items() for x in seq}
    for user, target in held_out:
        pair = (user, sid_map.sid_string(target))
        assert pair not in trained_targets or pair in train_sids  # only when also a training event


def test_session_prompts_in_held_out_rows_match_the_recommender_prompt(small_run):
    from llmrec.corpus import seqrec_messages

    prepared, sid_map, corpus, manifest = _session_corpus(small_run)
    assert manifest["config"]["seqrec_format"] == "session"
    ex = prepared.split.test[0]
    row = next(r for r in corpus["test"] if r["user"] == ex.user)
    expected = seqrec_messages(ex.history, sid_map, template_index=0, max_history=10, prompt_format="session")
    assert row["prompt"] == expected
    assert expected[-1] == {"role": "user", "content": "Next?"}
    assistants = [m["content"] for m in expected if m["role"] == "assistant"]
    assert assistants == [sid_map.sid_string(i) for i in ex.history[-10:][1:]]


def test_session_crops_are_later_starts_of_a_chunk(small_run):
    """seqrec_crops with sessions (as with streams, tests/test_sequence_stream.py): each extra row is a
    conversation over a contiguous run of the user's training sequence, shorter than its chunk."""
    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest
    from llmrec.data.store import load_prepared
    from llmrec.sid.sidmap import SidMap

    prepared = load_prepared(small_run / "data")
    sid_map = SidMap.load(small_run / "sid" / "sid_map.json")
    rows = {}
    for crops in (0, 2):
        corpus, _ = build_corpus_with_manifest(prepared, sid_map, CorpusConfig(
            tasks=["seqrec"], seqrec_format="session", max_history=4, seqrec_crops=crops))
        rows[crops] = list(corpus["train"])
    assert len(rows[0]) < len(rows[2]) <= 3 * len(rows[0])


def test_tiny_template_assistant_mask_is_the_sid_tokens_and_end_token(small_run):
    """TRL's assistant mask over a session row = each assistant SID's tokens + <|im_end|>, nothing else."""
    from trl.trainer.sft_trainer import _tokenize

    from llmrec.llm import load_base

    prepared, sid_map, corpus, _ = _session_corpus(small_run)
    _, tok = load_base("tiny", sid_map=sid_map, items=prepared.items, tiny_config=None, init="random")
    row = next(r for r in corpus["train"] if r["task"] == "seqrec" and len(r["completion"]) >= 5)
    out = _tokenize(tok, row["prompt"] + row["completion"], return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    masked = [i for i, m in zip(ids, mask) if m]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    expected = []
    for m in row["completion"]:
        if m["role"] == "assistant":
            sid_ids = tok(m["content"], add_special_tokens=False)["input_ids"]
            assert len(sid_ids) == len(sid_map.level_sizes)  # one added token per SID level
            expected += sid_ids + [end]
    assert masked == expected


def test_session_sft_records_the_format_and_the_recommender_uses_it(small_run, tmp_path):
    from llmrec.corpus import render_prompt, save_corpus, seqrec_messages
    from llmrec.decode import GenerativeRecommender

    prepared, sid_map, corpus, manifest = _session_corpus(small_run)
    save_corpus(tmp_path / "corpus", corpus, manifest)
    summary = short_sft(small_run, tmp_path / "corpus", tmp_path / "sft", max_length=512)
    assert summary["loss_last"] < summary["loss_first"]
    rec = GenerativeRecommender.from_dir(tmp_path / "sft" / "model", prepared.items)
    assert rec.prompt_format == "session"
    history = prepared.split.test[0].history
    expected = render_prompt(rec.tokenizer, seqrec_messages(history, sid_map, template_index=0,
                                                            prompt_format="session"))
    assert rec.prompt(history) == expected
    assert expected.count("<|im_start|>assistant") == len(history)  # one turn per later item + the answer
    top = rec.recommend([history], k=5)[0]
    assert len(top) == 5 and all(i in sid_map for i, _ in top)


@pytest.mark.parametrize("template", ["smollm2", "qwen2_5"])
def test_training_template_marks_other_chat_templates_without_changing_the_text(small_run, template):
    """SmolLM2 (our marked twin) and Qwen2.5 (TRL's patched template) render every conversation as
    their original does, and mark the assistant replies (+ <|im_end|>; TRL's Qwen2.5 twin also marks
    the newlines around a reply)."""
    from pathlib import Path

    import trl
    from trl.trainer.sft_trainer import _tokenize

    from llmrec.llm import load_base
    from llmrec.llm.gguf_convert import SMOLLM2_CHAT_TEMPLATE
    from llmrec.train.sft import training_chat_template

    prepared, sid_map, corpus, _ = _session_corpus(small_run)
    _, tok = load_base("tiny", sid_map=sid_map, items=prepared.items, init="random")
    original = SMOLLM2_CHAT_TEMPLATE if template == "smollm2" else \
        (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    tok.chat_template = original
    marked = training_chat_template(tok)
    assert "generation" in marked and marked != original
    row = next(r for r in corpus["train"] if r["task"] == "seqrec" and len(r["completion"]) >= 3)
    conv = row["prompt"] + row["completion"]
    assert tok.apply_chat_template(conv, tokenize=False, chat_template=marked) == \
        tok.apply_chat_template(conv, tokenize=False, chat_template=original)
    out = _tokenize(tok, conv, return_assistant_tokens_mask=True, chat_template=marked)
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    if template == "qwen2_5":
        masked = [i for i in masked if i not in newline]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    expected = [t for m in row["completion"] if m["role"] == "assistant"
                for t in tok(m["content"], add_special_tokens=False)["input_ids"] + [end]]
    assert masked == expected
