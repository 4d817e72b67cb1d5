"""LLMRanker end to end with a real (untrained) tiny Qwen2 model: prompts -> constrained beams -> item ids."""

from __future__ import annotations

import json

import pytest
from conftest import require_data

from llmrec.data.records import Example, Item
from llmrec.eval.runner import LLMRanker, evaluate


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from llmrec.llm import TinyConfig, load_base, save_model
    from llmrec.sid import SidMap

    path = require_data("amazon18_scientific/Scientific.item.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = {k: Item(id=k, title=v.get("title") or "") for k, v in list(raw.items())[:40]}
    sid_map = SidMap({k: (i % 4, i // 4) for i, k in enumerate(items)})
    cfg = TinyConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, intermediate_size=128)
    model, tok = load_base("tiny", sid_map=sid_map, items=items, tiny_config=cfg)
    out = tmp_path_factory.mktemp("llm") / "sft"
    save_model(model, tok, sid_map, out)
    return out, items


def test_llm_ranker_returns_catalogue_items(model_dir, tmp_path):
    path, items = model_dir
    ids = list(items)
    examples = [Example("u1", ids[:3], ids[3]), Example("u2", ids[5:7], ids[9]), Example("u3", [ids[1]], ids[0])]
    ranker = LLMRanker(path, items, num_beams=8, exclude_history=True)
    ranked = ranker.rank(examples, 5)
    assert len(ranked) == 3
    for e, r in zip(examples, ranked):
        assert len(r) == 5 and len(set(r)) == 5 and set(r) <= set(ids)
        assert not set(r) & set(e.history)
    res = evaluate(ranker, examples, ks=(1, 5), catalogue=ids, popularity={}, out_dir=tmp_path / "e",
                   batch_size=2, progress=False)
    assert res["valid_rate"] == 1.0 and res["ranker"] == "llm-sft"
    assert res["config"]["ranker"]["num_beams"] == 8
