"""Corpus building: leakage, rendering through ChatML and plain text, behaviors, save/load, CLI."""

from __future__ import annotations

import os
import random
import re

import pytest
from conftest import require_data

from llmrec.config import config_from_dict
from llmrec.corpus import (
    CorpusConfig,
    build_corpus,
    build_corpus_with_manifest,
    load_corpus,
    load_corpus_manifest,
    load_templates,
    plain_prompt,
    render_example,
    render_prompt,
    save_corpus,
    seqrec_messages,
    task_counts,
)
from llmrec.data.records import Example, Interaction, Item, RecDataset, Split
from llmrec.data.store import load_prepared, save_prepared
from llmrec.io import LlmrecError
from llmrec.sid.sidmap import SidMap

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SID_RE = re.compile(r"^(<[a-z]_\d+>)+$")
CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


# ---- fixtures ---------------------------------------------------------------------------------
def _loo(ds: RecDataset) -> Split:
    train, valid, test = {}, [], []
    for user, seq in ds.sequences().items():
        if len(seq) < 3:
            continue
        train[user] = seq[:-2]
        valid.append(Example(user=user, history=[x.item for x in seq[:-2]], target=seq[-2].item,
                             history_behaviors=[x.behavior for x in seq[:-2]], target_behavior=seq[-2].behavior))
        test.append(Example(user=user, history=[x.item for x in seq[:-1]], target=seq[-1].item,
                            history_behaviors=[x.behavior for x in seq[:-1]], target_behavior=seq[-1].behavior))
    return Split(train=train, valid=valid, test=test, method="loo")


def _dataset(behaviors: bool = True, ratings: bool = False) -> RecDataset:
    """30 items (20 with text, 10 without), 8 users with 8-12 events, Taobao-like behaviors."""
    rng = random.Random(3)
    items = {}
    for i in range(30):
        text = i < 20
        items[f"i{i}"] = Item(id=f"i{i}", title=f"Lab widget model {i}" if text else "",
                              description=f"A sturdy widget number {i} for labs." if text else "")
    inter = []
    for u in range(8):
        t = 1_500_000_000 + u * 10_000
        for p in range(rng.randint(8, 12)):
            t += rng.randint(1, 100)
            b = rng.choice(["pv", "pv", "pv", "cart", "fav", "buy"]) if behaviors else "interact"
            inter.append(Interaction(user=f"u{u}", item=f"i{rng.randrange(30)}", timestamp=float(t), position=p,
                                     behavior=b, rating=float(rng.randint(1, 5)) if ratings else None))
    return RecDataset(name="tiny_taobao_like", items=items, interactions=inter, source={"test": True})


