"""The bundle's model card: huggingface_hub ModelCard with ModelCardData (license, datasets, base model,
model-index with this model's metrics per split) and a body that says what the model is, how it scored
next to the other rankers of its run, what it was trained on, and how to load it.

Metrics come in as plain dicts ({ranker, split, n_examples, metrics: {name: value}}), as recorded in
llmrec_config.json; nothing here reads evaluation files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from llmrec.bundle.paths import looks_local

CARD_METRICS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")
TASK = "Sequential recommendation"


def _is_hub_id(s: Any) -> bool:
    return isinstance(s, str) and s.count("/") == 1 and not looks_local(s)


def _metric_names(metrics: list[dict]) -> list[str]:
    present = {k for m in metrics for k in m.get("metrics", {})}
    names = [k for k in CARD_METRICS if k in present]
    return names or sorted(present)[:6]


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "n/a"


def evaluation_section(metrics: list[dict], model_ranker: str | None) -> str:
    """One markdown table per split: a row per ranker, this model's row in bold."""
    rows = [m for m in metrics if isinstance(m, Mapping) and isinstance(m.get("metrics"), Mapping)]
    if not rows:
        return "No evaluation results were recorded for this model (run `llmrec eval` before bundling).\n"
    names = _metric_names(rows)
    out = []
    for split in sorted({str(m.get("split", "test")) for m in rows}, key=lambda s: (s != "test", s)):
        part = [m for m in rows if str(m.get("split", "test")) == split]
        n = max((m.get("n_examples") or 0 for m in part), default=0)
        out.append(f"**{split}** split, {n} users: leave-one-out, full ranking over the catalogue, a hit is the "
                   "target item itself.\n")
        out.append("| ranker | " + " | ".join(names) + " |")
        out.append("|---|" + "---:|" * len(names))
        for m in part:
            me = m.get("ranker") == model_ranker
            cells = [_fmt(m["metrics"].get(k)) for k in names]
            label = f"**{m.get('ranker')} (this model)**" if me else str(m.get("ranker"))
            out.append(f"| {label} | " + " | ".join(f"**{c}**" if me else c for c in cells) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def eval_results(metrics: list[dict], model_ranker: str | None, dataset: str) -> list[EvalResult]:
    """model-index entries: this model's metrics, per split."""
    out = []
    for m in metrics:
        if m.get("ranker") != model_ranker or not isinstance(m.get("metrics"), Mapping):
            continue
        for k in _metric_names([m]):
            v = m["metrics"].get(k)
            if isinstance(v, (int, float)):
                out.append(EvalResult(task_type="text-generation", task_name=TASK, dataset_type=dataset,
                                      dataset_name=dataset, dataset_split=str(m.get("split", "test")),
                                      metric_type=k.lower().replace("@", "_at_"), metric_name=k,
                                      metric_value=round(float(v), 4)))
    return out


def model_card(config: Mapping[str, Any], repo_id: str | None = None) -> ModelCard:
    """ModelCard for a bundle's llmrec_config.json (no local paths: the config is already scrubbed)."""
    name = repo_id or config.get("name") or "llmrec-model"
    data = config.get("data") or {}
    dataset = str(data.get("name") or "unknown")
    base = config.get("base") or "unknown"
    metrics = list(config.get("metrics") or [])
    ranker = config.get("model_ranker")
    card_data = ModelCardData(
        model_name=name, license=config.get("license") or None, library_name="transformers",
        pipeline_tag="text-generation", base_model=base if _is_hub_id(base) else None,
        datasets=[dataset] if dataset != "unknown" else None,
        tags=["llmrec", "recommendation", "generative-recommendation", "semantic-ids"],
        eval_results=eval_results(metrics, ranker, dataset) or None)
    gen = config.get("generation", {})
    counts = data.get("counts") or {}
    src = data.get("source") or {}
    src_lines = [f"- `{k}`: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}"
                 for k, v in (src.items() if isinstance(src, Mapping) else [])]
    behaviors = config.get("behaviors") or []
    load_arg = repo_id or "path/to/bundle"
    body = f"""
# {name}

A generative recommender built with [llmrec](https://pypi.org/project/llmrec/): an LLM that answers with
Semantic IDs (SIDs), decoded under a trie constraint so every answer is a real catalogue item.

- Base model: `{base}`; weights: {config.get("weights", "full")} (safetensors)
- Catalogue: {config.get("num_items", "?")} items (`items.jsonl`, fingerprint `{config.get("catalogue_fingerprint")}`)
- SID map: {config.get("sid_levels")} codes per level (`sid_map.json`, fingerprint `{config.get("sid_fingerprint")}`)
- Generation: constrained beam search, num_beams={gen.get("num_beams")}, history window {gen.get("max_history")}
- Behaviours: {", ".join(behaviors) if behaviors else "none (one kind of interaction)"}

## Evaluation

{evaluation_section(metrics, ranker)}
## Training data

- Dataset: `{dataset}` (data fingerprint `{data.get("fingerprint", "?")}`)
- Counts: {json.dumps(counts) if counts else "n/a"}
- Split: {json.dumps(data.get("split", {}))}
{chr(10).join(src_lines) if src_lines else "- source: not recorded"}

## Usage

```python
from llmrec.serve import Recommender

rec = Recommender.from_pretrained("{load_arg}")
for r in rec.recommend(history=["<item id or title>", "<another>"], k=10):
    print(r.item_id, r.title, r.score)
print(rec.chat("I just bought <a title from items.jsonl>. What else do I need?").text)
```

```bash
llmrec recommend --model {load_arg} --titles "first title;second title" -k 10
llmrec serve --model {load_arg} --port 8000   # OpenAI-compatible POST /v1/chat/completions
```

## License

{config.get("license") or "not set"} for the weights in this folder; the base model and the dataset keep their
own terms.
"""
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")
