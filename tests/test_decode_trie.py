"""SidTrie and SidConstrainedLogitsProcessor: masks, walks, and generate() under every strategy."""

from __future__ import annotations

import pytest
import torch
from conftest import require_data
from test_decode_fixture import chat_prompts, synthetic_map, tiny_model

from llmrec.decode import SidConstrainedLogitsProcessor, SidTrie, constrained_generation_config
from llmrec.decode.recommend import clean_generation_config, encode_prompts
from llmrec.io import LlmrecError
from llmrec.sid.sidmap import SidMap


@pytest.fixture(scope="module")
def setup():
    sm = synthetic_map(n_items=60, extra_level_for=3)
    model, tok = tiny_model(sm)
    return sm, model, tok, SidTrie(sm, tok)


def test_trie_structure_and_masks(setup):
    sm, _, tok, trie = setup
    assert len(trie) == len(sm)
    for item in sm.item_ids:
        ids = torch.tensor([trie.sid_token_ids[item]])
        node = trie.walk(ids)
        assert bool(trie.is_leaf[node]) and trie.item_ids[int(trie.leaf_item[node])] == item
        # after a complete SID only the end token is allowed
        mask = trie.allowed_mask(node, len(tok))
        assert mask[0].nonzero().flatten().tolist() == trie.end_ids
    root_mask = trie.allowed_mask(torch.zeros(1, dtype=torch.long), len(tok))[0]
    first = {sm.codes[i][0] for i in sm.item_ids}
    assert set(root_mask.nonzero().flatten().tolist()) == {tok.convert_tokens_to_ids(f"<a_{c}>") for c in first}
    # an invalid token drops to the sink, which still allows the end token (never an all -inf row)
    bad = trie.walk(torch.tensor([[tok.convert_tokens_to_ids("<c_0>")]]))
    assert int(bad) == trie.done and trie.allowed_mask(bad, len(tok))[0, trie.end_ids[0]]
    # leaf -> item lookup from full sequences (SID + end + padding)
    item = sm.item_ids[5]
    seq = torch.tensor([trie.sid_token_ids[item] + [trie.end_ids[0], trie.pad_id]])
    assert trie.items(trie.items_from_sequences(seq).tolist()) == [item]
    assert trie.items_from_sequences(seq[:, 1:]).tolist() == [-1]


def test_banned_propagates_to_prefixes(setup):
    sm, _, _, trie = setup
    a = sm.item_ids[0]
    siblings = [i for i in sm.item_ids if sm.codes[i][:2] == sm.codes[a][:2]]
    banned = trie.banned_nodes([set(siblings), set()])
    prefix = trie.walk(torch.tensor([trie.sid_token_ids[a][:2]]))
    assert bool(banned[0, prefix]) and not bool(banned[1, prefix])
    assert bool(banned[0, trie.item_leaf[trie.item_index[a]]])


def test_missing_sid_tokens_are_reported(setup):
    _, _, tok, _ = setup
    other = SidMap({"x": (0, 0, 0, 0, 0, 99)})
    with pytest.raises(LlmrecError, match="not in the tokenizer"):
        SidTrie(other, tok)


def _generate(model, tok, trie, prompts, **cfg):
    ids, am = encode_prompts(tok, prompts, trie.pad_id)
    proc = SidConstrainedLogitsProcessor(trie)  # prompt length found automatically
    gcfg = constrained_generation_config(trie, **cfg)
    with clean_generation_config(model):
        out = model.generate(input_ids=ids, attention_mask=am, generation_config=gcfg, logits_processor=[proc])
    return trie.items_from_sequences(out.sequences[:, ids.shape[1]:]), proc


@pytest.mark.parametrize("mode", ["greedy", "sample", "beam"])
def test_processor_always_yields_valid_sids(setup, mode):
    sm, model, tok, trie = setup
    prompts, _ = chat_prompts(tok, sm, 5, seed=1)  # different lengths -> left padding
    seeds = [0, 1, 2] if mode == "sample" else [0]
    proc = None
    for seed in seeds:
        torch.manual_seed(seed)
        if mode == "greedy":
            items, proc2 = _generate(model, tok, trie, prompts, num_beams=1, num_return_sequences=1)
        elif mode == "sample":
            items, proc2 = _generate(model, tok, trie, prompts, num_beams=1, num_return_sequences=3,
                                     do_sample=True, temperature=5.0, top_k=0)
        else:
            items, proc2 = _generate(model, tok, trie, prompts, num_beams=8, num_return_sequences=8)
        assert (items >= 0).all(), items
        # reuse of one processor across generates must also stay valid
        proc = proc or proc2
    ids, am = encode_prompts(tok, prompts[:2], trie.pad_id)
    for _ in range(2):
        with clean_generation_config(model):
            out = model.generate(input_ids=ids, attention_mask=am, logits_processor=[proc],
                                 generation_config=constrained_generation_config(trie, 4, 4))
        assert (trie.items_from_sequences(out.sequences[:, ids.shape[1]:]) >= 0).all()


def test_real_reference_map_trie():
    path = require_data("amazon18_scientific/reference_sids/Scientific.rkmeans_zcr.index.json")
    from tokenizers import AddedToken, Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    sm = SidMap.from_index_json(path)
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<|im_end|>": 0, "<unk>": 1},
                                                                              unk_token="<unk>")),
                                  eos_token="<|im_end|>", pad_token="<|im_end|>")
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in sm.all_tokens()])
    trie = SidTrie(sm, tok)
    assert len(trie) == 4344 and trie.max_depth == 4
    seqs = torch.tensor([trie.sid_token_ids[i] + [0] for i in sm.item_ids])
    assert trie.items(trie.items_from_sequences(seqs).tolist()) == sm.item_ids


def test_trie_over_token_sequences_drops_repeats_and_prefixes_and_decodes_only_them(setup):
    from llmrec.decode import recommend

    sm, model, tok, _ = setup
    seqs = {"a": [5, 6, 7], "b": [5, 6, 8, 9], "dup": [5, 6, 7], "pre": [5, 6], "c": [10]}
    trie = SidTrie.from_token_sequences(seqs, tok)
    assert trie.item_ids == ["a", "b", "c"] and trie.dropped == ["dup", "pre"]
    for item in trie.item_ids:
        node = trie.walk(torch.tensor([seqs[item]]))
        assert trie.item_ids[int(trie.leaf_item[node])] == item
    prompts, _ = chat_prompts(tok, sm, 2)
    got = recommend(model, tok, trie, prompts, k=3, num_beams=3)
    assert all(sorted(i for i, _ in row) == ["a", "b", "c"] for row in got)
