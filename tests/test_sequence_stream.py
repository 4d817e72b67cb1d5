"""The stream seqrec format: one row per training sequence, the first item in the user turn and every
later SID back to back in one assistant turn (TRL's completion-only loss trains them all); a prompt
for a history ends inside that turn, token for token the prefix a training stream had."""

from __future__ import annotations

import pytest
from train_fixture import build_small_run, short_sft


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, data_root):
    return build_small_run(tmp_path_factory.mktemp("run") / "small")


@pytest.fixture(scope="module")
def stream(small_run):
    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest
    from llmrec.data.store import load_prepared
    from llmrec.sid.sidmap import SidMap

    prepared = load_prepared(small_run / "data")
    sid_map = SidMap.load(small_run / "sid" / "sid_map.json")
    config = CorpusConfig(tasks=["seqrec", "item2sid_title"], seqrec_format="stream", max_history=3)
    corpus, manifest = build_corpus_with_manifest(prepared, sid_map, config)
    return prepared, sid_map, corpus, manifest


@pytest.fixture(scope="module")
def tiny_tokenizer(stream):
    from llmrec.llm import load_base

    prepared, sid_map, _, _ = stream
    return load_base("tiny", sid_map=sid_map, items=prepared.items, init="random")[1]


def test_streams_train_every_item_after_the_first_once_and_no_held_out_target(stream):
    prepared, sid_map, corpus, manifest = stream
    assert manifest["config"]["seqrec_format"] == "stream"
    rows: dict[str, list] = {}
    for row in corpus["train"]:
        if row["task"] == "seqrec":
            assert [m["role"] for m in row["completion"]] == ["assistant"]
            rows.setdefault(row["user"], []).append(row)
    split = prepared.split
    assert set(rows) == {u for u, seq in split.train.items() if len(seq) >= 2}
    for user, seq in split.train.items():
        trained = ",".join(r["completion"][0]["content"] for r in rows.get(user, []))
        assert trained == ",".join(sid_map.sid_string(x.item) for x in seq[1:])  # in order, once each
        for r in rows.get(user, []):  # chunks of max_history + 1 items: at most 3 trained SIDs
            assert r["completion"][0]["content"].count("<a_") <= 3
    # held-out rows are whole streams ending with their own target; training rows never hold one
    for split_name, examples in (("valid", split.valid), ("test", split.test)):
        by_user = {r["user"]: r for r in corpus[split_name]}
        for ex in examples:
            r = by_user[ex.user]
            assert r["completion"][0]["content"].endswith(sid_map.sid_string(ex.target))
            assert r["target"] == ex.target


def test_stream_prompt_is_the_exact_token_prefix_of_a_training_stream(stream, tiny_tokenizer):
    """The prompt for history h tokenizes to the training row over h + [next] up to the next item's
    first token; TRL's completion mask is every later SID's tokens plus the end of the turn."""
    from trl.trainer.sft_trainer import _tokenize

    from llmrec.corpus import render_prompt, seqrec_messages
    from llmrec.corpus.tasks import STREAM_SEP, seqrec_stream

    prepared, sid_map, _, _ = stream
    tok = tiny_tokenizer
    seq = next(s for s in prepared.split.train.values() if len(s) >= 4)
    items = [x.item for x in seq[:4]]
    prompt, rest = seqrec_stream(items, sid_map, template_index=0)
    prompt_ids = _tokenize(tok, prompt, add_generation_prompt=True)["input_ids"]
    full_ids = _tokenize(tok, prompt + [{"role": "assistant", "content": rest}])["input_ids"]
    assert full_ids[:len(prompt_ids)] == prompt_ids
    sep = tok(STREAM_SEP, add_special_tokens=False)["input_ids"]
    assert len(sep) == 1
    sids = [tok(sid_map.sid_string(i), add_special_tokens=False)["input_ids"] for i in items[1:]]
    completion = full_ids[len(prompt_ids):]
    assert completion[:11] == sids[0] + sep + sids[1] + sep + sids[2]
    assert tok.convert_ids_to_tokens(completion[11]) == "<|im_end|>"
    for n in (1, 2, 3):  # history of n items, the (n+1)-th is the next one
        text = render_prompt(tok, seqrec_messages(items[:n], sid_map, template_index=0, prompt_format="stream"))
        ids = tok(text, add_special_tokens=False)["input_ids"]
        cut = len(prompt_ids) + (n - 1) * (len(sid_map.level_sizes) + 1)
        assert ids == full_ids[:cut]  # ends with the separator (n > 1): the next SID is predicted there


