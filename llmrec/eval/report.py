"""The comparison report (comparison.md): the metrics table, HR/NDCG per target popularity group
(head / torso / tail), per transition group, and the paired bootstrap of every model against each
reference baseline, overall and within each popularity group (the head/tail "seesaw")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llmrec.eval.metrics import DEFAULT_KS, GROUPS, example_metrics, paired_bootstrap, popularity_groups


def group_k(ks: Sequence[int]) -> int:
    """K of the per-group columns: 10 when evaluated, else the largest K."""
    return 10 if 10 in ks else max(ks)


def target_groups(targets: Sequence[str], popularity: Mapping[str, int], catalogue: Sequence[str],
                  head_frac: float = 0.2, tail_frac: float = 0.5) -> list[str]:
    """Popularity group of each example's target, as compute_metrics assigns it."""
    groups = popularity_groups(popularity, catalogue, head_frac, tail_frac)
    return [groups.get(t, "tail") for t in targets]


def paired_comparisons(rankings: Mapping[str, Sequence[Sequence[str]]], targets: Sequence[str],
                       references: Sequence[str], *, metric: str = "NDCG@10", n_boot: int = 1000,
                       seed: int = 0, groups: Sequence[str] | None = None,
                       group_order: Sequence[str] = GROUPS) -> list[dict]:
    """Every ranker that is not a reference against every reference, on the same examples: the
    paired bootstrap of the per-example `metric` (see metrics.paired_bootstrap). Each row has
    `group` "all"; with `groups` (one label per example, e.g. target_groups()) the comparison is
    repeated within each group of `group_order` that has examples."""
    _, _, cut = metric.partition("@")
    ks = [int(cut)] if cut else list(DEFAULT_KS)
    per = {r: [example_metrics(ranked, t, ks)[metric] for ranked, t in zip(lists, targets)]
           for r, lists in rankings.items()}
    subsets: list[tuple[str, list[int]]] = [("all", list(range(len(targets))))]
    if groups is not None:
        if len(groups) != len(targets):
            raise ValueError(f"{len(groups)} group labels for {len(targets)} examples")
        subsets += [(g, idx) for g in group_order if (idx := [i for i, x in enumerate(groups) if x == g])]
    out = []
    for r in rankings:
        if r in references:
            continue
        for ref in references:
            if ref not in per:
                continue
            for name, idx in subsets:
                boot = paired_bootstrap([per[r][i] for i in idx], [per[ref][i] for i in idx], n_boot=n_boot,
                                        seed=seed)
                out.append({"ranker": r, "reference": ref, "metric": metric, "group": name, **boot})
    return out


