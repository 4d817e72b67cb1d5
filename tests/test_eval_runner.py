"""evaluate(): metrics.json, PNG, resumable predictions, comparison table."""

import json

import pytest

from llmrec.baselines.popular import MostPopular
from llmrec.data.records import Example
from llmrec.eval.runner import compare_table, evaluate


class Interrupt(Exception):
    pass


class Scripted:
    """Ranks the target at position (index % 4) + 1; can crash after N calls; counts what it saw."""

    name = "scripted"

    def __init__(self, crash_after: int | None = None):
        self.calls = 0
        self.seen: list[str] = []
        self.crash_after = crash_after

    def rank(self, examples, k):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise Interrupt()
        self.calls += 1
        out = []
        for e in examples:
            pos = int(e.user) % 4
            fill = [f"i{j}" for j in range(k + 1) if f"i{j}" != e.target]
            out.append((fill[:pos] + [e.target] + fill[pos:])[:k])
            self.seen.append(e.user)
        return out


CAT = [f"i{j}" for j in range(30)]
POP = {f"i{j}": 30 - j for j in range(30)}
EXAMPLES = [Example(str(u), [f"i{(u + 1) % 30}"], f"i{u % 30}") for u in range(50)]


def test_resume_gives_identical_metrics(tmp_path):
    full = evaluate(Scripted(), EXAMPLES, catalogue=CAT, popularity=POP, out_dir=tmp_path / "a",
                    batch_size=8, progress=False)
    out = tmp_path / "b"
    with pytest.raises(Interrupt):
        evaluate(Scripted(crash_after=2), EXAMPLES, catalogue=CAT, popularity=POP, out_dir=out,
                 batch_size=8, progress=False)
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 16 and not (out / "metrics.json").exists()
    # simulate a crash mid-write: a half line at the end is dropped on resume
    with open(out / "predictions.jsonl", "a") as f:
        f.write('{"i": 16, "user": "16", "tar')
    again = Scripted()
    res = evaluate(again, EXAMPLES, catalogue=CAT, popularity=POP, out_dir=out, batch_size=8, progress=False)
    assert again.seen == [str(u) for u in range(16, 50)]
    assert res["counts"]["newly_predicted"] == 34
    assert res["metrics"] == full["metrics"]
    assert res["popularity"] == full["popularity"]
    assert res["metrics"]["HR@1"] == pytest.approx(13 / 50)  # users 0, 4, ..., 48
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["ranker"] == "scripted" and saved["split"] == "test" and saved["metrics"] == res["metrics"]
    assert (out / "metrics.png").stat().st_size > 1000
    # a rerun with different examples starts over instead of mixing predictions
    third = Scripted()
    evaluate(third, EXAMPLES[:10], catalogue=CAT, popularity=POP, out_dir=out, batch_size=8, progress=False)
    assert third.seen == [str(u) for u in range(10)]


def test_most_popular_and_compare_table(tmp_path):
    res_mp = evaluate(MostPopular(POP, CAT), EXAMPLES, ks=(1, 5), catalogue=CAT, popularity=POP,
                      out_dir=tmp_path / "mp", data_fingerprint="abc", progress=False)
    # order i0, i1, ...: targets i0..i19 in 50 examples; i0 appears for users 0 and 30
    assert res_mp["metrics"]["HR@1"] == pytest.approx(2 / 50)
    assert res_mp["metrics"]["HR@5"] == pytest.approx(10 / 50)
    assert res_mp["coverage"]["@5"] == pytest.approx(5 / 30)
    assert res_mp["valid_rate"] == 1.0 and res_mp["data_fingerprint"] == "abc"
    res_s = evaluate(Scripted(), EXAMPLES, ks=(1, 5), catalogue=CAT, popularity=POP, progress=False)
    table = compare_table([res_mp, res_s])
    lines = table.strip().splitlines()
    assert lines[0].startswith("| ranker | n | HR@1 | HR@5 | NDCG@1 | NDCG@5 | MRR")
    assert lines[2].startswith("| popular | 50 | 0.0400 | 0.2000")
    assert lines[3].startswith("| scripted | 50 | 0.2600 | 1.0000")
