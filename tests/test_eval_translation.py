"""item2sid / sid2item accuracy: predictions are catalogue items, and a right answer is scored right."""

from __future__ import annotations

import torch

from llmrec.corpus import make_messages, render_prompt
from llmrec.corpus.tasks import clip_text
from llmrec.decode import GenerativeRecommender
from llmrec.eval.translation import evaluate_translation, sample_items
from llmrec.sid.sidmap import SidMap


def _tiny(data_root, n_items: int = 40):
    from test_serve_fixture import scientific_items

    from llmrec.llm import load_base

    items = scientific_items(data_root, n_items)
    sid_map = SidMap({i: (j // 8, j % 8) for j, i in enumerate(items)})
    model, tok = load_base("tiny", sid_map=sid_map, items=items)
    return GenerativeRecommender(model, tok, sid_map, items)


def test_untrained_model_answers_are_catalogue_items(data_root):
    rec = _tiny(data_root)
    ids = sample_items(rec.items, rec.sid_map, 12, seed=1)
    assert ids == sample_items(rec.items, rec.sid_map, 12, seed=1) and len(set(ids)) == 12
    res = evaluate_translation(rec, ids, batch_size=5)
    assert res["n"] == 12 and 0.0 <= res["item2sid_acc"] <= 1.0 and 0.0 <= res["sid2item_acc"] <= 1.0
    assert all(ex["item2sid_pred"] in rec.items for ex in res["examples"])  # constrained: always a catalogue item


def _memorise(rec: GenerativeRecommender, ids: list[str], max_chars: int, steps: int = 400) -> None:
    """Teach the tiny model the exact item2sid / sid2item answers of `ids` (teacher forcing)."""
    tok, model = rec.tokenizer, rec.model
    end = tok.convert_ids_to_tokens(rec.trie.end_ids[0])
    rows = []
    for i in ids:
        title = clip_text(rec.items[i].title, max_chars)
        for task, fields, answer in (("item2sid_title", {"title": title}, rec.sid_map.sid_string(i)),
                                     ("sid2item_title", {"sid": rec.sid_map.sid_string(i)}, title)):
            prompt = tok(render_prompt(tok, make_messages(task, fields, template_index=0)),
                         add_special_tokens=False)["input_ids"]
            target = tok(answer + end, add_special_tokens=False)["input_ids"]
            rows.append((prompt, target))
    width = max(len(p) + len(t) for p, t in rows)
    ids_t = torch.full((len(rows), width), rec.trie.pad_id)
    labels = torch.full((len(rows), width), -100)
    for r, (p, t) in enumerate(rows):
        ids_t[r, :len(p) + len(t)] = torch.tensor(p + t)
        labels[r, len(p):len(p) + len(t)] = torch.tensor(t)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    torch.manual_seed(0)
    for _ in range(steps):
        loss = model(input_ids=ids_t, attention_mask=(ids_t != rec.trie.pad_id) | (labels != -100), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.01:
            break
    model.eval()


def test_a_model_that_knows_the_answers_scores_full_marks(data_root):
    rec = _tiny(data_root, 16)
    ids = sample_items(rec.items, rec.sid_map, 6, seed=0)
    _memorise(rec, ids, max_chars=60)
    res = evaluate_translation(rec, ids, max_title_chars=60)
    assert res["item2sid_acc"] == 1.0
    assert res["sid2item_acc"] == 1.0 and res["sid2item_constrained_acc"] == 1.0
    assert all(ex["sid2item_pred"] == ex["title"] for ex in res["examples"])
