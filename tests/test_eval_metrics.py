"""Hand-computed cases for llmrec.eval.metrics."""

import math

import pytest

from llmrec.baselines.popular import MostPopular
from llmrec.data.records import Example
from llmrec.eval.metrics import (
    compute_metrics,
    coverage_at_k,
    example_metrics,
    paired_bootstrap,
    popularity_groups,
    ranking_metrics,
    target_rank,
    transition_labels,
    translation_accuracy,
    valid_rate,
)


def test_target_at_rank_3():
    m = example_metrics(["a", "b", "t", "c", "d"], "t", ks=(1, 3, 5))
    assert m["HR@1"] == 0 and m["HR@3"] == 1 and m["HR@5"] == 1
    assert m["NDCG@1"] == 0
    assert m["NDCG@5"] == pytest.approx(1 / math.log2(4))
    assert m["NDCG@3"] == pytest.approx(0.5)
    assert m["MRR"] == pytest.approx(1 / 3) and m["MRR@1"] == 0 and m["MRR@3"] == pytest.approx(1 / 3)


def test_duplicates_count_once():
    # ["a","a","b","t"] is scored as ["a","b","t"]: target at rank 3, not 4
    assert target_rank(["a", "a", "b", "t"], "t") == 3
    m = example_metrics(["a", "a", "b", "t"], "t", ks=(3,))
    assert m["HR@3"] == 1 and m["NDCG@3"] == pytest.approx(0.5)
    # a duplicated target counts at its first occurrence only
    assert example_metrics(["t", "t"], "t", ks=(1,))["MRR"] == 1.0


def test_k_larger_than_list_and_missing_target():
    m = example_metrics(["a", "t"], "t", ks=(1, 20))
    assert m["HR@20"] == 1 and m["NDCG@20"] == pytest.approx(1 / math.log2(3))
    miss = example_metrics(["a", "b"], "t", ks=(1, 20))
    assert all(v == 0 for v in miss.values())
    assert example_metrics([], "t", ks=(5,))["HR@5"] == 0


def test_sid_string_is_not_a_hit():
    # two items sharing a SID string are different items: only the id counts
    assert example_metrics(["item_with_same_sid"], "t", ks=(1,))["HR@1"] == 0


