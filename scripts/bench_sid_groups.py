"""Head / torso / tail view of a `bench_sid_methods.py` folder, with paired intervals (no training).

    python scripts/bench_sid_groups.py --run runs/sid_collab_sci18 --methods rkmeans,identity,fused_cf,rqvae,rqvae_cf
    python scripts/bench_sid_groups.py --run runs/sid_collab_sci18 --methods rkmeans,identity,fused_cf,rqvae_cf \
        --baselines-from runs/sci18/eval --baselines sasrec,sasrec-sid,h2rec   # one table, reference sasrec

Reads each method's saved test rankings (RUN/METHOD/eval/predictions.jsonl, the same examples for every
method) and the prepared data (RUN/shared/data), then reports HR@10 / NDCG@10 overall and per target
popularity group (head = top 20% of items by training count, tail = bottom 50%, as `llmrec eval`), the
paired bootstrap of NDCG@10 of every method against the first, overall and within each group
(llmrec.eval.report.paired_comparisons), and how collaborative each SID map is: the share of an item's
10 nearest collaborative neighbours (PPMI-SVD of training interactions only) that share its first code,
and its first two codes. With `--baselines-from EVAL_DIR --baselines a,b` the rankings an `llmrec eval` of the
same data saved (EVAL_DIR/NAME/predictions.jsonl, any superset of the examples) join the table, restricted to
the bench's test examples (refused when one is missing or has another target), and the first baseline
becomes the reference. Prints the markdown tables and one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GROUPS = ("head", "torso", "tail")


def read_predictions(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows.sort(key=lambda r: r["i"])
    return [str(r["user"]) for r in rows], [str(r["target"]) for r in rows], [list(r["ranked"]) for r in rows]


def neighbour_prefix_share(sid_codes: dict[str, tuple[int, ...]], ids: list[str], collab, k: int = 10) -> list[float]:
    """Share of each item's k nearest collaborative neighbours sharing its first 1 and 2 codes."""
    import numpy as np

    S = collab @ collab.T
    np.fill_diagonal(S, -np.inf)
    nn = np.argpartition(-S, k, axis=1)[:, :k]
    codes = [sid_codes[i] for i in ids]
    out = []
    for depth in (1, 2):
        pref = np.array([hash(c[:depth]) for c in codes])
        out.append(float((pref[nn] == pref[:, None]).mean()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="the bench_sid_methods.py --run folder")
    ap.add_argument("--methods", required=True, help="comma list; the first is the reference")
    ap.add_argument("--baselines-from", default=None, help="an `llmrec eval` output folder (e.g. runs/sci18/eval)")
    ap.add_argument("--baselines", default="", help="comma list of rankers in --baselines-from; the first is the reference")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    from llmrec.data.store import load_prepared
    from llmrec.eval.metrics import example_metrics
    from llmrec.eval.report import paired_comparisons, target_groups
    from llmrec.io import LlmrecError
    from llmrec.sid.sidmap import SidMap
    from llmrec.sid.vectors import collaborative_vectors

    root = Path(args.run)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    prepared = load_prepared(root / "shared" / "data")
    catalogue = list(prepared.items)
    rankings, users, targets = {}, None, None
    for m in methods:
        u, t, r = read_predictions(root / m / "eval" / "predictions.jsonl")
        if users is not None and (u != users or t != targets):
            raise LlmrecError(f"{m}: evaluated on other test examples than {methods[0]}; rerun the bench once "
                              "for all methods")
        users, targets, rankings[m] = u, t, r
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    if baselines and not args.baselines_from:
        raise LlmrecError("--baselines needs --baselines-from EVAL_DIR (an `llmrec eval` output folder)")
    for b in baselines:  # restricted to the bench's examples, matched on (user, target)
        bu, bt, br = read_predictions(Path(args.baselines_from) / b / "predictions.jsonl")
        by_user = {u: (t, r) for u, t, r in zip(bu, bt, br)}
        missing = [u for u, t in zip(users, targets) if by_user.get(u, (None,))[0] != t]
        if missing:
            raise LlmrecError(f"{args.baselines_from}/{b}: {len(missing)} of the bench's test examples are missing or "
                              f"have another target (first: user {missing[0]}); evaluate {b} on the same data split")
        rankings[b] = [by_user[u][1] for u in users]
    methods = baselines + methods
    labels = target_groups(targets, prepared.split.item_popularity(), catalogue)
    per = {m: [example_metrics(r, t, [10]) for r, t in zip(rankings[m], targets)] for m in methods}
    table = {}
    for m in methods:
        cells = {"all": {k: sum(x[k] for x in per[m]) / len(targets) for k in ("HR@10", "NDCG@10")}}
        for g in GROUPS:
            idx = [i for i, x in enumerate(labels) if x == g]
            cells[g] = {k: sum(per[m][i][k] for i in idx) / max(len(idx), 1) for k in ("HR@10", "NDCG@10")}
        table[m] = cells
    paired = paired_comparisons(rankings, targets, [methods[0]], metric="NDCG@10", n_boot=args.n_boot,
                                seed=args.seed, groups=labels)
    seqs = {u: [x.item for x in s] for u, s in prepared.split.train.items()}
    collab = collaborative_vectors(seqs, catalogue, dim=64, seed=args.seed)
    coherence = {}
    for m in methods:
        if m in baselines:
            coherence[m] = None
            continue
        sm = SidMap.load(root / m / "sid" / "sid_map.json")
        coherence[m] = neighbour_prefix_share(sm.codes, catalogue, collab)

    n = {g: labels.count(g) for g in GROUPS}
    lines = [(f"Test examples: {len(targets)} (head {n['head']}, torso {n['torso']}, tail {n['tail']}); "
             "HR@10 / NDCG@10:\n"), "| ranker (LLM: its SIDs) | all | head | torso | tail | collab. neighbours sharing code 1 / codes 1-2 |",
             "|---|---:|---:|---:|---:|---:|"]
    for m in methods:
        c = table[m]
        lines.append(f"| {m} | " + " | ".join(f"{c[g]['HR@10']:.4f} / {c[g]['NDCG@10']:.4f}" for g in ("all", *GROUPS))
                     + (f" | {coherence[m][0]:.3f} / {coherence[m][1]:.3f} |" if coherence[m] else " | – |"))
    cell = {(p["ranker"], p["group"]): p for p in paired}
    lines += ["", (f"Paired bootstrap of NDCG@10 against {methods[0]} ({args.n_boot} resamples; difference "
              "[95% interval]):\n"), "| ranker | all | head | torso | tail |", "|---|---|---|---|---|"]
    for m in methods[1:]:
        lines.append(f"| {m} | " + " | ".join(
            f"{cell[(m, g)]['diff']:+.4f} [{cell[(m, g)]['ci95'][0]:+.4f}, {cell[(m, g)]['ci95'][1]:+.4f}]"
            for g in ("all", *GROUPS) if (m, g) in cell) + " |")
    md = "\n".join(lines)
    (root / ("sid_groups_vs_baselines.md" if baselines else "sid_groups.md")).write_text(md + "\n", encoding="utf-8")
    print(md)
    print(json.dumps({"run": str(root), "n_test": len(targets), "group_sizes": n, "metrics": table,
                      "collab_prefix_share": coherence, "paired_vs": {"reference": methods[0], "rows": paired}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
