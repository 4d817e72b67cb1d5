"""Broken inputs give an LlmrecError that names the file and the fix; drops are counted; no half-written output."""

from __future__ import annotations

import json

import pytest

from llmrec.data.loaders import load_dataset
from llmrec.data.prepare import prepare_data
from llmrec.io import LlmrecError


def _lcrec(folder, inter, items=None, raw_items=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "X.inter.json").write_text(json.dumps(inter) if not isinstance(inter, str) else inter)
    if raw_items is not None:
        (folder / "X.item.json").write_bytes(raw_items)
    elif items is not None:
        (folder / "X.item.json").write_text(json.dumps(items))
    return folder


ITEMS = {str(i): {"title": f"Item {i}", "description": "", "brand": "", "categories": "A,B"} for i in range(6)}
SEQS = {"u1": [0, 1, 2, 3], "u2": [1, 2, 3], "u3": [4, 5]}


def test_ok_baseline(tmp_path):
    ds = load_dataset(str(_lcrec(tmp_path / "d", SEQS, ITEMS)))
    assert ds.counts() == {"users": 3, "items": 6, "interactions": 9}
    assert ds.items["0"].categories == ["A", "B"]


def test_malformed_json_names_file_and_line(tmp_path):
    d = _lcrec(tmp_path / "d", '{"u1": [0, 1,\n  2', ITEMS)
    with pytest.raises(LlmrecError, match=r"X\.inter\.json: malformed JSON at line 2"):
        load_dataset(str(d))


def test_wrong_json_shapes(tmp_path):
    with pytest.raises(LlmrecError, match=r"user 'u1': expected a list"):
        load_dataset(str(_lcrec(tmp_path / "a", {"u1": 3}, ITEMS)))
    with pytest.raises(LlmrecError, match="expected a JSON object"):
        load_dataset(str(_lcrec(tmp_path / "b", [[0, 1]], ITEMS)))


def test_duplicate_ids(tmp_path):
    raw = b'{"0": {"title": "a"}, "1": {"title": "b"}, "0": {"title": "c"}}'
    with pytest.raises(LlmrecError, match=r"X\.item\.json: duplicate id '0'"):
        load_dataset(str(_lcrec(tmp_path / "d", SEQS, raw_items=raw)))
    d = tmp_path / "n"
    d.mkdir()
    (d / "X.inter.json").write_text(json.dumps({"u": [0, 1]}))
    (d / "X.item2id").write_text("ASIN0\t0\nASIN1\t1\nASIN2\t1\n")
    with pytest.raises(LlmrecError, match=r"X\.item2id:3: duplicate item id '1'"):
        load_dataset(str(d))


def test_bad_encoding(tmp_path):
    raw = b'{"0": {"title": "caf' + b"\xe9\xff" + b'"}}'
    with pytest.raises(LlmrecError, match=r"X\.item\.json: not valid utf-8 at byte \d+.*re-encode"):
        load_dataset(str(_lcrec(tmp_path / "d", {"u": [0]}, raw_items=raw)))


def test_missing_files(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "X.inter.json").write_text(json.dumps(SEQS))
    with pytest.raises(LlmrecError, match=r"neither X\.item\.json nor X\.item2id"):
        load_dataset(str(d))
    ml = tmp_path / "ml"
    ml.mkdir()
    (ml / "u.data").write_text("1\t1\t5\t100\n")
    with pytest.raises(LlmrecError, match=r"u\.item not found"):
        load_dataset(str(ml))
    with pytest.raises(LlmrecError, match="neither a known dataset"):
        load_dataset("amazon18_scientifc")


def test_unknown_items_error_or_counted_drop(tmp_path):
    seqs = {**SEQS, "u4": [0, 99, 1, 2]}
    d = _lcrec(tmp_path / "d", seqs, ITEMS)
    with pytest.raises(LlmrecError, match=r"user 'u4' refers to item '99'.*unknown_items='drop'"):
        load_dataset(str(d))
    ds = load_dataset(str(d), unknown_items="drop")
    assert ds.dropped == {"unknown_item_events": 1}
    assert [x.item for x in ds.sequences()["u4"]] == ["0", "1", "2"]


def test_users_with_too_few_interactions_counted(tmp_path):
    ds = load_dataset(str(_lcrec(tmp_path / "d", SEQS, ITEMS)), min_user_interactions=3)
    assert ds.dropped == {"users_below_min_interactions": 1, "events_of_users_below_min_interactions": 2}
    assert "u3" not in ds.sequences()


