"""Odd inputs work or are clear errors, never tracebacks (issue 15, defect 6): csv fields over
128 KB, deeply nested JSON, a UTF-8 BOM, a Taobao csv with a header given as a file path."""

from __future__ import annotations

import gzip
import json

import pytest

from llmrec.data.loaders import detect_format, load_dataset
from llmrec.io import LlmrecError, read_json, read_jsonl

HEADER = "user_id,history_item_title,item_title,history_item_id,item_id,history_item_sid,item_sid\n"


def _minionerec(root, rows, header=HEADER, bom=False):
    (root / "test").mkdir(parents=True)
    (root / "info").mkdir()
    (root / "info" / "x.txt").write_text("".join(f"<a_{i}>\tItem {i}\t{i}\n" for i in range(4)))
    text = header + "".join(rows)
    (root / "test" / "x.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return root


def test_csv_field_over_128_kb_loads(tmp_path):
    long_titles = json.dumps(["a very long title " * 10] * 1000)  # ~190 KB in one field
    assert len(long_titles) > 131072
    root = _minionerec(tmp_path / "m", [f'U1,"{long_titles.replace(chr(34), chr(34) * 2)}",Two,"[0, 1, 2]",3,"[]",x\n'])
    ds = load_dataset(str(root))
    assert ds.presplit["test"][0].history == ["0", "1", "2"]


def test_broken_csv_record_names_the_line(tmp_path):
    (tmp_path / "t.csv").write_text('1,2,3,pv,100\n1,"4,3,pv,101\n')  # unclosed quote runs to the end
    with pytest.raises(LlmrecError, match=r"t\.csv:\d+: (unreadable csv record|expected 5 fields)"):
        load_dataset(str(tmp_path / "t.csv"))


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    d = tmp_path / "lc"
    d.mkdir()
    (d / "X.item.json").write_text(json.dumps({"0": {"title": "a"}}))
    (d / "X.inter.json").write_text('{"u": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(LlmrecError, match=r"X\.inter\.json: JSON nested too deeply"):
        load_dataset(str(d))
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(LlmrecError, match="nested too deeply"):
        read_json(tmp_path / "deep.json")
    a = tmp_path / "amazon"
    a.mkdir()
    with gzip.open(a / "Cat_5.json.gz", "wt") as f:
        f.write('{"reviewerID": ' + "[" * 100000 + "]" * 100000 + "}\n")
    with gzip.open(a / "meta_Cat.json.gz", "wt") as f:
        f.write(json.dumps({"asin": "A1", "title": "t"}) + "\n")
    with pytest.raises(LlmrecError, match=r"Cat_5\.json\.gz:1: .*nested too deeply"):
        load_dataset(str(a))


def test_utf8_bom_is_accepted(tmp_path):
    d = tmp_path / "lc"
    d.mkdir()
    bom = b"\xef\xbb\xbf"
    (d / "X.item.json").write_bytes(bom + json.dumps({"0": {"title": "café"}, "1": {"title": "b"}}).encode())
    (d / "X.inter.json").write_bytes(bom + json.dumps({"u": [0, 1, 0]}).encode())
    ds = load_dataset(str(d))
    assert ds.items["0"].title == "café" and ds.counts()["interactions"] == 3
    root = _minionerec(tmp_path / "m", ['U1,"[]",x,"[0, 1]",2,"[]",y\n'], bom=True)
    assert detect_format(root / "test" / "x.csv") == "minionerec"
    assert load_dataset(str(root)).presplit["test"][0].user == "U1"
    (tmp_path / "r.jsonl").write_bytes(bom + b'{"a": 1}\n{"a": 2}\n')
    assert read_jsonl(tmp_path / "r.jsonl") == [{"a": 1}, {"a": 2}]
    (tmp_path / "r.json").write_bytes(bom + b'{"a": 1}')
    assert read_json(tmp_path / "r.json") == {"a": 1}


@pytest.mark.parametrize("header", ["user_id,item_id,category_id,behavior_type,timestamp",
                                    "\ufeffuser_id,item_id,category_id,behavior,timestamp"])
def test_taobao_csv_with_header_given_as_a_file_is_taobao(tmp_path, header):
    path = tmp_path / "UserBehavior_sample.csv"
    path.write_text(header + "\n1,10,7,pv,1511544070\n1,11,7,buy,1511544080\n2,10,7,cart,1511544090\n",
                    encoding="utf-8")
    assert detect_format(path) == "taobao"
    ds = load_dataset(str(path))
    assert ds.counts() == {"users": 2, "items": 2, "interactions": 3}
    assert {x.behavior for x in ds.interactions} == {"pv", "buy", "cart"}
