"""Loaders on the real files: counts match the data README, fields land where they belong."""

from __future__ import annotations

import gzip
import itertools
import json

import pytest

from llmrec.data.loaders import detect_format, load_dataset
from llmrec.io import LlmrecError, sha256_file

EXPECTED = {  # users, items, interactions (from /work/shared/data/README.md)
    "amazon18_scientific": (8317, 4344, 58492),
    "movielens_100k": (943, 1682, 100000),
    "amazon18_instruments_notext": (24772, 9922, 206153),
    "taobao_tail_10k": (114, 7623, 10000),
    "taobao_timeslice_72k": (45277, 58489, 71777),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_match_readme(data_root, name):
    ds = load_dataset(name)
    c = ds.counts()
    assert (c["users"], c["items"], c["interactions"]) == EXPECTED[name]
    assert ds.dropped == {}
    files = ds.source["files"]
    assert files and all(len(f["sha256"]) == 64 for f in files)
    assert sha256_file(files[0]["path"]) == files[0]["sha256"]
    assert ds.source["options"]["unknown_items"] == "error"
    assert all(isinstance(k, str) for k in ds.items)


def test_games_counts(games_dataset):
    c = games_dataset.counts()
    assert (c["users"], c["items"], c["interactions"]) == (50546, 16859, 452989)
    it = games_dataset.items["0"]
    assert it.title == "" and it.features["asin"] == "B00L59D9HG"


def test_scientific_fields(data_root):
    ds = load_dataset("amazon18_scientific")
    it = ds.items["0"]
    assert it.title.startswith("SUPCO SPP6")
    assert it.brand == "Sealed Unit Parts Co., Inc."
    assert it.categories == ["Industrial & Scientific", "Industrial Electrical", "Passive Components", "Capacitors"]
    seq = ds.sequences()["0"]
    assert [x.item for x in seq] == [str(i) for i in range(9)]
    assert {f["path"].rsplit("/", 1)[1] for f in ds.source["files"]} == {"Scientific.inter.json",
                                                                        "Scientific.item.json"}


def test_instruments_notext(data_root):
    ds = load_dataset("amazon18_instruments_notext")
    it = ds.items["0"]
    assert it.title == "" and it.features == {"asin": "B000FFWZKI"} and it.display_name == "item 0"
    assert "items_with_empty_title_kept_id_as_name" not in ds.dropped  # no-text data is not "missing" text


def test_movielens_fields_and_behaviors(data_root):
    ds = load_dataset("movielens_100k")
    toy = ds.items["1"]
    assert toy.title == "Toy Story (1995)"
    assert toy.categories == ["Animation", "Children's", "Comedy"]
    assert toy.features["release_date"] == "01-Jan-1995"
    assert ds.users["1"] == {"age": 24, "gender": "M", "occupation": "technician", "zip": "85711"}
    assert {x.rating for x in ds.interactions} == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ds.behaviors == ["interact"]
    first = ds.sequences()["196"]
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(first))
    lv = load_dataset("movielens_100k", rating_behavior="levels")
    assert lv.behaviors == [f"rating_{i}" for i in range(1, 6)]
    bi = load_dataset("movielens_100k", rating_behavior="binary")
    assert bi.behaviors == ["disliked", "liked"]
    assert bi.source["options"]["rating_behavior"] == "binary"


def test_taobao_fields(data_root):
    ds = load_dataset("taobao_tail_10k")
    assert set(ds.behaviors) <= {"pv", "cart", "fav", "buy"} and "pv" in ds.behaviors
    it = ds.items["2200475"]
    assert it.categories == ["3607361"] and it.features["category_id"] == "3607361"
    d = load_dataset("taobao_timeslice_72k", dedupe_consecutive=True)
    n = d.dropped["consecutive_repeat_events"]  # same item and behavior right after itself
    assert n == 642 and d.counts()["interactions"] == 71777 - n


