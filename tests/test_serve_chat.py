"""Chat title resolution and the recommend CLI's error cases, on real catalogue titles.

Resolver cases run on small hand-made catalogues (no model); the rest on the tiny fixture model over 80
real Amazon Scientific items (items 7 and 8 share one title)."""

from __future__ import annotations

import pytest
from test_serve_fixture import build_recommender

from llmrec.data.records import Item
from llmrec.io import LlmrecError

ANGLE = "Wixey WR300 Digital Angle Gauge."
TAPES = {"10": Item(id="10", title="Scotch Foil Tape, 2-Inch by 50-Yard."),
         "20": Item(id="20", title="Duck Brand 2-Inch by 50-Yard Tape"),
         "53": Item(id="53", title=ANGLE),
         "60": Item(id="60", title="Weller WLC100 40-Watt Soldering Station")}


@pytest.fixture(scope="module")
def rec(data_root):
    return build_recommender(data_root)


def _resolver(items=TAPES):
    from llmrec.serve import TitleResolver

    return TitleResolver(items, use_embeddings=False)


def test_comma_inside_a_title_does_not_split_it():
    found = _resolver().find("I have Scotch Foil Tape, 2-Inch by 50-Yard. What else do I need?")
    assert [m.item_id for m in found.matches] == ["10"] and found.unmatched == []


def test_every_unmatched_mention_is_reported():
    found = _resolver().find("I bought the Weller WLC100 40-Watt Soldering Station and some flux and a "
                             "quantum frobnicator")
    assert [m.item_id for m in found.matches] == ["60"]
    assert found.unmatched == ["flux", "quantum frobnicator"]


def test_truncated_title_accepted_when_unambiguous():
    r = _resolver()
    assert r.resolve("Weller WLC100 40-Watt Soldering").item_id == "60"
    assert r.resolve("Wixey WR300 Angle Gauge").item_id == "53"
    assert [m.item_id for m in r.find("I have the Weller WLC100 Soldering Station").matches] == ["60"]
    with pytest.raises(LlmrecError, match="Closest titles"):
        r.resolve("2-Inch by 50-Yard Tape roll")  # two tapes fit: ambiguous, refused


def test_unknown_id_is_not_looked_up_as_a_title():
    with pytest.raises(LlmrecError, match="unknown item id '999999'"):
        _resolver().resolve("999999")


def test_duplicate_titles_told_apart_never_listed_twice_and_excluded_with_the_history(rec):
    assert rec.items["7"].title == rec.items["8"].title
    assert rec.display_name("7") != rec.display_name("8") and "item 7" in rec.display_name("7")
    every = rec.recommend(["49"], k=60)
    titles = [r.title.split(" (item ")[0] for r in every]
    assert len(titles) == len(set(titles))
    got = {r.item_id for r in rec.recommend(["7"], k=60)}
    assert not got & {"7", "8"}  # the same-titled twin of a history item is excluded too
    reply = rec.chat(f"I have {rec.items['7'].title}", k=10)
    assert not {r.item_id for r in reply.items} & {"7", "8"}


def test_chat_reports_unmatched_with_a_history(rec):
    reply = rec.chat(f"I have the {ANGLE} and some zyxwvut gizmo", history=["49"], k=3)
    assert {m.item_id for m in reply.resolved} == {"49", "53"}
    assert "couldn't find" in reply.text and "zyxwvut gizmo" in reply.text


def test_behavior_checked(rec):
    with pytest.raises(LlmrecError, match="without behaviours"):
        rec.recommend(["49"], behavior="xyzzy", k=3)


def test_cli_unknown_id_and_behavior_are_clear(rec, tmp_path, capsys):
    from llmrec.cli import main

    bundle = rec.save_pretrained(tmp_path / "bundle")
    assert main(["recommend", "--model", str(bundle), "--history", "999999"]) == 1
    err = capsys.readouterr().err
    assert "unknown item id '999999'" in err and "Closest titles" not in err
    assert main(["recommend", "--model", str(bundle), "--history", "49", "--behavior", "xyzzy"]) == 1
    assert "unknown behavior 'xyzzy'" in capsys.readouterr().err
    assert main(["recommend", "--model", str(bundle), "--history", "49,53", "-k", "3", "--json"]) == 0
