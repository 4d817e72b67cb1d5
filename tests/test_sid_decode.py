"""SIDs of every shape decode end to end: variable-length (hierarchical), 16-level PQ, word tokens and an
identity level go through SidMap json, tokenizer, SidTrie and recommend() to catalogue items only."""

from __future__ import annotations

import pytest
from test_decode_fixture import chat_prompts, tiny_model

from llmrec.data.records import Item
from llmrec.decode import SidTrie, recommend
from llmrec.sid.build import build_sids
from llmrec.sid.config import SidConfig
from llmrec.sid.sidmap import SidMap

WORDS = ["beaker", "glass", "steel", "tweezers", "caliper", "gloves", "nitrile", "lens", "magnifier", "tape",
         "pipette", "funnel", "flask", "clamp", "scale"]


def _items(n: int = 48) -> dict[str, Item]:
    out = {}
    for k in range(n):
        a, b, c = WORDS[k % 15], WORDS[(k * 7 + 3) % 15], WORDS[(k * 11 + 5) % 15]
        out[f"i{k}"] = Item(id=f"i{k}", title=f"{a} {b} {c} model{k % 9}", categories=["Lab", a.capitalize()])
    return out


CASES = {
    "hierarchical": {"method": "hierarchical", "source": "random", "vector_dim": 8, "codebook_size": 3,
                     "hierarchical": {"leaf_size": 4}},
    "pq16": {"method": "pq", "source": "random", "vector_dim": 32, "levels": 16, "codebook_size": 4},
    "words": {"method": "words", "source": "category", "vector_dim": 8, "codebook_size": [8, 16, 32]},
    "identity": {"method": "rkmeans", "source": "random", "vector_dim": 8, "levels": 2, "codebook_size": 4,
                 "identity": "unique"},
    "buckets": {"method": "rkmeans", "source": "random", "vector_dim": 8, "levels": 2, "codebook_size": 4,
                "identity": "buckets", "identity_buckets": 8},
}


@pytest.mark.parametrize("case", list(CASES))
def test_sid_shapes_decode_to_catalogue_items(case, tmp_path):
    items = _items()
    sm = build_sids(items, SidConfig.from_dict(CASES[case]), out_dir=tmp_path / "sid")
    sm = SidMap.load(tmp_path / "sid" / "sid_map.json")  # the json round trip keeps names and depths
    assert len(sm) == len(items)
    if case == "hierarchical":
        assert len({len(c) for c in sm.codes.values()}) > 1
    if case == "pq16":
        assert min(len(c) for c in sm.codes.values()) >= 16
    if case == "words":
        assert sm.names is not None and sm.tokens("i0")[0] != "<a_0>"
        assert all(sm.item_for_string(sm.sid_string(i)) == i for i in sm.item_ids)
    if case in ("identity", "buckets"):
        base = [c[:2] for c in sm.codes.values()]
        assert len(set(base)) < len(base)  # the semantic part is shared; the identity token tells items apart
        assert all(len(c) >= 3 for c in sm.codes.values())
    model, tok = tiny_model(sm, seed=1)
    trie = SidTrie(sm, tok)
    prompts, hists = chat_prompts(tok, sm, 4, seed=0)
    n = len(sm)
    recs = recommend(model, tok, trie, prompts, k=n, num_beams=n, return_scores=False)
    for row in recs:  # exhaustive beams: every catalogue item, each once, nothing else
        assert sorted(row) == sorted(sm.item_ids)
    some = recommend(model, tok, trie, prompts, k=5, num_beams=8, exclude=hists, return_scores=False)
    for row, h in zip(some, hists):
        assert len(row) == 5 and set(row) <= set(sm.item_ids) and not set(row) & h
