"""`llmrec sid build` through the shared config layer (--config / --set / --method), every shipped
recipes/sid/*.yaml parses, and `llmrec sid encode` gives new items SIDs without moving old ones."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from llmrec.config import load_config
from llmrec.io import LlmrecError
from llmrec.sid.config import SidConfig
from llmrec.sid.sidmap import SidMap

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes" / "sid").glob("*.yaml"))


def _main(argv: list[str]) -> int:
    from llmrec.commands import sid

    parser = argparse.ArgumentParser(prog="llmrec")
    sid.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def _catalogue(folder: Path, n: int, offset: int = 0) -> Path:
    words = ["beaker", "pipette", "gloves", "tape", "caliper", "funnel", "clamp", "lens", "scale", "flask"]
    items = {f"i{k}": {"title": f"{words[k % 10]} {words[(k * 3) % 10]} model {k}", "brand": f"brand{k % 4}",
                       "categories": ["Lab", words[k % 10].capitalize()]} for k in range(offset, offset + n)}
    inter = {f"u{u}": [f"i{(u * 7 + j) % n + offset}" for j in range(5)] for u in range(40)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Toy.item.json").write_text(json.dumps(items))
    (folder / "Toy.inter.json").write_text(json.dumps(inter))
    return folder


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_parses_and_builds_its_quantizer(recipe):
    cfg = load_config(SidConfig, recipe)
    q = cfg.make_quantizer()
    assert q.name == cfg.method
    assert recipe.stem in (cfg.method, "fused_cf", "identity", "rqvae_cf")


def test_build_with_config_set_and_method_flags(tmp_path, capsys):
    data = _catalogue(tmp_path / "toy", 80)
    run = tmp_path / "run"
    assert _main(["sid", "build", "--run", str(run), "--dataset", str(data), "--config", "recipes/sid/rvq.yaml",
                  "--set", "rvq.steps=30", "--set", "source=random", "--codebook", "8,8,8", "--json"]) == 0
    st = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert st["method"] == "rvq" and st["quantizer"]["steps"] == 30 and st["levels"][:3] == [8, 8, 8]
    assert st["distinct_sids"] == 80 == st["items"]
    saved = load_config(SidConfig, run / "sid" / "config.yaml")
    assert saved.method == "rvq" and saved.rvq.steps == 30
    for f in ("sid_map.json", "stats.json", "utilization.png", "loss.png", "quantizer/quantizer.safetensors"):
        assert (run / "sid" / f).exists(), f
    # --method beats the yaml; its own section's defaults apply
    assert _main(["sid", "build", "--run", str(run), "--dataset", str(data), "--config", "recipes/sid/rvq.yaml",
                  "--method", "hierarchical", "--set", "source=random", "--codebook", "4", "--json"]) == 0
    st = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert st["method"] == "hierarchical" and st["variable_length"]


def test_bad_choices_fail_fast_with_field_and_suggestion(tmp_path):
    with pytest.raises(LlmrecError, match=r"method.*did you mean 'opq'"):
        _main(["sid", "build", "--run", str(tmp_path), "--method", "oqp"])
    with pytest.raises(LlmrecError, match=r"rvq.yaml.*rvq.*did you mean 'steps'"):
        _main(["sid", "build", "--run", str(tmp_path), "--config", "recipes/sid/rvq.yaml", "--set", "rvq.step=3"])
    with pytest.raises(LlmrecError, match=r"identity.*did you mean 'unique'"):
        _main(["sid", "build", "--run", str(tmp_path), "--identity", "uniqe"])
    assert not (tmp_path / "sid").exists()


def test_encode_new_items_keeps_old_sids(tmp_path, capsys):
    data = _catalogue(tmp_path / "toy", 60)
    run = tmp_path / "run"
    assert _main(["sid", "build", "--run", str(run), "--dataset", str(data), "--method", "rkmeans",
                  "--codebook", "4,4,8", "--set", "max_seq_length=16"]) == 0
    old = SidMap.load(run / "sid" / "sid_map.json")
    new_items = _catalogue(tmp_path / "new", 12, offset=60) / "Toy.item.json"
    assert _main(["sid", "encode", "--sid", str(run / "sid"), "--items", str(new_items),
                  "--out", str(tmp_path / "enc")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    sm = SidMap.load(tmp_path / "enc" / "sid_map.json")
    sm.validate()
    assert all(sm.codes[i] == c for i, c in old.codes.items())  # nothing already trained on moves
    assert report["items_new"] == 12 and len(sm) == 60 + 12 - report["unplaced"]
    assert sm.level_sizes == old.level_sizes  # no token the model lacks
    assert report["kept"] + report["moved"] >= 10


def test_build_and_encode_refuse_to_overwrite_what_they_did_not_write(tmp_path):
    """RUN/sid holding someone else's files is refused before any data is read; encode never writes
    over the SID folder it extends."""
    data = _catalogue(tmp_path / "toy", 40)
    run = tmp_path / "run"
    (run / "sid").mkdir(parents=True)
    (run / "sid" / "notes.txt").write_text("mine")
    with pytest.raises(LlmrecError, match=r"--run .*sid.*refusing to replace"):
        _main(["sid", "build", "--run", str(run), "--dataset", str(data), "--method", "rkmeans"])
    assert (run / "sid" / "notes.txt").read_text() == "mine" and not (run / "sid" / "sid_map.json").exists()
    (run / "sid" / "notes.txt").unlink()
    assert _main(["sid", "build", "--run", str(run), "--dataset", str(data), "--method", "rkmeans",
                  "--codebook", "4,4,4", "--set", "max_seq_length=16"]) == 0
    before = (run / "sid" / "sid_map.json").read_bytes()
    new_items = _catalogue(tmp_path / "new", 5, offset=40) / "Toy.item.json"
    with pytest.raises(LlmrecError, match=r"--out .*sid"):
        _main(["sid", "encode", "--sid", str(run / "sid"), "--items", str(new_items), "--out", str(run / "sid")])
    assert (run / "sid" / "sid_map.json").read_bytes() == before
