"""comparison.md's per-group tables and per-group paired bootstrap, and metrics.png's group bars,
on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from llmrec.eval.metrics import compute_metrics
from llmrec.eval.report import (
    comparison_report,
    group_table,
    paired_comparisons,
    significance_table,
    target_groups,
)

# 10 items; training counts make a0, a1 head (top 20%), a5..a9 tail (bottom 50%), a2..a4 torso.
CATALOGUE = [f"a{i}" for i in range(10)]
POPULARITY = {"a0": 9, "a1": 8, "a2": 5, "a3": 4, "a4": 3, "a5": 1}
TARGETS = ["a0", "a1", "a2", "a5", "a6", "a7"]
G = 1 / math.log2(3)  # NDCG of a hit at rank 2
RANKINGS = {
    # sasrec: head hits at rank 1, torso at rank 2, tail misses
    "sasrec": [["a0"], ["a1"], ["x", "a2"], ["x"], ["x"], ["x"]],
    # model: head the same, torso the same, tail hits at rank 1 on two of three
    "model": [["a0"], ["a1"], ["x", "a2"], ["a5"], ["a6"], ["x"]],
}


def _results():
    return [{"ranker": name, **compute_metrics(r, TARGETS, ks=[1, 10], catalogue=CATALOGUE, popularity=POPULARITY)}
            for name, r in RANKINGS.items()]


def test_target_groups_follow_training_counts():
    assert target_groups(TARGETS, POPULARITY, CATALOGUE) == ["head", "head", "torso", "tail", "tail", "tail"]


def test_group_table_hand_computed():
    table = group_table(_results())
    assert "| ranker | all (n=6) | head (n=2, 2 items) | torso (n=1, 3 items) | tail (n=3, 5 items) |" in table
    # sasrec: HR@10 all = 3/6, NDCG@10 all = (1 + 1 + G) / 6; tail 0
    assert f"| sasrec | 0.5000 / {(2 + G) / 6:.4f} | 1.0000 / 1.0000 | 1.0000 / {G:.4f} | 0.0000 / 0.0000 |" in table
    assert f"| model | 0.8333 / {(4 + G) / 6:.4f} | 1.0000 / 1.0000 | 1.0000 / {G:.4f} | 0.6667 / 0.6667 |" in table


def test_paired_bootstrap_per_group():
    groups = target_groups(TARGETS, POPULARITY, CATALOGUE)
    rows = paired_comparisons(RANKINGS, TARGETS, ["sasrec"], n_boot=200, groups=groups)
    by = {r["group"]: r for r in rows}
    assert [r["group"] for r in rows] == ["all", "head", "torso", "tail"]
    assert all(r["ranker"] == "model" and r["reference"] == "sasrec" for r in rows)
    assert by["all"]["diff"] == pytest.approx(2 / 6) and by["all"]["n"] == 6
    # identical on head and torso: every resample differs by exactly 0, so never better
    assert by["head"]["diff"] == 0 and by["head"]["ci95"] == [0, 0] and by["head"]["p_not_better"] == 1.0
    assert by["torso"]["n"] == 1
    # tail: per-example differences 1, 1, 0
    assert by["tail"]["diff"] == pytest.approx(2 / 3) and by["tail"]["n"] == 3
    lo, hi = by["tail"]["ci95"]
    assert 0 <= lo <= 2 / 3 <= hi <= 1
    table = significance_table(rows)
    assert "| model | sasrec | NDCG@10 | +0.3333 |" in table  # the overall table, as before
    assert "| ranker | reference | all | head (n=2) | torso (n=1) | tail (n=3) |" in table
    assert "| model | sasrec | +0.3333 [" in table and "+0.0000 [+0.0000, +0.0000] p=1.00" in table
    with pytest.raises(ValueError, match="5 group labels for 6 examples"):
        paired_comparisons(RANKINGS, TARGETS, ["sasrec"], groups=groups[:5])


def test_without_groups_rows_are_overall_only():
    rows = paired_comparisons(RANKINGS, TARGETS, ["sasrec"], n_boot=50)
    assert [r["group"] for r in rows] == ["all"]
    assert "within each target popularity group" not in significance_table(rows)


def test_comparison_report_sections():
    results = _results()
    groups = target_groups(TARGETS, POPULARITY, CATALOGUE)
    text, paired = comparison_report(results, RANKINGS, TARGETS, ["sasrec"], ks=[1, 10], groups=groups, n_boot=50)
    assert len(paired) == 4
    for part in ("| ranker | n | HR@1 | HR@10 |", "Paired bootstrap", "within each target popularity group",
                 "HR@10 / NDCG@10 by target popularity"):
        assert part in text


def test_group_bars_start_at_zero_and_show_zero_values(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmrec.eval.plots import _group_bars, plot_metrics

    results = _results()
    fig, ax = plt.subplots()
    _group_bars(ax, results, "NDCG")
    assert ax.get_ylim()[0] == 0
    labels = [t.get_text() for t in ax.texts]
    assert labels.count("0.000") == 1 and "0.667" in labels  # sasrec's zero tail bar is labelled
    zero_marks = [ln for ln in ax.lines if list(ln.get_ydata()) == [0, 0]]
    assert len(zero_marks) == 1  # and drawn as a line on the axis
    plt.close(fig)
    out = plot_metrics(results, tmp_path / "m.png", title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