def significance_table(rows: Sequence[dict]) -> str:
    """Markdown of paired_comparisons() rows: the overall comparisons, then (when there are group
    rows) one row per ranker/reference with the difference and 95% interval in each group."""
    overall = [r for r in rows if r.get("group", "all") == "all"]
    if not overall:
        return ""
    lines = [f"Paired bootstrap over examples ({overall[0]['n_boot']} resamples): ranker minus reference.\n",
             "| ranker | reference | metric | difference | 95% interval | resamples not better |",
             "|---|---|---|---:|---|---:|"]
    for r in overall:
        lo, hi = r["ci95"]
        lines.append(f"| {r['ranker']} | {r['reference']} | {r['metric']} | {r['diff']:+.4f} | "
                     f"[{lo:+.4f}, {hi:+.4f}] | {r['p_not_better']:.3f} |")
    grouped = [r for r in rows if r.get("group", "all") != "all"]
    if not grouped:
        return "\n".join(lines) + "\n"
    names = list(dict.fromkeys(r["group"] for r in grouped))
    sizes = {r["group"]: r["n"] for r in grouped}
    cell = {(r["ranker"], r["reference"], r["group"]): r for r in rows}
    lines += ["", (f"The same, within each target popularity group ({overall[0]['metric']}: difference "
                  "[95% interval], share of resamples not better):\n"),
              "| ranker | reference | all | " + " | ".join(f"{g} (n={sizes[g]})" for g in names) + " |",
              "|---|---|" + "---|" * (len(names) + 1)]
    for r in overall:
        cells = []
        for g in ["all", *names]:
            c = cell.get((r["ranker"], r["reference"], g))
            cells.append(f"{c['diff']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] p={c['p_not_better']:.2f}"
                         if c else "")
        lines.append(f"| {r['ranker']} | {r['reference']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def group_table(metrics_list: Sequence[dict], k: int | None = None) -> str:
    """Markdown: HR@k and NDCG@k of every ranker overall and per target popularity group (head /
    torso / tail; item counts and example counts from the first result)."""
    with_groups = [m for m in metrics_list if "popularity" in m]
    if not with_groups:
        return ""
    k = k or group_k(sorted(set.intersection(*(set(m["ks"]) for m in with_groups))))
    first = with_groups[0]["popularity"]
    items = first.get("items_per_group", {})
    heads = [f"all (n={with_groups[0]['n_examples']})"]
    heads += [f"{g} (n={first['groups'][g]['n']}, {items.get(g, '?')} items)" for g in GROUPS]
    lines = [(f"HR@{k} / NDCG@{k} by target popularity (items ranked by training count: head = top "
             f"{first['head_frac']:.0%}, tail = bottom {first['tail_frac']:.0%}).\n"),
             "| ranker | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for m in with_groups:
        parts = [m["metrics"]] + [m["popularity"]["groups"].get(g, {}) for g in GROUPS]
        cells = [f"{p[f'HR@{k}']:.4f} / {p[f'NDCG@{k}']:.4f}" if f"HR@{k}" in p else "" for p in parts]
        lines.append(f"| {m['ranker']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def breakdown_table(metrics_list: Sequence[dict], metric: str = "NDCG@10",
                    sections: Sequence[str] = ("popularity", "transitions")) -> str:
    """Markdown table of `metric` per target popularity group and/or per transition group (the
    groups each result has; counts in the header come from the first result)."""
    def groups(m: dict, section: str) -> dict:
        return m.get("popularity", {}).get("groups", {}) if section == "popularity" else m.get(section, {})

    first = metrics_list[0] if metrics_list else {}
    labels = {"popularity": "target", "transitions": "transition"}
    cols = [(section, g, f"{g} {labels[section]} (n={v['n']})")
            for section in sections for g, v in groups(first, section).items() if v["n"]]
    if not cols:
        return ""
    what = " and ".join({"popularity": "target popularity (training counts)",
                         "transitions": "transition (a 'seen' transition is a last-history-item -> target step "
                                        "that occurs in training)"}[s] for s in sections)
    lines = [f"{metric} by {what}.\n", "| ranker | " + " | ".join(c[2] for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for m in metrics_list:
        cells = [f"{groups(m, s)[g][metric]:.4f}" if g in groups(m, s) else "" for s, g, _ in cols]
        lines.append(f"| {m['ranker']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare_table(metrics_list: Sequence[dict], ks: Sequence[int] | None = None) -> str:
    """Markdown table: one row per ranker, HR@K / NDCG@K columns, then MRR, valid rate, coverage@max K."""
    if not metrics_list:
        return ""
    ks = list(ks) if ks is not None else sorted(set.intersection(*(set(m["ks"]) for m in metrics_list)))
    kmax = max(ks)
    cols = [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks] + ["MRR"]
    head = ["ranker", "n"] + cols + ["valid", f"cov@{kmax}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for m in metrics_list:
        cov = m.get("coverage", {}).get(f"@{kmax}")
        row = [str(m.get("ranker", "?")), str(m.get("n_examples", ""))]
        row += [f"{m['metrics'][c]:.4f}" for c in cols]
        row += [f"{m['valid_rate']:.3f}" if "valid_rate" in m else "", f"{cov:.3f}" if cov is not None else ""]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def comparison_report(results: Sequence[dict], rankings: Mapping[str, Sequence[Sequence[str]]],
                      targets: Sequence[str], references: Sequence[str], *, ks: Sequence[int],
                      groups: Sequence[str] | None = None, seed: int = 0, n_boot: int = 1000) -> tuple[str, list[dict]]:
    """comparison.md's body and the paired rows: metrics table, paired bootstrap (overall and per
    popularity group), HR/NDCG per popularity group, NDCG per transition group."""
    metric = f"NDCG@{group_k(ks)}"
    paired = paired_comparisons(rankings, targets, references, metric=metric, seed=seed, n_boot=n_boot,
                                groups=groups)
    parts = [compare_table(results, ks), significance_table(paired), group_table(results, group_k(ks)),
             breakdown_table(results, metric, sections=("transitions",))]
    return "\n".join(p for p in parts if p), paired