def test_empty_titles_counted_with_id_fallback(tmp_path):
    items = {**ITEMS, "5": {"title": "  ", "description": "x"}}
    ds = load_dataset(str(_lcrec(tmp_path / "d", SEQS, items)))
    assert ds.dropped == {"items_with_empty_title_kept_id_as_name": 1}
    assert ds.items["5"].display_name == "item 5"


def test_bad_csv_rows(tmp_path):
    tb = tmp_path / "UserBehavior.csv"
    tb.write_text("1,10,100,pv,1511658000\n1,11,100,pv\n")
    with pytest.raises(LlmrecError, match=r"UserBehavior\.csv:2: expected 5 fields"):
        load_dataset(str(tb))
    tb.write_text("1,10,100,pv,1511658000\n1,11,100,click,1511658001\n")
    with pytest.raises(LlmrecError, match=r":2: behavior 'click' is not one of pv, cart, fav, buy"):
        load_dataset(str(tb))
    tb.write_text("1,10,100,pv,yesterday\n")
    with pytest.raises(LlmrecError, match=r":1: timestamp 'yesterday'"):
        load_dataset(str(tb), format="taobao")


def test_bad_movielens_rows(tmp_path):
    ml = tmp_path / "ml"
    ml.mkdir()
    flags = "|".join(["0"] * 19)
    (ml / "u.item").write_bytes(f"1|Caf\xe9 (1995)|01-Jan-1995||http://x|{flags}\n".encode("latin-1"))
    (ml / "u.data").write_text("1\t1\t5\t100\n1\t1\tfive\t101\n")
    with pytest.raises(LlmrecError, match=r"u\.data:2: expected 'user<TAB>item<TAB>rating"):
        load_dataset(str(ml))
    (ml / "u.data").write_text("1\t1\t5\t100\n")
    assert load_dataset(str(ml)).items["1"].title == "Café (1995)"  # latin-1 decoded
    (ml / "u.item").write_bytes(f"1|A|01-Jan-1995||u|{flags}\n1|B|01-Jan-1995||u|{flags}\n".encode())
    with pytest.raises(LlmrecError, match=r"u\.item:2: duplicate movie id '1'"):
        load_dataset(str(ml))


def test_bad_minionerec_history_literal(tmp_path):
    root = tmp_path / "mini"
    (root / "test").mkdir(parents=True)
    (root / "info").mkdir()
    (root / "info" / "x.txt").write_text("<a_1><b_1>\tOne\t0\n<a_1><b_2>\tTwo\t1\n")
    header = "user_id,history_item_title,item_title,history_item_id,item_id,history_item_sid,item_sid\n"
    (root / "test" / "x.csv").write_text(header + 'U1,"[\'One\']",Two,"[0, 1",1,"[]",<a_1><b_2>\n')
    with pytest.raises(LlmrecError, match=r"x\.csv:2 history_item_id: not a python list literal"):
        load_dataset(str(root))
    (root / "test" / "x.csv").write_text(header + 'U1,"[\'One\']",Two,"[0]",1,"[]",<a_1><b_2>\n')
    ds = load_dataset(str(root))
    assert ds.presplit["test"][0].history == ["0"] and ds.counts()["interactions"] == 2


def test_failing_prepare_leaves_existing_data_untouched(tmp_path):
    good = _lcrec(tmp_path / "good", SEQS, ITEMS)
    run = tmp_path / "runs" / "x"
    data = prepare_data(str(good), run, short_users="train")
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    bad = _lcrec(tmp_path / "bad", '{"u1": [0, 1', ITEMS)
    with pytest.raises(LlmrecError, match="malformed JSON"):
        prepare_data(str(bad), run)
    unknown = _lcrec(tmp_path / "unk", {"u1": [0, 1, 77]}, ITEMS)
    with pytest.raises(LlmrecError, match="not in the catalogue"):
        prepare_data(str(unknown), run)
    with pytest.raises(LlmrecError, match="no interactions left"):
        prepare_data(str(good), run, min_user_interactions=10)
    short = _lcrec(tmp_path / "short", {"u1": [0, 1], "u2": [2]}, ITEMS)
    with pytest.raises(LlmrecError, match="no test examples"):
        prepare_data(str(short), run)
    after = {p.name: p.read_bytes() for p in data.iterdir()}
    assert after == before
    assert sorted(p.name for p in run.iterdir()) == ["data"]  # no temp folders left behind
