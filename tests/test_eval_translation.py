"""item2sid / sid2item accuracy: predictions are catalogue items, and a right answer is scored right."""

from __future__ import annotations

from llmrec.eval.translation import evaluate_translation, sample_items
from llmrec.sid.sidmap import SidMap


def test_translation_accuracy_on_a_tiny_model(data_root):
    from test_serve_fixture import scientific_items

    from llmrec.llm import load_base

    items = scientific_items(data_root, 40)
    sid_map = SidMap({i: (j // 8, j % 8) for j, i in enumerate(items)})
    model, tok = load_base("tiny", sid_map=sid_map, items=items)
    ids = sample_items(items, sid_map, 12, seed=1)
    assert ids == sample_items(items, sid_map, 12, seed=1) and len(set(ids)) == 12
    res = evaluate_translation(model, tok, sid_map, items, ids, batch_size=5)
    assert res["n"] == 12 and 0.0 <= res["item2sid_acc"] <= 1.0 and 0.0 <= res["sid2item_acc"] <= 1.0
    assert all(ex["item2sid_pred"] in items for ex in res["examples"])  # constrained: always a catalogue item
