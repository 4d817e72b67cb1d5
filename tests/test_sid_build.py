"""build_sids end to end on real data: real MiniLM embeddings, real faiss, outputs round trip, CLI."""

import json
import os

import numpy as np
import pytest

from llmrec.io import LlmrecError, data_dir
from llmrec.sid.build import SidConfig, build_sids
from llmrec.sid.collisions import is_prefix_free
from llmrec.sid.sidmap import SidMap

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SCI = data_dir() / "amazon18_scientific"
needs_data = pytest.mark.skipif(not (SCI / "Scientific.item.json").exists(),
                                reason=f"amazon18_scientific not found under {data_dir()} (set LLMREC_DATA_DIR)")


@pytest.fixture(scope="module")
def dataset():
    from llmrec.data.loaders import load_dataset

    return load_dataset("amazon18_scientific")


@pytest.fixture(scope="module")
def subset(dataset):
    return dict(list(dataset.items.items())[:120])


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    old = os.environ.get("LLMREC_CACHE")
    os.environ["LLMREC_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("LLMREC_CACHE", None)
    else:
        os.environ["LLMREC_CACHE"] = old


TEXT = {"fields": ["title", "categories"], "max_seq_length": 24, "codebook_size": [8, 8, 4], "seed": 3}


@needs_data
@pytest.mark.parametrize("method", ["reassign", "extra_token"])
def test_text_build_writes_outputs_and_round_trips(subset, tmp_path, method):
    out = tmp_path / "sid"
    sm = build_sids(subset, SidConfig(collision=method, **TEXT), out_dir=out)
    sids = list(sm.codes.values())
    assert len(sm) == 120 and len(set(sids)) == 120 and is_prefix_free(sids)
    st = json.loads((out / "stats.json").read_text())
    assert st["collisions_after"] == 0 and st["collisions_before"] >= 1  # 8*8*4 codes for 120 items
    assert st["collision_method"].startswith(method) and st["items_touched"] >= 1
    assert all(u >= 0.9 for u in st["utilization_quantizer"])
    assert {"embed_s", "quantize_s"} <= set(st["timings"]) and st["input_fingerprint"]
    assert st["config"]["fields"] == ["title", "categories"]
    loaded = SidMap.load(out / "sid_map.json")
    assert loaded.codes == sm.codes and loaded.fingerprint == sm.fingerprint
    emb = np.load(out / "embeddings.npy")
    assert emb.shape == (120, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    assert set(np.load(out / "codebooks.npz").files) == {"level_0", "level_1", "level_2"}
    assert (out / "utilization.png").stat().st_size > 1000
    # same seed, cached embeddings -> identical map
    again = build_sids(subset, SidConfig(collision=method, **TEXT))
    assert again.codes == sm.codes and again.build_stats["timings"]["embed_s"] < 5


@needs_data
def test_reference_index_import():
    native = SidMap.from_index_json(SCI / "reference_sids" / "Scientific.rkmeans_native.index.json")
    st = native.stats()
    assert st["items"] == 4344 and st["distinct_sids"] == 3469 and native.collisions() == 875
    with pytest.raises(LlmrecError, match="colliding"):
        native.validate()
    zcr = SidMap.from_index_json(SCI / "reference_sids" / "Scientific.rkmeans_zcr.index.json")
    zcr.validate()


@needs_data
def test_cli_build_and_stats(tmp_path, capsys):
    from llmrec.cli import main

    run = tmp_path / "run"
    assert main(["sid", "build", "--run", str(run), "--dataset", "amazon18_scientific", "--source", "random",
                 "--collision", "extra_token", "--levels", "2", "--codebook", "64", "--json"]) == 0
    st = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert st["items"] == 4344 and st["distinct_sids"] == 4344 and st["collisions_after"] == 0
    assert main(["sid", "stats", str(run / "sid"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["distinct_sids"] == 4344
    ref = SCI / "reference_sids" / "Scientific.rkmeans_native.index.json"
    assert main(["sid", "stats", str(ref)]) == 0
    assert "3469 distinct SIDs" in capsys.readouterr().out


@needs_data
@pytest.mark.slow
def test_collaborative_from_prepared_uses_train_split(dataset, tmp_path):
    from llmrec.data.store import load_prepared, save_prepared

    try:
        from llmrec.data.splits import leave_one_out
    except ImportError:
        pytest.skip("llmrec.data.splits.leave_one_out not available")
    save_prepared(tmp_path / "data", dataset, leave_one_out(dataset))
    prepared = load_prepared(tmp_path / "data")
    sm = build_sids(prepared, SidConfig(source="collaborative", vector_dim=32, codebook_size=64))
    assert len(sm) == 4344 and sm.collisions() == 0
    assert sm.build_stats["interactions"] == "prepared train split"
    assert sm.build_stats["input_fingerprint"] == prepared.fingerprint


def test_config_errors():
    with pytest.raises(LlmrecError, match="source"):
        SidConfig(source="images")
    with pytest.raises(LlmrecError, match="vectors_path"):
        SidConfig(source="npy")
    with pytest.raises(LlmrecError, match="unknown sid config"):
        SidConfig.from_dict({"levls": 3})


def test_item_text_leaves_out_categories_every_item_shares():
    from llmrec.data.records import Item
    from llmrec.sid.embed import common_categories, item_texts

    items = [Item(id=str(i), title=f"Beaker {i}", categories=["Industrial & Scientific", kind])
             for i, kind in enumerate(["Lab", "Lab", "Tools"])]
    assert common_categories(items, 0.5) == {"Industrial & Scientific", "Lab"}
    assert common_categories(items, None) == set() == common_categories(items, 1.0)
    texts = item_texts(items, common_category_share=0.9)
    assert texts[0] == "Title: Beaker 0; Categories: Lab"
    assert texts[2] == "Title: Beaker 2; Categories: Tools"
    assert item_texts(items)[0] == "Title: Beaker 0; Categories: Industrial & Scientific, Lab"