def test_minionerec(data_root):
    from llmrec.sid import SidMap

    ds = load_dataset("minionerec_industrial")
    assert len(ds.items) == 3686
    assert len(ds.presplit["valid"]) == 4532 and len(ds.presplit["test"]) == 4533
    seqs = {u: [x.item for x in s] for u, s in ds.sequences().items()}
    for ex in ds.presplit["valid"][:500] + ds.presplit["test"][:500]:
        assert 1 <= len(ex.history) <= 10
        window = ex.history + [ex.target]
        seq = seqs[ex.user]
        assert any(seq[k:k + len(window)] == window for k in range(len(seq))), ex
    index = data_root / "minionerec_industrial/index/Industrial_and_Scientific.index.json"
    sm = SidMap.from_index_json(index)
    assert set(ds.items) <= set(sm.item_ids)
    assert ds.items["0"].features["minionerec_sid"] == sm.sid_string("0")


def test_path_detection_and_explicit_format(data_root, tmp_path):
    sci = data_root / "amazon18_scientific"
    assert detect_format(sci) == "lcrec"
    assert detect_format(data_root / "movielens_100k") == "movielens"
    assert detect_format(data_root / "taobao_userbehavior/tail_10k/UserBehavior.csv") == "taobao"
    assert detect_format(data_root / "minionerec_industrial") == "minionerec"
    ds = load_dataset(str(sci / "Scientific.inter.json"))
    assert ds.counts()["interactions"] == 58492 and ds.name == "amazon18_scientific"
    ds = load_dataset(str(data_root / "taobao_userbehavior/tail_10k"), format="taobao")
    assert ds.counts()["interactions"] == 10000
    with pytest.raises(LlmrecError, match="neither a known dataset"):
        load_dataset(str(tmp_path / "nope"))
    with pytest.raises(LlmrecError, match="unknown loader option"):
        load_dataset("amazon18_scientific", rating_behavior="levels")


def test_min_user_interactions_counts_drops(data_root):
    ds = load_dataset("taobao_timeslice_72k", min_user_interactions=3)
    d = ds.dropped
    assert d["users_below_min_interactions"] > 0
    assert ds.counts()["interactions"] == 71777 - d["events_of_users_below_min_interactions"]
    assert ds.counts()["users"] == 45277 - d["users_below_min_interactions"]
    core = load_dataset("movielens_100k", min_user_interactions=30, min_item_interactions=30)
    from collections import Counter
    assert min(Counter(x.user for x in core.interactions).values()) >= 30
    assert min(Counter(x.item for x in core.interactions).values()) >= 30
    assert set(core.items) == {x.item for x in core.interactions}


def _write_gz_lines(path, rows):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def test_amazon2018_raw_converter(tmp_path):
    _write_gz_lines(tmp_path / "Tiny_5.json.gz", [
        {"reviewerID": "U1", "asin": "A1", "overall": 5.0, "unixReviewTime": 300},
        {"reviewerID": "U1", "asin": "A2", "overall": 3.0, "unixReviewTime": 100},
        {"reviewerID": "U2", "asin": "A1", "overall": 4.0, "unixReviewTime": 200},
    ])
    _write_gz_lines(tmp_path / "meta_Tiny.json.gz", [
        {"asin": "A1", "title": "Thing one", "description": ["Line a", "line b"], "brand": "Acme",
         "category": ["Tiny", "Things"]},
        {"asin": "A2", "title": "Thing two"},
        {"asin": "A2", "title": "Thing two (repeat)"},
    ])
    ds = load_dataset(str(tmp_path))
    assert ds.source["format"] == "amazon2018"
    assert ds.items["A1"].description == "Line a line b" and ds.items["A1"].categories == ["Tiny", "Things"]
    assert ds.items["A2"].title == "Thing two" and ds.dropped == {"duplicate_meta_records": 1}
    assert [x.item for x in ds.sequences()["U1"]] == ["A2", "A1"]
    assert ds.counts() == {"users": 2, "items": 2, "interactions": 3}
