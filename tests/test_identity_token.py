"""The identity level (H2Rec's hash ID inside the LLM: one token after the SID, unique per item or a hash
bucket) round-trips through SidMap json, the tokenizer, the trie, the corpus, GenerativeRecommender
.recommend(), a saved model folder, the evaluator's LLMRanker and the serving Recommender, with a tiny
real Qwen2 model and its real BPE tokenizer."""

from __future__ import annotations

import random

import pytest

from llmrec.data.records import Example, Interaction, Item, RecDataset, Split
from llmrec.sid.build import build_sids
from llmrec.sid.config import SidConfig
from llmrec.sid.sidmap import SidMap

N = 36
WORDS = ["beaker", "pipette", "gloves", "tape", "caliper", "funnel"]


def _dataset() -> tuple[RecDataset, Split]:
    """36 items whose text falls into 6 near-duplicate groups; 12 users, leave-one-out split."""
    items = {f"i{k}": Item(id=f"i{k}", title=f"Lab {WORDS[k % 6]} pack {k}") for k in range(N)}
    rng = random.Random(0)
    inter, train, valid, test = [], {}, [], []
    for u in range(12):
        seq = [Interaction(user=f"u{u}", item=f"i{rng.randrange(N)}", timestamp=float(p), position=p)
               for p in range(7)]
        inter += seq
        ids = [x.item for x in seq]
        train[f"u{u}"] = seq[:-2]
        valid.append(Example(user=f"u{u}", history=ids[:-2], target=ids[-2]))
        test.append(Example(user=f"u{u}", history=ids[:-1], target=ids[-1]))
    return RecDataset(name="toy", items=items, interactions=inter), Split(train=train, valid=valid, test=test,
                                                                           method="loo")


def _config(identity: str) -> SidConfig:
    # 2 x 2 semantic codes for 36 items: most items share their semantic SID, only the identity tells them apart
    return SidConfig.from_dict({"method": "rkmeans", "source": "random", "vector_dim": 8, "levels": 2,
                                "codebook_size": 2, "identity": identity, "identity_buckets": 64})


@pytest.fixture(scope="module", params=["unique", "buckets"])
def built(request, tmp_path_factory):
    from llmrec.llm import TinyConfig, load_base, save_model

    ds, split = _dataset()
    root = tmp_path_factory.mktemp(f"ident_{request.param}")
    build_sids(ds.items, _config(request.param), out_dir=root / "sid")
    sm = SidMap.load(root / "sid" / "sid_map.json")
    cfg = TinyConfig(vocab_size=400, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, intermediate_size=128, min_frequency=1)
    model, tok = load_base("tiny", sid_map=sm, items=ds.items, tiny_config=cfg, init="semantic", seed=1)
    model.eval()
    save_model(model, tok, sm, root / "sft" / "model")
    return request.param, ds, split, sm, model, tok, root


def test_sidmap_keeps_the_identity_level(built):
    mode, ds, _, sm, _, _, _ = built
    semantic = [c[:2] for c in sm.codes.values()]
    assert len(set(semantic)) <= 4 < len(sm) == N  # the semantic part alone cannot tell the items apart
    assert sm.meta["identity"] == mode and sm.collisions() == 0
    if mode == "unique":  # one code per item on the identity level, in catalogue order
        assert sm.level_sizes[2] == N and [c[2] for c in sm.codes.values()] == list(range(N))
        assert all(len(c) == 3 for c in sm.codes.values())
    for i in ds.items:
        assert sm.item_for_tokens(sm.tokens(i)) == i and sm.item_for_string(sm.sid_string(i)) == i


def test_tokenizer_and_trie_carry_identity_tokens(built):
    import torch

    from llmrec.decode import SidTrie

    _, ds, _, sm, _, tok, _ = built
    trie = SidTrie(sm, tok)
    for i in ds.items:
        ids = tok.encode(sm.sid_string(i), add_special_tokens=False)
        assert tok.convert_ids_to_tokens(ids) == sm.tokens(i)  # one atomic token per level, identity included
        assert trie.items(trie.items_from_sequences(torch.tensor([ids])).tolist()) == [i]
        assert trie.items(trie.items_from_sequences(torch.tensor([ids[:-1]])).tolist()) == [None]  # no identity


def test_corpus_targets_end_with_the_identity_token(built):
    from llmrec.corpus import CorpusConfig, build_corpus
    from llmrec.data.store import load_prepared, save_prepared

    _, ds, split, sm, _, _, root = built
    save_prepared(root / "data", ds, split)
    corpus = build_corpus(load_prepared(root / "data"), sm, CorpusConfig(tasks=["seqrec"], seed=0))
    rows = corpus["train"]
    assert len(rows) > 0
    targets = {sm.sid_string(i): i for i in ds.items}
    for row in rows:
        answer = row["messages"][-1]["content"] if "messages" in row else row["completion"][-1]["content"]
        assert answer in targets  # the full SID with its identity token, nothing cut
        assert answer.endswith(sm.tokens(targets[answer])[-1])


def test_recommend_eval_and_serve_return_catalogue_items(built, tmp_path):
    from llmrec.decode.generative import GenerativeRecommender
    from llmrec.eval.runner import LLMRanker, evaluate
    from llmrec.serve import Recommender

    _, ds, split, sm, model, tok, root = built
    rec = GenerativeRecommender(model, tok, sm, ds.items)
    hists = [e.history for e in split.test[:3]]
    every = rec.recommend(hists, k=N, num_beams=N)  # exhaustive beams: every item once, nothing else
    for row in every:
        assert sorted(i for i, _ in row) == sorted(ds.items)
    some = rec.recommend(hists, k=5, num_beams=8, exclude_history=True)
    for row, h in zip(some, hists):
        assert len(row) == 5 and {i for i, _ in row} <= set(ds.items) and not {i for i, _ in row} & set(h)
    loaded = GenerativeRecommender.from_dir(root / "sft" / "model", ds.items)  # saved folder: same map, same answer
    assert loaded.sid_map.fingerprint == sm.fingerprint
    assert [i for i, _ in loaded.recommend(hists[:1], k=5, num_beams=8)[0]] == \
        [i for i, _ in rec.recommend(hists[:1], k=5, num_beams=8)[0]]
    ranker = LLMRanker(root / "sft" / "model", ds.items, num_beams=8)
    res = evaluate(ranker, split.test, ks=(1, 5), catalogue=list(ds.items), popularity={}, out_dir=tmp_path / "e",
                   batch_size=4, progress=False)
    assert res["valid_rate"] == 1.0 and res["n_examples"] == len(split.test)
    server = Recommender(model, tok, sm, ds.items, config={"generation": {"num_beams": 8}}, use_embeddings=False)
    out = server.recommend(hists[0], k=4)
    assert len(out) == 4 and {r.item_id for r in out} <= set(ds.items)
    assert all(r.sid == sm.sid_string(r.item_id) and len(sm.tokens(r.item_id)) == 3 for r in out)
    reply = server.chat("I bought " + ds.items[hists[0][-1]].title, show_sids=True, k=3)
    assert reply.items and all(r.item_id in ds.items for r in reply.items)
    assert sm.sid_string(reply.items[0].item_id) in reply.text  # the identity token is shown with the SID
