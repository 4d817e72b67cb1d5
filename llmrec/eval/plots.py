"""PNG charts of evaluation results (matplotlib, Agg backend; no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmrec.io import atomic_path

GROUPS = ("head", "torso", "tail")


def _group_k(ks: Sequence[int]) -> int:
    """K used for the head/torso/tail bars: 10 when evaluated, else the largest K."""
    return 10 if 10 in ks else max(ks)


def plot_metrics(metrics_list: Sequence[dict], path: str | Path, title: str | None = None) -> Path:
    """HR@K and NDCG@K curves per ranker, plus head/torso/tail NDCG bars, in one PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for m in metrics_list:
        ks = m["ks"]
        for ax, name in zip(axes[:2], ("HR", "NDCG")):
            ax.plot(ks, [m["metrics"][f"{name}@{k}"] for k in ks], marker="o", label=m.get("ranker", "?"))
    for ax, name in zip(axes[:2], ("HR", "NDCG")):
        ax.set_xlabel("K")
        all_ks = sorted({k for m in metrics_list for k in m["ks"]})
        ax.set_xscale("log")
        ax.set_xticks(all_ks, [str(k) for k in all_ks])
        ax.minorticks_off()
        ax.set_ylabel(f"{name}@K")
        ax.set_title(f"{name}@K")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    with_groups = [m for m in metrics_list if "popularity" in m]
    if with_groups:
        width = 0.8 / len(with_groups)
        for j, m in enumerate(with_groups):
            k = _group_k(m["ks"])
            groups = m["popularity"]["groups"]
            vals = [groups[g][f"NDCG@{k}"] for g in GROUPS]
            xs = [i + (j - (len(with_groups) - 1) / 2) * width for i in range(len(GROUPS))]
            ax.bar(xs, vals, width=width, label=f"{m.get('ranker', '?')} (NDCG@{k})")
        ns = with_groups[0]["popularity"]["groups"]
        ax.set_xticks(range(len(GROUPS)), [f"{g}\n(n={ns[g]['n']})" for g in GROUPS])
        ax.legend(fontsize=8)
    ax.set_title("by target popularity (train counts)")
    ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
