"""Formats behind a registry: one module each (detect + load); a user format by dotted path."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from llmrec.data.formats import DATA_FORMATS, DataFormat, Loaded
from llmrec.data.loaders import FORMATS, detect_format, load_dataset
from llmrec.data.records import Interaction, Item
from llmrec.io import LlmrecError


def test_shipped_formats_are_registered_with_detect_and_load():
    assert set(FORMATS) == {"lcrec", "movielens", "taobao", "minionerec", "amazon2018"}
    for name in FORMATS:
        fmt = DATA_FORMATS.get(name)
        assert fmt.name == name and callable(fmt.detect) and callable(fmt.load)
        assert fmt.load.__module__ == f"llmrec.data.formats.{name}"


@pytest.mark.parametrize("name,expected", [("amazon18_scientific", "lcrec"), ("movielens_100k", "movielens"),
                                           ("minionerec_industrial", "minionerec")])
def test_detection_on_the_real_folders(data_root, name, expected):
    from llmrec.data.loaders import KNOWN_DATASETS

    assert detect_format(data_root / KNOWN_DATASETS[name][1]) == expected
    csv = data_root / "taobao_userbehavior" / "tail_10k" / "UserBehavior.csv"
    assert detect_format(csv) == "taobao"


def test_a_user_format_by_dotted_path(tmp_path, monkeypatch):
    def load(path: Path, sep: str = ";") -> Loaded:
        rows = [line.split(sep) for line in path.read_text().splitlines() if line]
        items = {i: Item(id=i, title=f"thing {i}") for _, i in rows}
        inter = [Interaction(user=u, item=i, position=k) for k, (u, i) in enumerate(rows)]
        return Loaded(items, inter, [path], "pairs")

    mod = types.ModuleType("my_formats")
    mod.PAIRS = DataFormat("pairs", detect=lambda p: p.suffix == ".pairs", load=load, options={"sep": ";"})
    monkeypatch.setitem(sys.modules, "my_formats", mod)
    (tmp_path / "x.pairs").write_text("u1;a\nu1;b\nu2;a\n")
    ds = load_dataset(str(tmp_path / "x.pairs"), format="my_formats:PAIRS")
    assert ds.counts() == {"users": 2, "items": 2, "interactions": 3}
    assert ds.source["format"] == "my_formats:PAIRS"
    with pytest.raises(LlmrecError, match="unknown loader option"):
        load_dataset(str(tmp_path / "x.pairs"), format="my_formats:PAIRS", rating_behavior="levels")
    with pytest.raises(LlmrecError, match=r"unknown data format 'lcrc' \(did you mean 'lcrec'\?\)"):
        load_dataset(str(tmp_path / "x.pairs"), format="lcrc")
    with pytest.raises(LlmrecError, match="cannot tell the dataset format"):
        load_dataset(str(tmp_path / "x.pairs"))