def test_stream_prompt_without_a_chat_template_continues_the_plain_answer(stream):
    from llmrec.corpus import plain_prompt, render_prompt, seqrec_messages

    prepared, sid_map, _, _ = stream
    items = list(prepared.items)[:3]
    msgs = seqrec_messages(items, sid_map, template_index=0, prompt_format="stream")
    text = render_prompt(None, msgs)
    assert text == plain_prompt(msgs[:-1]) + sid_map.sid_string(items[1]) + "," + sid_map.sid_string(items[2]) + ","


def test_stream_crops_start_chunks_later_and_end_at_the_same_item(small_run, stream):
    """seqrec_crops with streams: extra rows per chunk that start at a later item of it (the steps
    after that start are learnt from recent items alone) and end at the chunk's last item; no
    held-out target, and the plain streams are unchanged."""
    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest

    prepared, sid_map, plain, _ = stream
    config = CorpusConfig(tasks=["seqrec"], seqrec_format="stream", max_history=3, seqrec_crops=2)
    cropped, _ = build_corpus_with_manifest(prepared, sid_map, config)
    base = [r for r in plain["train"] if r["task"] == "seqrec"]
    rows = list(cropped["train"])
    plain_keys = {(r["user"], r["completion"][0]["content"]) for r in base}
    extra = [r for r in rows if (r["user"], r["completion"][0]["content"]) not in plain_keys]
    assert plain_keys <= {(r["user"], r["completion"][0]["content"]) for r in rows}
    assert extra and len(rows) <= 3 * len(base)
    by_user = {u: [x.item for x in seq] for u, seq in prepared.split.train.items()}
    for r in extra:
        sids = r["completion"][0]["content"].split(",")
        whole = [sid_map.sid_string(x) for x in by_user[r["user"]]]
        # a contiguous run of the user's TRAINING sequence (so never a held-out target)
        assert any(whole[i:i + len(sids)] == sids for i in range(len(whole)))
        # shorter than its chunk: its first item (in the user turn) comes later than the chunk's
        chunk_rows = [b for b in base if b["user"] == r["user"] and b["completion"][0]["content"].endswith(sids[-1])]
        assert chunk_rows and all(len(b["completion"][0]["content"].split(",")) > len(sids) for b in chunk_rows)


def test_stream_sft_records_the_format_and_recommends_real_items(stream, small_run, tmp_path):
    from llmrec.corpus import save_corpus
    from llmrec.decode import GenerativeRecommender

    prepared, sid_map, corpus, manifest = stream
    save_corpus(tmp_path / "corpus", corpus, manifest)
    summary = short_sft(small_run, tmp_path / "corpus", tmp_path / "sft", max_length=256)
    assert summary["loss_last"] < summary["loss_first"]
    rec = GenerativeRecommender.from_dir(tmp_path / "sft" / "model", prepared.items)
    assert rec.prompt_format == "stream"
    history = prepared.split.test[0].history
    assert rec.prompt(history).endswith("".join(sid_map.sid_string(i) + "," for i in history[1:]))
    top = rec.recommend([history], k=5)[0]
    assert len(top) == 5 and all(i in sid_map for i, _ in top)


def test_seqrec_repeats_copy_each_stream_with_its_own_paraphrase(small_run, stream):
    from llmrec.config import validate_config
    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest
    from llmrec.io import LlmrecError

    prepared, sid_map, once, _ = stream
    config = CorpusConfig(tasks=["seqrec"], seqrec_format="stream", max_history=3, repeats={"seqrec": 3})
    thrice, _ = build_corpus_with_manifest(prepared, sid_map, config)
    one = [r for r in once["train"] if r["task"] == "seqrec"]
    three = list(thrice["train"])
    assert len(three) == 3 * len(one)
    assert sorted(r["completion"][0]["content"] for r in three) == \
        sorted(r["completion"][0]["content"] for r in one for _ in range(3))
    assert len({r["prompt"][-1]["content"] for r in three}) > len({r["prompt"][-1]["content"] for r in one})
    with pytest.raises(LlmrecError, match="repeats.seqrec"):
        validate_config(CorpusConfig(tasks=["seqrec"], repeats={"seqrec": 2}))  # window rows
