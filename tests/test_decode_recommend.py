"""recommend(): valid distinct items, exclusion, variable-length SIDs, immune to the model's
generation_config, and the same ranking as constrained HF beam search."""

from __future__ import annotations

import pytest
import torch
from test_decode_fixture import chat_prompts, synthetic_map, tiny_model
from transformers import GenerationConfig

from llmrec.decode import SidTrie, encode_prompts, recommend, recommend_hf
from llmrec.io import LlmrecError


@pytest.fixture(scope="module")
def setup():
    sm = synthetic_map(n_items=60, extra_level_for=4)  # variable-length SIDs (3 and 4 levels)
    model, tok = tiny_model(sm, seed=3)
    prompts, hists = chat_prompts(tok, sm, 6, seed=2)
    return sm, model, tok, SidTrie(sm, tok), prompts, hists


def test_items_valid_and_distinct(setup):
    sm, model, tok, trie, prompts, _ = setup
    recs = recommend(model, tok, trie, prompts, k=10, num_beams=12, batch_size=4)
    assert len(recs) == len(prompts)
    for row in recs:
        items = [i for i, _ in row]
        assert len(items) == 10 and len(set(items)) == 10
        assert all(i in sm for i in items)
        scores = [s for _, s in row]
        assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)


@pytest.mark.parametrize("sid_softmax", ["vocab", "level"])
def test_matches_constrained_hf_beam_search(setup, sid_softmax):
    """...also for a model trained with the level softmax, which both score within each SID level."""
    _, model, tok, trie, prompts, hists = setup
    model.config.llmrec_sid_softmax = sid_softmax
    try:
        for ex in (None, hists):
            ours = recommend(model, tok, trie, prompts, k=8, num_beams=8, exclude=ex)
            ref = recommend_hf(model, tok, trie, prompts, k=8, num_beams=8, exclude=ex)
            for a, b in zip(ours, ref):
                assert [i for i, _ in a] == [i for i, _ in b]
                assert torch.allclose(torch.tensor([s for _, s in a]), torch.tensor([s for _, s in b]), atol=1e-4)
    finally:
        model.config.llmrec_sid_softmax = "vocab"
    if sid_softmax == "level":  # a SID token's level probability is above its vocabulary one
        vocab = recommend(model, tok, trie, prompts, k=8, num_beams=8, exclude=hists)
        assert all(a[0][1] > b[0][1] for a, b in zip(ours, vocab))


def test_variable_length_sids_are_returned(setup):
    sm, model, tok, trie, prompts, _ = setup
    long_items = {i for i, c in sm.codes.items() if len(c) == 4}
    assert trie.min_depth == 3 and trie.max_depth == 4
    recs = recommend(model, tok, trie, prompts, k=60, num_beams=60, return_scores=False)
    for row in recs:  # with beams >= catalogue every item (both depths) is reachable and distinct
        assert len(row) == len(set(row)) == len(sm)
        assert long_items <= set(row)


def test_exclude_removes_history(setup):
    _, model, tok, trie, prompts, hists = setup
    plain = recommend(model, tok, trie, prompts, k=10, return_scores=False)
    # exclude each row's own top-3 plus its history
    ex = [set(p[:3]) | h for p, h in zip(plain, hists)]
    recs = recommend(model, tok, trie, prompts, k=10, exclude=ex, return_scores=False)
    for row, e in zip(recs, ex):
        assert len(row) == 10 and not (set(row) & e)
    # with beams >= catalogue size the search is exhaustive: excluding = filtering the full ranking
    full = recommend(model, tok, trie, prompts, k=60, num_beams=60, return_scores=False)
    exact = recommend(model, tok, trie, prompts, k=10, num_beams=60, exclude=ex, return_scores=False)
    for f, row, e in zip(full, exact, ex):
        assert row == [i for i in f if i not in e][:10]


def test_model_generation_config_cannot_change_result(setup):
    _, model, tok, trie, prompts, _ = setup
    clean = recommend(model, tok, trie, prompts, k=5)
    clean_hf = recommend_hf(model, tok, trie, prompts, k=5)
    saved = model.generation_config
    model.generation_config = GenerationConfig(do_sample=True, top_k=5, temperature=3.0, top_p=0.5,
                                               num_beams=2, length_penalty=2.0, repetition_penalty=3.0)
    try:
        torch.manual_seed(0)
        assert recommend(model, tok, trie, prompts, k=5) == clean
        assert recommend_hf(model, tok, trie, prompts, k=5) == clean_hf
    finally:
        model.generation_config = saved
    assert [[i for i, _ in r] for r in clean] == [[i for i, _ in r] for r in clean_hf]


def test_inputs_forms_and_errors(setup):
    _, model, tok, trie, prompts, _ = setup
    ref = recommend(model, tok, trie, prompts[:3], k=5, return_scores=False)
    right = tok(prompts[:3], add_special_tokens=False, padding=True, padding_side="right", return_tensors="pt")
    assert recommend(model, tok, trie, right, k=5, return_scores=False) == ref
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts[:3]]
    assert recommend(model, tok, trie, ids, k=5, return_scores=False) == ref
    with pytest.raises(LlmrecError, match="num_beams"):
        recommend(model, tok, trie, prompts, k=10, num_beams=5)
    ids_t, am = encode_prompts(tok, prompts[:2], trie.pad_id)
    assert ids_t.shape == am.shape and bool(am[:, -1].all())


def test_without_end_token_scores_are_the_sid_tokens_log_probs(setup):
    """score_end=False (stream models): an item's score is the teacher-forced log-probability of its
    SID tokens alone, and with beams covering the catalogue the ranking is by that sum."""
    sm, model, tok, trie, prompts, _ = setup
    recs = recommend(model, tok, trie, prompts[:2], k=60, num_beams=60, score_end=False)
    for prompt, row in zip(prompts[:2], recs):
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        for item, score in row[:5] + row[-3:]:
            sid = tok.convert_tokens_to_ids(sm.tokens(item))
            ids = torch.tensor([p_ids + list(sid)])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0].float(), -1)
            want = sum(logp[len(p_ids) - 1 + j, t].item() for j, t in enumerate(sid))
            assert score == pytest.approx(want, abs=1e-4)
        with_end = dict(recommend(model, tok, trie, [prompt], k=60, num_beams=60)[0])
        assert all(with_end[i] < s for i, s in row)  # the end token's log-prob is left out
