"""A model is prompted with the templates it was trained on: SFT records the corpus's templates in
config.json, GenerativeRecommender (eval, serving, GRPO, the translation check) reads them back; a
corpus whose templates changed after it was built is refused; `prompts_dir: compact` names the
shipped short set for from-scratch models."""

from __future__ import annotations

import pytest
from train_fixture import build_small_run, short_sft


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, data_root):
    return build_small_run(tmp_path_factory.mktemp("run") / "small")


def test_compact_set_is_shipped_and_unknown_names_are_refused():
    from llmrec.corpus import PromptLibrary, load_templates
    from llmrec.io import LlmrecError

    lib = load_templates("compact")
    assert lib["seqrec"].paraphrases == ("next after {history}",) and not lib["seqrec"].system
    assert len(lib["behavior_item"]) > 1  # tasks the set does not hold keep the shipped templates
    assert PromptLibrary.from_dict(lib.to_dict(), "record").fingerprint == lib.fingerprint
    with pytest.raises(LlmrecError, match="shipped: compact"):
        load_templates("no-such-set")


def test_sft_records_the_corpus_templates_and_prompts_with_them(small_run, tmp_path):
    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest, render_prompt, save_corpus
    from llmrec.data.store import load_prepared
    from llmrec.decode import GenerativeRecommender
    from llmrec.eval.translation import evaluate_translation
    from llmrec.sid.sidmap import SidMap

    prepared = load_prepared(small_run / "data")
    sid_map = SidMap.load(small_run / "sid" / "sid_map.json")
    config = CorpusConfig(tasks=["seqrec", "item2sid_title", "sid2item_title"], seqrec_format="stream",
                          max_history=3, prompts_dir="compact")
    corpus, manifest = build_corpus_with_manifest(prepared, sid_map, config)
    assert all(r["prompt"][-1]["content"].startswith(("next after", "sid of", "title of")) for r in corpus["train"])
    save_corpus(tmp_path / "corpus", corpus, manifest)
    short_sft(small_run, tmp_path / "corpus", tmp_path / "sft", max_length=256)

    rec = GenerativeRecommender.from_dir(tmp_path / "sft" / "model", prepared.items, max_history=3)
    assert rec.model.config.llmrec_prompts["fingerprint"] == manifest["prompts_fingerprint"]
    history = prepared.split.test[0].history
    assert "next after " + sid_map.sid_string(history[-3:][0]) in rec.prompt(history)
    # the held-out corpus row and the recommender's prompt are the same text
    row = next(r for r in corpus["test"] if r["user"] == prepared.split.test[0].user)
    assert rec.prompt(history).startswith(render_prompt(rec.tokenizer, row["prompt"]))
    seen = []
    rec.recommend_prompts = lambda prompts, **kw: seen.extend(prompts) or [[] for _ in prompts]
    evaluate_translation(rec, [i for i in prepared.items if prepared.items[i].title][:2])
    assert seen and all("sid of " in p for p in seen)


def test_a_corpus_whose_templates_changed_since_it_was_built_is_refused(small_run, tmp_path):
    import shutil

    from llmrec.corpus import CorpusConfig, build_corpus_with_manifest, corpus_prompt_library, save_corpus
    from llmrec.corpus.templates import default_prompts_dir
    from llmrec.data.store import load_prepared
    from llmrec.io import LlmrecError
    from llmrec.sid.sidmap import SidMap

    mine = tmp_path / "prompts"
    shutil.copytree(default_prompts_dir() / "compact", mine)
    prepared = load_prepared(small_run / "data")
    sid_map = SidMap.load(small_run / "sid" / "sid_map.json")
    corpus, manifest = build_corpus_with_manifest(prepared, sid_map, CorpusConfig(tasks=["seqrec"],
                                                                                 prompts_dir=str(mine)))
    save_corpus(tmp_path / "corpus", corpus, manifest)
    assert corpus_prompt_library(tmp_path / "corpus").fingerprint == manifest["prompts_fingerprint"]
    (mine / "seqrec.yaml").write_text((mine / "seqrec.yaml").read_text().replace("next after", "then"))
    with pytest.raises(LlmrecError, match="rebuild the corpus"):
        corpus_prompt_library(tmp_path / "corpus")
