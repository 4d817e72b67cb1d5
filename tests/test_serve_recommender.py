"""Recommender on a real tiny model: bundle round trip, title resolution, chat, CLI."""

from __future__ import annotations

import io
import json

import pytest
from test_serve_fixture import build_recommender

from llmrec.io import LlmrecError

HAT = "HATCHBOX 1 Spool 3D Printer Filament Tabletop Wall Mount Rack."
ANGLE = "Wixey WR300 Digital Angle Gauge."


@pytest.fixture(scope="module")
def rec(data_root):
    return build_recommender(data_root)


@pytest.fixture(scope="module")
def bundle(rec, tmp_path_factory):
    return rec.save_pretrained(tmp_path_factory.mktemp("b") / "bundle")


def _ids(recs):
    return [(r.item_id, round(r.score, 4)) for r in recs]


def test_bundle_contents_and_round_trip(rec, bundle):
    from llmrec.serve import Recommender

    names = {p.name for p in bundle.iterdir()}
    assert {"sid_map.json", "items.jsonl", "llmrec_config.json", "README.md", "config.json",
            "model.safetensors", "tokenizer.json"} <= names
    assert not [p for p in bundle.rglob("*") if p.suffix in (".bin", ".pt", ".pth")]
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".")]  # atomic: no temp leftovers
    cfg = json.loads((bundle / "llmrec_config.json").read_text())
    assert cfg["sid_fingerprint"] == rec.sid_map.fingerprint and cfg["num_items"] == len(rec.items)
    card = (bundle / "README.md").read_text()
    assert card.startswith("---") and "Recommender.from_pretrained" in card
    back = Recommender.from_pretrained(bundle)
    hist = ["1", "2", "48"]
    assert _ids(back.recommend(hist, k=8)) == _ids(rec.recommend(hist, k=8))
    assert back.generation == rec.generation


def test_mismatched_catalogue_or_sidmap_refused(bundle, tmp_path):
    import shutil

    from llmrec.serve import Recommender

    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    lines = (bad / "items.jsonl").read_text().splitlines()
    (bad / "items.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(LlmrecError, match="items.jsonl"):
        Recommender.from_pretrained(bad)


def test_history_titles_resolve_and_exclude_seen(rec):
    by_id = rec.recommend(["49", "53"], k=5)
    by_title = rec.recommend([HAT, ANGLE.lower().rstrip(".")], k=5)
    assert _ids(by_id) == _ids(by_title)
    assert not {"49", "53"} & {r.item_id for r in by_id}
    assert all(r.sid == rec.sid_map.sid_string(r.item_id) and r.title == rec.items[r.item_id].title for r in by_id)
    with_seen = rec.recommend(["49", "53"], k=len(rec.sid_map), exclude_seen=False)
    assert {"49", "53"} <= {r.item_id for r in with_seen}
    # a one-letter typo in a full title still resolves (fuzzy)
    assert rec.resolve_history(["Wixey WR300 Digitel Angle Gauge"])[0].item_id == "53"


def test_unknown_title_lists_close_matches(rec):
    with pytest.raises(LlmrecError) as e:
        rec.recommend(["Wixey angle thing that does not exist in any form"], k=3)
    assert "Closest titles" in str(e.value) and "Wixey WR300" in str(e.value)
    with pytest.raises(LlmrecError, match="k="):
        rec.recommend(["49"], k=0)


def test_behavior_prompt(rec):
    from llmrec.serve import Recommender

    with_buy = Recommender(rec.model, rec.tokenizer, rec.sid_map, rec.items,
                           config={**rec.config, "behaviors": ["buy", "pv"]})
    out = with_buy.recommend(["49", "53"], behavior="buy", k=3)
    assert len(out) == 3
    assert "buy" in with_buy.prompt(["49"], behavior="buy")
    with pytest.raises(LlmrecError, match="knows buy, pv"):
        with_buy.recommend(["49"], behavior="cart", k=3)


def test_chat_typo_phrase_and_sids(rec):
    reply = rec.chat("I just bought a Wixey WR300 Digitel Angle Gauge and some 3D printer filament, "
                     "what else do I need?")
    got = {m.item_id for m in reply.resolved}
    assert "53" in got
    assert got & {"48", "49", "50"}  # 'some 3D printer filament' by embedding search
    assert reply.items and not got & {r.item_id for r in reply.items}
    assert reply.items[0].title in reply.text and "<a_" not in reply.text
    with_sids = rec.chat("I have the Wixey WR300 Digital Angle Gauge.", show_sids=True)
    assert [m.item_id for m in with_sids.resolved] == ["53"]
    assert with_sids.items[0].sid in with_sids.text


def test_chat_without_known_item(rec):
    reply = rec.chat("hello, how is the weather in Paris today?")
    assert reply.items == [] and reply.resolved == []
    assert reply.text.startswith("I couldn't match anything in your message to the catalogue")
    assert "e.g." in reply.text


def test_phrase_splitting():
    from llmrec.serve import TitleResolver

    assert TitleResolver.phrases("I just bought a soldering station and flux, what else do I need?") == \
        ["soldering station", "flux"]


def test_cli_recommend_json_and_chat_repl(rec, bundle, capsys):
    from llmrec.cli import main
    from llmrec.serve.chat import repl

    assert main(["recommend", "--model", str(bundle), "--titles", f"{HAT};{ANGLE}", "-k", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [d["item_id"] for d in out["history"]] == ["49", "53"]
    assert [r["item_id"] for r in out["items"]] == [r.item_id for r in rec.recommend(["49", "53"], k=4)]
    stdout = io.StringIO()
    repl(rec, io.StringIO(f":sids\nI have the {ANGLE}\nblah blah nothing\n:quit\nnot read\n"), stdout, k=2)
    text = stdout.getvalue()
    assert "(SIDs on)" in text and "<a_" in text and "I couldn't match anything" not in text


def test_verbatim_title_wins_over_its_near_twin():
    from llmrec.data.records import Item
    from llmrec.serve import TitleResolver

    items = {"80": Item(id="80", title="PORTER-CABLE 740000801 4 1/2-Inch x 10yd 80 Grit Adhesive-Backed Sanding Roll"),
             "120": Item(id="120", title="PORTER-CABLE 740001201 4 1/2-Inch by 10yd 120 Grit Adhesive-Backed Sanding Roll"),
             "vise": Item(id="vise", title="Eclipse Quick Release Woodworking Vise, Gray Cast Iron, 9 Size")}
    res = TitleResolver(items, use_embeddings=False)
    msg = ("I just bought PORTER-CABLE 740000801 4 1/2-Inch x 10yd 80 Grit Adhesive-Backed Sanding Roll and "
           "Eclipse Quick Release Woodworking Vise, Gray Cast Iron, 9 Size. What else do I need?")
    assert sorted(m.item_id for m in res.mentions(msg)) == ["80", "vise"]
