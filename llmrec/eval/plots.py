"""PNG charts of evaluation results (matplotlib, Agg backend; no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmrec.io import atomic_path

GROUPS = ("head", "torso", "tail")


def _group_k(ks: Sequence[int]) -> int:
    """K used for the head/torso/tail bars: 10 when evaluated, else the largest K."""
    return 10 if 10 in ks else max(ks)


def _from_zero(ax, values: Sequence[float]) -> None:
    """y axis from 0 (bars and curves are never cut), with headroom for the value labels."""
    top = max(values, default=0.0)
    ax.set_ylim(0, top * 1.18 if top > 0 else 1e-3)


def _group_bars(ax, results: Sequence[dict], metric: str) -> None:
    """One bar per ranker in each popularity group, each labelled with its value; a zero bar is
    drawn as a line on the axis so it stays visible."""
    width = 0.8 / len(results)
    values = []
    for j, m in enumerate(results):
        k = _group_k(m["ks"])
        vals = [m["popularity"]["groups"].get(g, {}).get(f"{metric}@{k}", 0.0) for g in GROUPS]
        values += vals
        xs = [i + (j - (len(results) - 1) / 2) * width for i in range(len(GROUPS))]
        bars = ax.bar(xs, vals, width=width, label=f"{m.get('ranker', '?')} ({metric}@{k})")
        color = bars.patches[0].get_facecolor()
        for x, v in zip(xs, vals):
            if v == 0:
                ax.plot([x - width / 2, x + width / 2], [0, 0], color=color, lw=3, solid_capstyle="butt",
                        clip_on=False, zorder=3)
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in vals], fontsize=6, rotation=90, padding=2)
    ns = results[0]["popularity"]["groups"]
    ax.set_xticks(range(len(GROUPS)), [f"{g}\n(n={ns.get(g, {}).get('n', 0)})" for g in GROUPS])
    _from_zero(ax, values)
    ax.set_ylabel(f"{metric}@K")
    ax.set_title(f"{metric} by target popularity (train counts)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)


def plot_metrics(metrics_list: Sequence[dict], path: str | Path, title: str | None = None) -> Path:
    """HR@K and NDCG@K curves per ranker (top), HR@10 and NDCG@10 per head/torso/tail group
    (bottom), in one PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    all_ks = sorted({k for m in metrics_list for k in m["ks"]})
    for ax, name in zip(axes[0], ("HR", "NDCG")):
        values = []
        for m in metrics_list:
            ys = [m["metrics"][f"{name}@{k}"] for k in m["ks"]]
            values += ys
            ax.plot(m["ks"], ys, marker="o", label=m.get("ranker", "?"))
        ax.set_xlabel("K")
        ax.set_xscale("log")
        ax.set_xticks(all_ks, [str(k) for k in all_ks])
        ax.minorticks_off()
        _from_zero(ax, values)
        ax.set_ylabel(f"{name}@K")
        ax.set_title(f"{name}@K")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    with_groups = [m for m in metrics_list if "popularity" in m]
    for ax, name in zip(axes[1], ("HR", "NDCG")):
        if with_groups:
            _group_bars(ax, with_groups, name)
        else:
            ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