def _sid_map(items) -> SidMap:
    return SidMap({k: [n % 4, (n // 4) % 4, n] for n, k in enumerate(sorted(items))}, level_sizes=[4, 4, 64])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    ds = _dataset()
    save_prepared(root / "data", ds, _loo(ds))
    prepared = load_prepared(root / "data")
    sm = _sid_map(prepared.items)
    sm.save(root / "sid" / "sid_map.json")
    return root, prepared, sm


def _own_tokenizer(texts):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


@pytest.fixture(scope="module")
def tokenizer(run):
    """llmrec.llm's tiny ChatML tokenizer when present, else a BPE trained here; SID tokens added."""
    _, prepared, sm = run
    lib = load_templates()
    texts = [t.system for t in lib.tasks.values()] + [p for t in lib.tasks.values() for p in t.paraphrases]
    texts += [it.title for it in prepared.items.values() if it.title]
    try:
        from llmrec.llm.tiny import train_tokenizer

        tok = train_tokenizer(texts, vocab_size=600)
    except ImportError:
        tok = _own_tokenizer(texts)
    try:
        from llmrec.llm.sid_tokens import add_sid_tokens

        add_sid_tokens(tok, sm)
    except ImportError:
        from tokenizers import AddedToken

        tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in sm.all_tokens()])
    return tok


@pytest.fixture(scope="module")
def built(run):
    _, prepared, sm = run
    return build_corpus_with_manifest(prepared, sm, CorpusConfig(max_history=5))


# ---- tests ------------------------------------------------------------------------------------
def test_training_targets_are_training_events_only(run, built):
    _, prepared, _sm = run
    corpus, _ = built
    train = corpus["train"]
    by_user: dict[str, list[str]] = {}
    for r in train:
        if r["task"] == "seqrec":
            by_user.setdefault(r["user"], []).append(r["target"])
    # seqrec targets are exactly the training events after the first, per user, in order
    assert by_user == {u: [x.item for x in seq[1:]] for u, seq in prepared.split.train.items()}
    for r in train:
        if r["user"]:  # every sequence task's target is one of the user's training events
            pool = {x.item for x in prepared.split.train[r["user"]]} | {x.behavior for x in prepared.split.train[r["user"]]}
            assert r["target"] in pool, r
    n_train_events = sum(len(s) for s in prepared.split.train.values())
    assert sum(len(v) for v in by_user.values()) == n_train_events - len(prepared.split.train)
    for split in ("valid", "test"):
        rows = corpus[split]
        assert set(rows["task"]) == {"seqrec"}
        assert [(r["user"], r["target"]) for r in rows] == [(e.user, e.target)
                                                             for e in getattr(prepared.split, split)]


def test_heldout_prompts_come_from_seqrec_messages(run, built):
    _, prepared, sm = run
    corpus, _ = built
    for row, ex in zip(corpus["test"], prepared.split.test):
        assert row["prompt"] == seqrec_messages(ex.history, sm, prepared.items, template_index=0, max_history=5)
        assert row["completion"] == [{"role": "assistant", "content": sm.sid_string(ex.target)}]


def test_every_task_renders_through_chatml(run, built, tokenizer):
    _, _, sm = run
    corpus, _manifest = built
    sid_ids = set(tokenizer.convert_tokens_to_ids(sm.all_tokens()))
    tasks = set(corpus["train"]["task"])
    assert tasks == {"seqrec", "item2sid_title", "item2sid_description", "item2sid_full", "sid2item_title",
                     "sid2item_description", "fusion_sid2title", "fusion_title2sid", "behavior_target",
                     "behavior_item", "behavior_next"}
    seen = set()
    for r in corpus["train"]:
        if r["task"] in seen:
            continue
        seen.add(r["task"])
        prompt = render_prompt(tokenizer, r["prompt"])
        assert prompt.startswith("<|im_start|>user\n") and prompt.endswith("<|im_start|>assistant\n")
        full = render_example(tokenizer, r["prompt"], r["completion"])
        answer = r["completion"][0]["content"]
        assert full.startswith(prompt + answer)
        if SID_RE.match(answer):  # a SID answer is exactly its SID tokens, no 'Ġ' or pieces
            ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
            assert ids == tokenizer.convert_tokens_to_ids(re.findall(r"<[a-z]_\d+>", answer))
            assert set(ids) <= sid_ids
        # a prompt's SIDs survive as whole tokens
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        n_sid = len(re.findall(r"<[a-z]_\d+>", prompt))
        assert sum(1 for i in p_ids if i in sid_ids) >= n_sid


def test_plain_format_without_chat_template(run, built, tokenizer):
    _, prepared, sm = run
    import copy

    plain_tok = copy.deepcopy(tokenizer)
    plain_tok.chat_template = None
    corpus_conv, _ = built
    corpus, manifest = build_corpus_with_manifest(prepared, sm, CorpusConfig(max_history=5), tokenizer=plain_tok)
    assert manifest["style"] == "plain"
    assert task_counts(corpus) == task_counts(corpus_conv)
    for conv, plain in zip(corpus_conv["train"], corpus["train"]):
        assert plain["prompt"] == plain_prompt(conv["prompt"]) == render_prompt(plain_tok, conv["prompt"])
        assert plain["prompt"].endswith("### Response:\n")
        assert plain["completion"] == conv["completion"][0]["content"]
        assert not plain["completion"].startswith(" ")
        assert render_example(plain_tok, plain["prompt"], plain["completion"]) == plain["prompt"] + plain["completion"]


def test_sid_completions_have_no_spaces(built):
    corpus, _ = built
    sid_tasks = {"seqrec", "item2sid_title", "item2sid_description", "item2sid_full", "fusion_title2sid",
                 "behavior_target", "behavior_item"}
    for split in corpus:
        for r in corpus[split]:
            if r["task"] in sid_tasks:
                assert SID_RE.match(r["completion"][0]["content"]), r
            assert "> <" not in r["completion"][0]["content"]


def test_behavior_tasks(run, built):
    _, prepared, _sm = run
    corpus, manifest = built
    lib = load_templates()
    rows = corpus["train"]
    events = {(x.user, x.item, x.behavior) for seq in prepared.split.train.values() for x in seq}
    target = [r for r in rows if r["task"] == "behavior_target"]
    assert target and all((r["user"], r["target"], "buy") in events for r in target)
    assert all("buy" in r["prompt"][1]["content"] for r in target)
    nxt = [r for r in rows if r["task"] == "behavior_next"]
    assert {r["completion"][0]["content"] for r in nxt} <= {lib.behavior_name(b) for b in ("pv", "cart", "fav", "buy")}
    assert any("[view] <a_" in r["prompt"][1]["content"] for r in nxt)
    assert manifest["behaviors"]["target_behaviors"] == ["buy"]
    assert sum(1 for r in rows if r["task"] == "behavior_item") > 0


def test_ratings_become_behaviors(tmp_path):
    ds = _dataset(behaviors=False, ratings=True)
    save_prepared(tmp_path / "data", ds, _loo(ds))
    prepared = load_prepared(tmp_path / "data")
    corpus, manifest = build_corpus_with_manifest(prepared, _sid_map(prepared.items),
                                                  CorpusConfig(tasks=["behavior"], max_history=4))
    assert manifest["behaviors"]["target_behaviors"] == ["rating_5"]
    assert "rate 5 stars" in {r["completion"][0]["content"] for r in corpus["train"] if r["task"] == "behavior_next"}
    corpus, manifest = build_corpus_with_manifest(prepared, _sid_map(prepared.items),
                                                  CorpusConfig(tasks=["behavior"], rating_as_behavior=False))
    assert len(corpus["train"]) == 0
    assert manifest["skipped"]["behavior_next"] == {"single_behavior_dataset": 1}


def test_items_without_text_skip_text_tasks(built):
    _corpus, manifest = built
    assert manifest["counts"]["train"]["item2sid_title"] == 20
    assert manifest["skipped"]["item2sid_title"] == {"no_title": 10}
    assert manifest["skipped"]["sid2item_description"] == {"no_description": 10}
    assert manifest["skipped"]["fusion_sid2title"]["no_title"] > 0


def test_paraphrases_deterministic_seeded_and_switchable(run, built):
    _, prepared, sm = run
    corpus, _ = built
    again = build_corpus(prepared, sm, CorpusConfig(max_history=5))
    assert again["train"]["prompt"] == corpus["train"]["prompt"]
    other = build_corpus(prepared, sm, CorpusConfig(max_history=5, seed=1))
    assert other["train"]["prompt"] != corpus["train"]["prompt"]
    lib = load_templates()
    used = {r["prompt"][1]["content"].split("<")[0] for r in corpus["train"] if r["task"] == "seqrec"}
    assert len(used) >= 4  # several paraphrases in use
    off = build_corpus(prepared, sm, CorpusConfig(tasks=["seqrec"], max_history=5, paraphrases=False))
    first = lib["seqrec"].paraphrases[0].split("{")[0]
    assert all(r["prompt"][1]["content"].startswith(first) for r in off["train"])


def test_caps_and_task_selection(run):
    _, prepared, sm = run
    cfg = CorpusConfig(tasks=["seqrec", "item2sid_title"], caps={"seqrec": 10}, max_history=5)
    c1, m1 = build_corpus_with_manifest(prepared, sm, cfg)
    assert m1["counts"]["train"] == {"item2sid_title": 20, "seqrec": 10}
    assert c1["train"]["target"] == build_corpus(prepared, sm, cfg)["train"]["target"]
    with pytest.raises(LlmrecError, match="unknown task"):
        CorpusConfig(tasks=["nope"]).resolved_tasks()
    with pytest.raises(LlmrecError, match=r"unknown key 'max_histroy' \(did you mean 'max_history'"):
        config_from_dict(CorpusConfig, {"max_histroy": 3})


def test_eval_translation_sample(run):
    _, prepared, sm = run
    c = build_corpus(prepared, sm, CorpusConfig(tasks=["seqrec", "item2sid", "sid2item"], eval_translation_items=8))
    assert set(c["test"]["task"]) >= {"seqrec", "item2sid_title"}
    assert sum(1 for t in c["test"]["task"] if t == "seqrec") == len(prepared.split.test)


def test_save_load_round_trip(tmp_path, run, built):
    _, prepared, sm = run
    corpus, manifest = built
    out = save_corpus(tmp_path / "corpus", corpus, manifest)
    save_corpus(tmp_path / "corpus", corpus, manifest)  # overwrite in place (atomic rename)
    loaded = load_corpus(out, sid_map=sm)
    assert task_counts(loaded) == load_corpus_manifest(out)["counts"] == manifest["counts"]
    assert loaded["train"][0] == corpus["train"][0]
    m = load_corpus_manifest(out)
    assert m["sid_map_fingerprint"] == sm.fingerprint and m["data_fingerprint"] == prepared.fingerprint
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    other = SidMap({k: [c + 1 for c in v] for k, v in sm.codes.items()})
    with pytest.raises(LlmrecError, match="SID map"):
        load_corpus(out, sid_map=other)


def test_cli_build_and_show(run, capsys):
    from llmrec.cli import main

    root, _, _ = run
    assert main(["corpus", "build", "--run", str(root), "--tasks", "seqrec,item2sid", "--max-history", "4"]) == 0
    out = capsys.readouterr().out
    assert '"seqrec"' in out and '"item2sid_title": 20' in out
    assert main(["corpus", "show", "--run", str(root), "--task", "seqrec", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== train[") == 2 and "### Response:\n<a_" in out
    assert main(["corpus", "show", "--run", str(root), "--task", "behavior_next"]) == 1


def test_real_taobao_tail_behaviors(tmp_path):
    from llmrec.data import loaders

    require_data("taobao_userbehavior/tail_10k")
    ds = loaders.load_dataset("taobao_tail_10k")
    users = sorted({x.user for x in ds.interactions})[:12]
    inter = [x for x in ds.interactions if x.user in set(users)]
    used = {x.item for x in inter}
    small = RecDataset(name="taobao_tail_sub", items={k: v for k, v in ds.items.items() if k in used},
                       interactions=inter, source=ds.source)
    save_prepared(tmp_path / "data", small, _loo(small))
    prepared = load_prepared(tmp_path / "data")
    _corpus, manifest = build_corpus_with_manifest(prepared, _sid_map_big(prepared.items), CorpusConfig())
    counts = manifest["counts"]["train"]
    assert counts["behavior_next"] == counts["seqrec"] > 0
    assert counts.get("behavior_item", 0) > 0
    assert "item2sid_title" not in counts and manifest["skipped"]["item2sid_title"]["no_title"] == len(prepared.items)


def _sid_map_big(items) -> SidMap:
    return SidMap({k: [n % 64, (n // 64) % 64, n // 4096] for n, k in enumerate(sorted(items))})


def test_seqrec_crops_are_recent_suffixes_of_their_window(run):
    _, prepared, sm = run
    sid_re = re.compile(r"(?:<[a-z]_\d+>)+")
    base = build_corpus(prepared, sm, CorpusConfig(tasks=["seqrec"], max_history=6))["train"]
    cfg = CorpusConfig(tasks=["seqrec"], max_history=6, seqrec_crops=2)
    crop = build_corpus(prepared, sm, cfg)["train"]
    assert build_corpus(prepared, sm, cfg)["train"]["prompt"] == crop["prompt"]  # seeded
    windows = [(r["user"], r["target"], sid_re.findall(r["prompt"][-1]["content"])) for r in base]
    rows = [(r["user"], r["target"], sid_re.findall(r["prompt"][-1]["content"])) for r in crop]
    # every window is kept, followed by two crops when its history has at least two items
    expected = sum(1 + (2 if len(h) >= 2 else 0) for _, _, h in windows)
    assert len(rows) == expected
    i = 0
    for user, target, hist in windows:
        assert rows[i] == (user, target, hist)
        i += 1
        for _ in range(2 if len(hist) >= 2 else 0):
            u, t, h = rows[i]
            assert (u, t) == (user, target)
            assert 1 <= len(h) < len(hist) and hist[-len(h):] == h  # the most recent items only
            i += 1
    # training targets stay training events (no valid/test leakage)
    assert set(crop["target"]) == set(base["target"])
