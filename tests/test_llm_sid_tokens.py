"""SID tokens in a real (tiny) tokenizer + Qwen2 model: atomicity, decode, resize, init, chat template."""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import require_data

from llmrec.data.records import Item
from llmrec.io import LlmrecError
from llmrec.llm import (
    TinyConfig,
    add_sid_tokens,
    init_sid_rows,
    load_base,
    load_pretrained,
    resize_for_tokens,
    sid_token_id_table,
)
from llmrec.sid import SidMap

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL = TinyConfig(vocab_size=1200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, intermediate_size=128)


def _scientific_items(n: int) -> dict[str, Item]:
    path = require_data("amazon18_scientific/Scientific.item.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = {}
    for k, v in list(raw.items())[:n]:
        cats = v.get("categories") or []
        if isinstance(cats, str):
            cats = [c for c in cats.split(",") if c]
        out[k] = Item(id=k, title=v.get("title") or "", description=v.get("description") or "",
                      brand=v.get("brand") or "", categories=cats)
    return out


@pytest.fixture(scope="module")
def items() -> dict[str, Item]:
    return _scientific_items(120)


@pytest.fixture(scope="module")
def sid_map(items) -> SidMap:
    return SidMap({k: (i % 6, (i // 6) % 5, i // 30) for i, k in enumerate(items)})


@pytest.fixture(scope="module")
def tiny(items, sid_map):
    return load_base("tiny", sid_map=sid_map, items=items, tiny_config=SMALL)


def test_sid_tokens_atomic_and_round_trip(tiny, sid_map):
    _model, tok = tiny
    ids = tok("<a_1><b_2><c_3>", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["<a_1>", "<b_2>", "<c_3>"]
    assert not any("Ġ" in t for t in tok.convert_ids_to_tokens(ids))
    table = sid_token_id_table(tok, sid_map)
    assert table.shape == (3, 6) and table.dtype == torch.long
    assert int(table[2, 4]) == -1  # level 2 has codes 0..3 only
    for item_id in sid_map.item_ids:
        s = sid_map.sid_string(item_id)
        enc = tok(s, add_special_tokens=False)["input_ids"]
        assert enc == [int(table[lvl, c]) for lvl, c in enumerate(sid_map.codes[item_id])]
        assert tok.decode(enc) == s
    # Inside text, after a newline and between words: still one id per SID token.
    enc = tok("Next item:\n<a_5><b_0><c_1> and then", add_special_tokens=False)["input_ids"]
    toks = tok.convert_ids_to_tokens(enc)
    assert toks[toks.index("<a_5>"):toks.index("<a_5>") + 3] == ["<a_5>", "<b_0>", "<c_1>"]


def test_decode_skip_special_keeps_sids(tiny):
    """TRL GRPO decodes completions with skip_special_tokens=True: SIDs must survive, <|im_end|> not."""
    _model, tok = tiny
    completion = tok("<a_0><b_4><c_2>", add_special_tokens=False)["input_ids"] + [tok.eos_token_id,
                                                                                  tok.pad_token_id]
    assert tok.decode(completion, skip_special_tokens=True) == "<a_0><b_4><c_2>"
    assert tok.batch_decode([completion], skip_special_tokens=True) == ["<a_0><b_4><c_2>"]
    assert "<|im_end|>" in tok.decode(completion, skip_special_tokens=False)


def test_chat_template_renders_roles_and_generation_prompt(tiny):
    _, tok = tiny
    msgs = [{"role": "system", "content": "You recommend."}, {"role": "user", "content": "History: x"},
            {"role": "assistant", "content": "<a_1><b_2><c_3>"}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    # the tiny template leaves the (constant) system message out
    assert text == ("<|im_start|>user\nHistory: x<|im_end|>\n"
                    "<|im_start|>assistant\n<a_1><b_2><c_3><|im_end|>\n")
    prompt = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    kept = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(kept) == "<a_1><b_2><c_3><|im_end|>"


def test_tied_resize_and_semantic_init_matches_hand_computed_mean(items, sid_map, tiny):
    model, tok = tiny
    base_model, base_tok = load_pretrained("tiny", items=items, tiny_config=SMALL)
    base_w = base_model.get_input_embeddings().weight.detach()
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == len(tok) == len(base_tok) + sum(sid_map.level_sizes)
    assert model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()  # still tied
    assert torch.equal(emb[: len(base_tok)], base_w)  # pretrained rows untouched

    def title_vec(item_id):
        ids = base_tok(items[item_id].title, add_special_tokens=False)["input_ids"]
        return base_w[ids].mean(0)

    table = sid_token_id_table(tok, sid_map)

    def used(lvl):
        return sorted({c[lvl] for c in sid_map.codes.values()})

    def means(lvl):  # hand-computed semantic rows of one level's used codes
        return torch.stack([torch.stack([title_vec(i) for i, c in sid_map.codes.items() if c[lvl] == code]).mean(0)
                            for code in used(lvl)])

    def spread(x):
        return (x - x.mean(0)).norm(dim=1).mean()

    # A pretrained base keeps the plain means.
    plain, plain_tok = load_pretrained("tiny", items=items, tiny_config=SMALL)
    add_sid_tokens(plain_tok, sid_map)
    resize_for_tokens(plain, plain_tok)
    assert init_sid_rows(plain, plain_tok, sid_map, mode="semantic", items=items)["spread"] is False
    plain_emb = plain.get_input_embeddings().weight.detach()
    # The from-scratch tiny preset (load_base) spreads each level like the base rows, geometry kept.
    for lvl in range(3):
        want = means(lvl)
        ids = [int(table[lvl, code]) for code in used(lvl)]
        torch.testing.assert_close(plain_emb[ids], want, rtol=1e-5, atol=1e-6)
        got = emb[ids].detach()
        torch.testing.assert_close(got.mean(0), base_w.mean(0), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(spread(got), spread(base_w), rtol=1e-4, atol=1e-6)
        scale = spread(got) / spread(want)
        assert scale > 3  # the plain means lie much closer together than the base rows
        torch.testing.assert_close(got - got.mean(0), (want - want.mean(0)) * scale, rtol=1e-4, atol=1e-5)
    # Hand-checked: <c_3> covers exactly items 90..119.
    assert len([c for c in sid_map.codes.values() if c[2] == 3]) == 30


def test_semantic_differs_from_mean_and_random(items, sid_map, tiny):
    model, tok = tiny
    m_mean, _t_mean = load_base("tiny", sid_map=sid_map, items=items, init="mean", tiny_config=SMALL)
    m_rand, _ = load_base("tiny", sid_map=sid_map, items=items, init="random", tiny_config=SMALL)
    ids = sid_token_id_table(tok, sid_map)
    ids = ids[ids >= 0]
    sem = model.get_input_embeddings().weight[ids]
    mean = m_mean.get_input_embeddings().weight[ids]
    rand = m_rand.get_input_embeddings().weight[ids]
    assert not torch.allclose(sem, mean) and not torch.allclose(mean, rand)
    base = m_mean.get_input_embeddings().weight[: ids.min()]
    # 'mean' rows sit close to the mean of the base rows (small noise), distinct from each other.
    assert torch.allclose(mean.mean(0), base.mean(0), atol=0.02)
    assert (mean[0] - mean[1]).abs().sum() > 0
    # Semantic rows of different codes at one level differ (they carry item information).
    assert (sem[0] - sem[1]).abs().max() > 1e-4
    with pytest.raises(Exception, match="init mode"):
        load_base("tiny", sid_map=sid_map, items=items, init="nope", tiny_config=SMALL)


def test_untied_head_resized_and_initialised(items, sid_map):
    cfg = TinyConfig(**{**SMALL.__dict__, "tie_word_embeddings": False})
    base_model, base_tok = load_pretrained("tiny", items=items, tiny_config=cfg)
    base_out = base_model.get_output_embeddings().weight.detach()
    model, tok = load_base("tiny", sid_map=sid_map, items=items, tiny_config=cfg)
    inp, out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert inp.data_ptr() != out.data_ptr()
    assert inp.shape[0] == out.shape[0] == len(tok)
    assert torch.equal(out[: len(base_tok)], base_out)
    table = sid_token_id_table(tok, sid_map)
    codes = sorted({c[0] for c in sid_map.codes.values()})
    means = torch.stack([torch.stack([base_out[base_tok(items[i].title, add_special_tokens=False)["input_ids"]].mean(0)
                                      for i, c in sid_map.codes.items() if c[0] == code]).mean(0) for code in codes])
    # the output rows' own means, spread like the base output rows (tiny preset)
    got = out[[int(table[0, code]) for code in codes]].detach()
    scale = (got - got.mean(0)).norm(dim=1).mean() / (means - means.mean(0)).norm(dim=1).mean()
    torch.testing.assert_close(got - got.mean(0), (means - means.mean(0)) * scale, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.mean(0), base_out.mean(0), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out[int(table[0, 1])], inp[int(table[0, 1])])
    logits = model(torch.tensor([[int(table[0, 1]), int(table[1, 2])]])).logits
    assert logits.shape[-1] == len(tok) and torch.isfinite(logits).all()


def test_embedding_table_larger_than_tokenizer(items, sid_map, tmp_path):
    """Like Qwen2.5 (151,936 rows > tokenizer): keep the table, initialise the rows SID ids land on."""
    base_model, base_tok = load_pretrained("tiny", items=items, tiny_config=SMALL)
    extra = sum(sid_map.level_sizes) + 17
    base_model.resize_token_embeddings(len(base_tok) + extra, mean_resizing=False)
    rows = base_model.get_input_embeddings().weight.shape[0]
    base_model.save_pretrained(tmp_path / "base")
    base_tok.save_pretrained(tmp_path / "base")
    before = base_model.get_input_embeddings().weight.detach().clone()

    # Same code path as any HF id / local folder.
    model, tok = load_base(str(tmp_path / "base"), sid_map=sid_map, items=items, init="semantic")
    w = model.get_input_embeddings().weight
    assert w.shape[0] == rows > len(tok)
    table = sid_token_id_table(tok, sid_map)
    ids = table[table >= 0]
    assert int(ids.min()) == len(base_tok) and int(ids.max()) < rows
    assert torch.equal(w[: len(base_tok)], before[: len(base_tok)])
    assert torch.equal(w[int(ids.max()) + 1:], before[int(ids.max()) + 1:])  # unused spare rows left alone
    assert not torch.allclose(w[ids], before[ids])
    members = [i for i, c in sid_map.codes.items() if c[1] == 0]
    vecs = [before[base_tok(items[i].title, add_special_tokens=False)["input_ids"]].mean(0) for i in members]
    torch.testing.assert_close(w[int(table[1, 0])], torch.stack(vecs).mean(0), rtol=1e-5, atol=1e-6)

    # Low-level path: resize_for_tokens never shrinks.
    m2, t2 = load_pretrained(str(tmp_path / "base"))
    add_sid_tokens(t2, sid_map)
    assert resize_for_tokens(m2, t2) == rows
    init_sid_rows(m2, t2, sid_map, mode="mean")


def test_semantic_init_without_any_item_text_falls_back_to_mean(items, sid_map):
    """Sequence-only datasets (items without titles, e.g. amazon18_instruments_notext) train too."""
    blank = {i: Item(id=i, title="", description="") for i in items}
    model, tok = load_base("tiny", sid_map=sid_map, items=blank, init="semantic", tiny_config=SMALL,
                           extra_texts=["a few words so the tokenizer has something to learn"])
    assert model.config.llmrec_sid["init"]["mode"] == "mean"
    ids = sid_token_id_table(tok, sid_map)
    rows = model.get_input_embeddings().weight[ids[ids >= 0]]
    assert torch.isfinite(rows).all() and (rows[0] - rows[1]).abs().sum() > 0


def _ring_sequences(ids: list[str], users: int = 400, length: int = 6, seed: int = 0) -> dict[str, list[str]]:
    """Users walk a ring of items (i -> i+1 -> ...): neighbours on the ring follow one another."""
    import random

    rng = random.Random(seed)
    out = {}
    for u in range(users):
        start = rng.randrange(len(ids))
        out[f"u{u}"] = [ids[(start + k) % len(ids)] for k in range(length)]
    return out


def test_collaborative_share_starts_followers_close(items):
    """init_collaborative: items that follow one another in training start with closer identity rows;
    each level keeps the base rows' spread; a catalogue without text keeps the 'mean' start."""
    ids = list(items)
    sid_map = SidMap({k: (i % 6, (i // 6) % 5, i // 30, i) for i, k in enumerate(ids)})
    seqs = _ring_sequences(ids)
    m0, tok0 = load_base("tiny", sid_map=sid_map, items=items, tiny_config=SMALL)
    m5, _ = load_base("tiny", sid_map=sid_map, items=items, tiny_config=SMALL, sequences=seqs, collaborative=0.5)
    assert m0.config.llmrec_sid["init"]["collaborative"] == 0.0
    assert m5.config.llmrec_sid["init"]["collaborative"] == 0.5
    table = sid_token_id_table(tok0, sid_map)  # both models share the tokenizer (same catalogue)
    e0, e5 = m0.get_input_embeddings().weight.detach(), m5.get_input_embeddings().weight.detach()
    base = e0[: int(table[table >= 0].min())]
    rows0, rows5 = e0[table[3, : len(ids)]], e5[table[3, : len(ids)]]
    assert not torch.allclose(rows0, rows5)
    spread = (rows5 - rows5.mean(0)).norm(dim=1).mean()
    torch.testing.assert_close(spread, (base - base.mean(0)).norm(dim=1).mean(), rtol=1e-4, atol=1e-6)

    def follower_cosine(rows):  # item i against item i+1 on the ring, minus item i against i+60
        unit = torch.nn.functional.normalize(rows - rows.mean(0), dim=1)
        return float((unit * unit.roll(-1, 0)).sum(1).mean() - (unit * unit.roll(-60, 0)).sum(1).mean())

    assert follower_cosine(rows5) > follower_cosine(rows0) + 0.2

    blank = {i: Item(id=i, title="", description="") for i in items}
    mb, _ = load_base("tiny", sid_map=sid_map, items=blank, tiny_config=SMALL, sequences=seqs, collaborative=0.5,
                      extra_texts=["a few words so the tokenizer has something to learn"])
    assert mb.config.llmrec_sid["init"]["mode"] == "mean" and mb.config.llmrec_sid["init"]["collaborative"] == 0.0

    with pytest.raises(LlmrecError, match="sequences"):
        load_base("tiny", sid_map=sid_map, items=items, tiny_config=SMALL, collaborative=0.5)
    with pytest.raises(LlmrecError, match=r"\[0, 1\]"):
        load_base("tiny", sid_map=sid_map, items=items, tiny_config=SMALL, sequences=seqs, collaborative=1.5)