def test_average_over_examples():
    m = ranking_metrics([["t1", "x"], ["x", "t2"], ["x", "y"]], ["t1", "t2", "t3"], ks=(1, 2))
    assert m["HR@1"] == pytest.approx(1 / 3)
    assert m["HR@2"] == pytest.approx(2 / 3)
    assert m["NDCG@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert m["MRR"] == pytest.approx((1 + 0.5) / 3)


def test_valid_rate_and_coverage():
    cat = ["a", "b", "c", "d", "e"]
    ranked = [["a", "b", "zz"], ["a", "c", "a"]]
    assert valid_rate(ranked, cat) == pytest.approx(5 / 6)
    assert coverage_at_k(ranked, cat, 1) == pytest.approx(1 / 5)
    # @2: {a, b} ∪ {a, c}; the non-catalogue "zz" is never counted
    assert coverage_at_k(ranked, cat, 2) == pytest.approx(3 / 5)
    assert coverage_at_k(ranked, cat, 3) == pytest.approx(3 / 5)


def test_head_torso_tail_hand_case():
    cat = [f"i{j}" for j in range(10)]
    pop = {"i0": 1, "i1": 9, "i2": 8, "i3": 5, "i4": 5, "i5": 4, "i6": 3, "i7": 2}
    g = popularity_groups(pop, cat, head_frac=0.2, tail_frac=0.5)
    # sorted: i1(9) i2(8) i3(5) i4(5, tie -> later index) i5 i6 i7 i0 i8(0) i9(0)
    assert [x for x in cat if g[x] == "head"] == ["i1", "i2"]
    assert sorted(x for x in cat if g[x] == "torso") == ["i3", "i4", "i5"]
    assert sorted(x for x in cat if g[x] == "tail") == ["i0", "i6", "i7", "i8", "i9"]
    res = compute_metrics([["i1"], ["i1"], ["i9"]], ["i1", "i3", "i9"], ks=(1,), catalogue=cat, popularity=pop)
    groups = res["popularity"]["groups"]
    assert groups["head"] == pytest.approx({"n": 1, "HR@1": 1.0, "NDCG@1": 1.0, "MRR@1": 1.0, "MRR": 1.0})
    assert groups["torso"]["n"] == 1 and groups["torso"]["HR@1"] == 0
    assert groups["tail"]["n"] == 1 and groups["tail"]["HR@1"] == 1
    assert res["popularity"]["items_per_group"] == {"head": 2, "torso": 3, "tail": 5}


def test_per_behavior_breakdown():
    res = compute_metrics([["a"], ["b"], ["c"]], ["a", "x", "c"], ks=(1,), behaviors=["buy", "pv", "pv"])
    assert res["behaviors"]["buy"]["HR@1"] == 1 and res["behaviors"]["buy"]["n"] == 1
    assert res["behaviors"]["pv"]["HR@1"] == pytest.approx(0.5)
    assert "behaviors" not in compute_metrics([["a"]], ["a"], ks=(1,), behaviors=["interact"])


def test_translation_accuracy():
    assert translation_accuracy(["1", "2", None], ["1", "3", "4"]) == pytest.approx(1 / 3)
    assert translation_accuracy([" Beaker  "], ["Beaker"]) == 1.0
    assert translation_accuracy(["beaker set"], ["Beaker  Set"]) == 0.0
    assert translation_accuracy(["beaker set"], ["Beaker  Set"], normalize=True) == 1.0


def test_most_popular_toy_split():
    cat = ["a", "b", "c", "d"]
    pop = {"b": 3, "c": 3, "a": 1}
    mp = MostPopular(pop, cat)
    ex = [Example("u1", ["b"], "c"), Example("u2", ["a"], "d")]
    # tie b/c broken by catalogue index (b before c); d unseen -> last
    assert mp.rank(ex, 3) == [["b", "c", "a"], ["b", "c", "a"]]
    mp2 = MostPopular(pop, cat, exclude_history=True)
    assert mp2.rank(ex, 3) == [["c", "a", "d"], ["b", "c", "d"]]
    assert mp.rank(ex, 10)[0] == ["b", "c", "a", "d"]


def test_paired_bootstrap_hand_cases():
    a, b = [1.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.5, 1.0]
    out = paired_bootstrap(a, b, n_boot=500, seed=1)
    assert out["diff"] == pytest.approx(0.0) and out["n"] == 4
    assert out["ci95"][0] < 0 < out["ci95"][1]
    shifted = paired_bootstrap([x + 0.1 for x in b], b, n_boot=200)
    assert shifted["diff"] == pytest.approx(0.1)
    assert shifted["ci95"] == pytest.approx([0.1, 0.1]) and shifted["p_not_better"] == 0.0
    assert paired_bootstrap(b, [x + 0.1 for x in b], n_boot=200)["p_not_better"] == 1.0
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_paired_comparisons_against_each_reference():
    from llmrec.eval.runner import paired_comparisons, significance_table

    targets = ["a", "b", "c"]
    rankings = {"pop": [["x", "a"], ["x"], ["x"]],          # NDCG@10: 1/log2(3), 0, 0
                "sas": [["a"], ["x"], ["x"]],               # 1, 0, 0
                "llm": [["a"], ["b"], ["x", "x", "c"]]}     # 1, 1, 1/log2(3)  (duplicates count once)
    rows = paired_comparisons(rankings, targets, ["pop", "sas"], n_boot=100)
    assert [(r["ranker"], r["reference"]) for r in rows] == [("llm", "pop"), ("llm", "sas")]
    g = 1 / math.log2(3)
    assert rows[0]["diff"] == pytest.approx((1 - g + 1 + g) / 3)
    assert rows[1]["diff"] == pytest.approx((0 + 1 + g) / 3)
    table = significance_table(rows)
    assert "| llm | sas | NDCG@10 | +0.5436 |" in table


def test_transition_labels_and_groups():
    train = [["a", "b", "c"], ["c", "d"]]
    labels = transition_labels([["x", "a"], ["b"], [], ["d"]], ["b", "d", "a", "c"], train)
    assert labels == ["seen", "new", "no_history", "new"]  # d -> c is not a step (c -> d is)
    m = compute_metrics([["b"], ["x", "d"], ["a"], ["x"]], ["b", "d", "a", "c"], ks=[1, 2], transitions=labels)
    assert m["transitions"]["seen"]["n"] == 1 and m["transitions"]["seen"]["HR@1"] == 1.0
    assert m["transitions"]["new"]["n"] == 2 and m["transitions"]["new"]["HR@2"] == 0.5
    assert m["transitions"]["no_history"]["HR@1"] == 1.0
