"""SASRec learns a simple sequential pattern, beats MostPopular, and round-trips through safetensors."""

import random

import pytest
import torch

from llmrec.baselines.popular import MostPopular
from llmrec.baselines.sasrec import SASRec, SASRecConfig, SASRecRanker, train_sasrec, training_windows
from llmrec.data.records import Example
from llmrec.eval.metrics import ranking_metrics


def _pattern_data(n_items=30, n_users=200, seed=0):
    """Each user walks i -> i+1 (mod n) from a random start; LOO valid/test."""
    items = [f"i{j}" for j in range(n_items)]
    rng = random.Random(seed)
    train, valid, test = [], [], []
    for u in range(n_users):
        s, length = rng.randrange(n_items), rng.randint(5, 10)
        seq = [items[(s + t) % n_items] for t in range(length)]
        train.append(seq[:-2])
        valid.append(Example(str(u), seq[:-2], seq[-2]))
        test.append(Example(str(u), seq[:-1], seq[-1]))
    return items, train, valid, test


@pytest.fixture(scope="module")
def trained():
    # One thread: on a small shared CPU box OpenMP spinning makes 2 threads several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        items, train, valid, test = _pattern_data()
        cfg = SASRecConfig(hidden=32, epochs=15, patience=3, seed=1)
        model, res = train_sasrec(train, items, valid, cfg, progress=False)
        yield items, train, test, model, res
    finally:
        torch.set_num_threads(threads)


def test_sasrec_beats_most_popular(trained):
    items, train, test, model, res = trained
    pop: dict[str, int] = {}
    for s in train:
        for x in s:
            pop[x] = pop.get(x, 0) + 1
    targets = [e.target for e in test]
    sas = ranking_metrics(SASRecRanker(model).rank(test, 10), targets, (1, 10))
    mp = ranking_metrics(MostPopular(pop, items).rank(test, 10), targets, (1, 10))
    assert res.best_valid_ndcg > 0.5
    assert sas["NDCG@10"] > 0.5 and sas["NDCG@10"] > 2 * mp["NDCG@10"]
    assert sas["HR@10"] > 0.9


def test_score_items_shape_and_save_load(trained, tmp_path):
    items, _, test, model, _ = trained
    hist = [e.history for e in test[:7]] + [[], ["unknown", "i3"]]
    scores = model.score_items(hist)
    assert scores.shape == (9, len(items)) and torch.isfinite(scores).all()
    assert model.item_ids == items and model.item_index["i5"] == 5
    model.save(tmp_path / "m", extra={"data_fingerprint": "x"})
    loaded = SASRec.load(tmp_path / "m")
    assert torch.equal(loaded.score_items(hist), scores)
    assert SASRecRanker(loaded).rank(test[:7], 5) == SASRecRanker(model).rank(test[:7], 5)


def test_exclude_history_and_windows(trained):
    _, _, test, model, _ = trained
    ranked = SASRecRanker(model, exclude_history=True).rank(test[:5], 10)
    for e, r in zip(test[:5], ranked):
        assert not set(r) & set(e.history) and len(r) == 10
    # every next-item target of a long sequence is used exactly once
    wins = training_windows([list(range(1, 121))], max_len=50)
    targets = sorted(t for w in wins for t in w[1:])
    assert targets == list(range(2, 121)) and max(len(w) for w in wins) == 51
