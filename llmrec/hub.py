"""Model bundles: one folder with everything needed to recommend, and pushing it to the Hugging Face Hub.

A bundle holds the model (full weights or a PEFT adapter, safetensors only), the tokenizer with its
SID tokens, `sid_map.json`, the catalogue (`items.jsonl`), `llmrec_config.json` (fingerprints that
tie the three together, generation settings, provenance) and a model card (`README.md`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmrec.data.records import Item
from llmrec.io import LlmrecError, atomic_path, read_json, read_jsonl, sha256_json, write_json, write_jsonl
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "llmrec.bundle/1"
CONFIG_FILE = "llmrec_config.json"
ITEMS_FILE = "items.jsonl"
SID_MAP_FILE = "sid_map.json"
CARD_FILE = "README.md"
FORBIDDEN_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
DEFAULT_GENERATION = {"num_beams": 20, "max_history": 20, "template_index": 0}
# training leftovers never copied into a bundle
_SKIP = {"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"}


# ---- identity ----------------------------------------------------------------------------------
def catalogue_fingerprint(items: Mapping[str, Item]) -> str:
    """sha256 (16 hex) of the catalogue rows, independent of dict order."""
    return sha256_json(sorted((k, v.to_dict()) for k, v in items.items()))[:16]


def check_bundle_pairing(config: Mapping[str, Any], sid_map: SidMap, items: Mapping[str, Item],
                         where: str) -> None:
    """Raise unless the SidMap and catalogue are the ones recorded in llmrec_config.json."""
    want = config.get("sid_fingerprint")
    if want and want != sid_map.fingerprint:
        raise LlmrecError(f"{where}: {SID_MAP_FILE} has fingerprint {sid_map.fingerprint} but {CONFIG_FILE} "
                          f"records {want}; the bundle was edited or mixed up; re-save it with save_pretrained.")
    want = config.get("catalogue_fingerprint")
    got = catalogue_fingerprint(items)
    if want and want != got:
        raise LlmrecError(f"{where}: {ITEMS_FILE} has fingerprint {got} but {CONFIG_FILE} records {want}; "
                          "the catalogue does not belong to this model; re-save the bundle.")
    missing = [i for i in sid_map.item_ids if i not in items]
    if missing:
        raise LlmrecError(f"{where}: {len(missing)} items of {SID_MAP_FILE} are not in {ITEMS_FILE} "
                          f"(e.g. {missing[:3]}); the catalogue does not match the SidMap.")


def assert_safetensors_only(folder: str | Path) -> None:
    """Raise if a pickle-based weight file (.bin/.pt/...) is in the folder, or no .safetensors file is."""
    folder = Path(folder)
    bad = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in FORBIDDEN_SUFFIXES]
    if bad:
        raise LlmrecError(f"{folder}: pickle-based files {bad} are not allowed in a bundle; save with "
                          "safetensors (save_pretrained(safe_serialization=True)).")
    if not any(folder.rglob("*.safetensors")):
        raise LlmrecError(f"{folder}: no .safetensors weights found.")


def is_adapter_dir(folder: str | Path) -> bool:
    return (Path(folder) / "adapter_config.json").exists()


# ---- loading the model part ---------------------------------------------------------------------
def load_model_dir(model_dir: str | Path, sid_map: SidMap | None = None, device: str | None = None):
    """(model, tokenizer, sid_map) from a save_model folder: full weights or a PEFT adapter.

    Uses `llmrec.llm.load_model`; for an adapter folder it can not read, the base named in
    adapter_config.json is loaded, resized to the tokenizer (SID tokens) and the adapter applied.
    """
    from llmrec.llm import load_model

    model_dir = Path(model_dir)
    try:
        model, tok, sm = load_model(model_dir, sid_map)
    except LlmrecError:
        if not is_adapter_dir(model_dir):
            raise
        model, tok, sm = _load_adapter(model_dir, sid_map)
    if device:
        model.to(device)
    model.eval()
    return model, tok, sm


def _load_adapter(model_dir: Path, sid_map: SidMap | None):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmrec.llm.sid_tokens import SID_RECORD_KEY, check_sid_map, read_sid_record

    sid_map = sid_map or SidMap.load(model_dir / SID_MAP_FILE)
    check_sid_map(model_dir, sid_map)
    base = read_json(model_dir / "adapter_config.json").get("base_model_name_or_path")
    if not base:
        raise LlmrecError(f"{model_dir}/adapter_config.json names no base_model_name_or_path; re-save merged.")
    tok = AutoTokenizer.from_pretrained(model_dir)
    rec, _ = read_sid_record(model_dir)
    tok.init_kwargs[SID_RECORD_KEY] = rec
    try:
        model = AutoModelForCausalLM.from_pretrained(base)
    except OSError as e:
        raise LlmrecError(f"{model_dir}: adapter base {base!r} cannot be loaded ({e}); push/save the bundle "
                          "with --merge so it carries full weights.") from e
    if model.get_input_embeddings().weight.shape[0] < len(tok):
        model.resize_token_embeddings(len(tok), mean_resizing=False)
    model = PeftModel.from_pretrained(model, model_dir)
    check_sid_map(tok, sid_map)
    return model, tok, sid_map


def _needs_merge(model, merge: bool | None) -> bool:
    if not hasattr(model, "merge_and_unload"):
        return False
    if merge is not None:
        return merge
    base = getattr(getattr(model, "peft_config", {}).get("default"), "base_model_name_or_path", None) or ""
    # an adapter is only portable when its base is a Hub id (not a preset or a local path)
    return not ("/" in base and not Path(base).exists())


# ---- model card ---------------------------------------------------------------------------------
def _metrics_section(metrics: list[dict]) -> str:
    if not metrics:
        return "No evaluation results were recorded for this model (run `llmrec eval`).\n"
    try:
        from llmrec.eval.runner import compare_table

        table = compare_table(metrics)
    except Exception:  # noqa: BLE001 - fall back to raw numbers for an unexpected metrics layout
        table = ""
    if not table:
        rows = [f"- {m.get('ranker', '?')}: {json.dumps(m.get('metrics', m), default=str)[:800]}" for m in metrics]
        table = "\n".join(rows) + "\n"
    split = metrics[0].get("split", "test")
    return (f"Leave-one-out, full ranking over the catalogue, item-level hits ({split} split, "
            f"{metrics[0].get('n_examples', '?')} users).\n\n{table}")


def model_card(config: Mapping[str, Any], metrics: list[dict], repo_id: str | None = None) -> str:
    """README.md text: front matter, what the model is, metrics, data provenance, usage."""
    name = repo_id or config.get("name") or "llmrec-model"
    data = config.get("data") or {}
    src = data.get("source") or {}
    src_lines = []
    for k, v in (src.items() if isinstance(src, dict) else []):
        if isinstance(v, (dict, list)):
            v = json.dumps(v, default=str)
        src_lines.append(f"- `{k}`: {str(v)[:300]}")
    counts = data.get("counts") or {}
    gen = config.get("generation", {})
    load_arg = repo_id or "path/to/bundle"
    base = config.get("base") or "unknown"
    front = ["---", "library_name: transformers", "pipeline_tag: text-generation", "tags:", "- llmrec",
             "- recommendation", "- generative-recommendation", "- semantic-ids"]
    if isinstance(base, str) and "/" in base and not Path(base).exists():
        front.append(f"base_model: {base}")
    front.append("---")
    return "\n".join(front) + f"""

# {name}

A generative recommender built with llmrec: an LLM that answers with
Semantic IDs (SIDs), decoded under a trie constraint so every answer is a real catalogue item.

- Base model: `{base}`; weights: {config.get("weights", "full")} (safetensors)
- Catalogue: {config.get("num_items", "?")} items (`items.jsonl`, fingerprint `{config.get("catalogue_fingerprint")}`)
- SID map: {config.get("sid_levels")} codes per level (`sid_map.json`, fingerprint `{config.get("sid_fingerprint")}`)
- Generation: constrained beam search, num_beams={gen.get("num_beams")}, history window {gen.get("max_history")}

## Evaluation

{_metrics_section(metrics)}
## Training data

- Dataset: `{data.get("name", "unknown")}` (data fingerprint `{data.get("fingerprint", "?")}`)
- Counts: {json.dumps(counts) if counts else "n/a"}
- Split: {json.dumps(data.get("split", {}))}
{chr(10).join(src_lines) if src_lines else "- source: not recorded"}

## Usage

```python
from llmrec.serve import Recommender

rec = Recommender.from_pretrained("{load_arg}")
for r in rec.recommend(history=["<item id or title>", "<another>"], k=10):
    print(r.item_id, r.title, r.score)
print(rec.chat("I just bought a soldering station and flux, what else do I need?").text)
```

```bash
llmrec recommend --model {load_arg} --titles "first title;second title" -k 10
llmrec serve --model {load_arg} --port 8000   # OpenAI-compatible POST /v1/chat/completions
```
"""


# ---- writing a bundle ---------------------------------------------------------------------------
def save_bundle(out_dir: str | Path, *, items: Mapping[str, Item], model=None, tokenizer=None,
                sid_map: SidMap | None = None, model_dir: str | Path | None = None, merge: bool | None = None,
                generation: Mapping[str, Any] | None = None, metrics: list[dict] | None = None,
                data_manifest: Mapping[str, Any] | None = None, name: str | None = None,
                base: str | None = None, repo_id: str | None = None) -> Path:
    """Write a complete, reloadable bundle folder atomically; returns its path.

    Give either (model, tokenizer, sid_map) objects or `model_dir` (a `save_model` folder, copied
    as is unless `merge`). `merge=None` merges a PEFT adapter whose base is not a Hub id.
    """
    out_dir = Path(out_dir)
    if model is None and model_dir is None:
        raise LlmrecError("save_bundle needs a model (with tokenizer and sid_map) or model_dir.")
    with atomic_path(out_dir) as tmp:
        if model_dir is not None and not merge:
            model_dir = Path(model_dir)
            if not (model_dir / "config.json").exists() and not is_adapter_dir(model_dir):
                raise LlmrecError(f"{model_dir}: no config.json or adapter_config.json; not a saved model.")
            _copy_model_dir(model_dir, tmp)
            sid_map = SidMap.load(tmp / SID_MAP_FILE)
            from llmrec.llm.sid_tokens import check_sid_map

            check_sid_map(tmp, sid_map)
            weights = "adapter" if is_adapter_dir(tmp) else "full"
        else:
            if model is None:
                model, tokenizer, sid_map = load_model_dir(model_dir)
            if tokenizer is None or sid_map is None:
                raise LlmrecError("save_bundle(model=...) also needs tokenizer= and sid_map=.")
            from llmrec.llm import save_model

            weights = "adapter" if hasattr(model, "merge_and_unload") else "full"
            if _needs_merge(model, merge):
                from llmrec.llm.loading import merge_adapter

                model = merge_adapter(model)
                weights = "full (adapter merged)"
            save_model(model, tokenizer, sid_map, tmp)
        assert_safetensors_only(tmp)
        missing = [i for i in sid_map.item_ids if i not in items]
        if missing:
            raise LlmrecError(f"catalogue lacks {len(missing)} items of the SidMap (e.g. {missing[:3]}); pass the "
                              "items the SidMap was built from.")
        write_jsonl(tmp / ITEMS_FILE, (it.to_dict() for it in items.values()))
        rec = read_json(tmp / "llmrec_sid.json") if (tmp / "llmrec_sid.json").exists() else {}
        manifest = dict(data_manifest or {})
        config = {
            "format": BUNDLE_FORMAT,
            "name": name or out_dir.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "base": base or rec.get("base") or _model_base(tmp),
            "weights": weights,
            "sid_fingerprint": sid_map.fingerprint,
            "sid_levels": sid_map.level_sizes,
            "catalogue_fingerprint": catalogue_fingerprint(items),
            "num_items": len(items),
            "generation": {**DEFAULT_GENERATION, **dict(generation or {})},
            "data": {k: manifest.get(k) for k in ("name", "fingerprint", "source", "counts", "split", "created")
                     if k in manifest},
            "metrics": [{k: m.get(k) for k in ("ranker", "split", "n_examples", "metrics", "ks") if k in m}
                        for m in (metrics or [])],
        }
        write_json(tmp / CONFIG_FILE, config)
        (tmp / CARD_FILE).write_text(model_card(config, list(metrics or []), repo_id=repo_id), encoding="utf-8")
    log.info("bundle written: %s", out_dir)
    return out_dir


def _model_base(folder: Path) -> str | None:
    if is_adapter_dir(folder):
        return read_json(folder / "adapter_config.json").get("base_model_name_or_path")
    cfg = read_json(folder / "config.json") if (folder / "config.json").exists() else {}
    sid = cfg.get("llmrec_sid") or {}
    return sid.get("base") or cfg.get("_name_or_path") or None


def _copy_model_dir(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.iterdir()):
        if p.is_dir() or p.name in _SKIP or p.name in (ITEMS_FILE, CONFIG_FILE, CARD_FILE):
            continue  # checkpoints/ and training leftovers stay behind
        if p.suffix in FORBIDDEN_SUFFIXES:
            raise LlmrecError(f"{p}: pickle-based weights cannot go into a bundle; re-save with safetensors.")
        shutil.copy2(p, dst / p.name)


def find_run_model(run_dir: str | Path) -> Path:
    """The newest trained model of a run: RUN/grpo/model, else RUN/sft/model (or those folders)."""
    run_dir = Path(run_dir)
    for stage in ("grpo", "sft"):
        for cand in (run_dir / stage / "model", run_dir / stage):
            if (cand / "config.json").exists() or is_adapter_dir(cand):
                return cand
    raise LlmrecError(f"{run_dir}: no trained model in grpo/model or sft/model; run `llmrec train sft` first.")


def run_metrics(run_dir: str | Path) -> list[dict]:
    """Every metrics.json under RUN/eval (top level first)."""
    ev = Path(run_dir) / "eval"
    if not ev.exists():
        return []
    out = []
    for p in sorted(ev.rglob("metrics.json"), key=lambda p: (len(p.parts), str(p))):
        try:
            m = read_json(p)
        except LlmrecError:
            continue
        if isinstance(m, dict):
            out.append(m)
    return out


def bundle_from_run(run_dir: str | Path, out_dir: str | Path, *, merge: bool | None = None,
                    repo_id: str | None = None) -> Path:
    """Bundle a run: newest model, RUN/data items + manifest, RUN/eval metrics."""
    from llmrec.data.store import load_prepared

    run_dir = Path(run_dir)
    model_dir = find_run_model(run_dir)
    data = run_dir / "data"
    if (data / "manifest.json").exists():
        prepared = load_prepared(data)
        items, manifest = prepared.items, prepared.manifest
    elif (model_dir / ITEMS_FILE).exists():
        items = {d["id"]: Item.from_dict(d) for d in read_jsonl(model_dir / ITEMS_FILE)}
        manifest = {}
    else:
        raise LlmrecError(f"{run_dir}: no data/manifest.json; the catalogue is needed for the bundle.")
    return save_bundle(out_dir, items=items, model_dir=model_dir, merge=merge, metrics=run_metrics(run_dir),
                       data_manifest=manifest, name=run_dir.name, repo_id=repo_id)


# ---- reading a bundle ---------------------------------------------------------------------------
def resolve_bundle(path_or_repo_id: str | Path, *, revision: str | None = None, token: str | None = None,
                   endpoint: str | None = None) -> Path:
    """A local bundle folder, or a Hub repo downloaded with snapshot_download (then the same path)."""
    p = Path(str(path_or_repo_id)).expanduser()
    if p.exists():
        if not p.is_dir():
            raise LlmrecError(f"{p}: expected a bundle folder, got a file.")
        return p
    rid = str(path_or_repo_id)
    if rid.count("/") != 1 or rid.startswith((".", "/")):
        raise LlmrecError(f"{rid}: no such folder, and not a Hub repo id (USER/NAME).")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(rid, revision=revision, token=token, endpoint=endpoint))
    except Exception as e:
        raise LlmrecError(f"could not download {rid} from the Hugging Face Hub: {e}. Check the repo id, "
                          "HF_TOKEN for private repos, and that HF_HUB_OFFLINE is not set.") from e


def read_bundle(folder: str | Path) -> tuple[dict[str, Any], SidMap, dict[str, Item]]:
    """(config, sid_map, items) of a bundle, checked to belong together. A bare save_model folder
    (no llmrec_config.json) is accepted when items.jsonl is present."""
    folder = Path(folder)
    config = read_json(folder / CONFIG_FILE, "bundle config") if (folder / CONFIG_FILE).exists() else {}
    if not (folder / SID_MAP_FILE).exists():
        raise LlmrecError(f"{folder}: no {SID_MAP_FILE}; not an llmrec bundle (save one with save_pretrained).")
    if not (folder / ITEMS_FILE).exists():
        raise LlmrecError(f"{folder}: no {ITEMS_FILE} catalogue; save the bundle with save_pretrained / "
                          "llmrec push so the catalogue travels with the model.")
    sid_map = SidMap.load(folder / SID_MAP_FILE)
    items = {str(d["id"]): Item.from_dict(d) for d in read_jsonl(folder / ITEMS_FILE)}
    check_bundle_pairing(config, sid_map, items, str(folder))
    return config, sid_map, items


# ---- pushing ------------------------------------------------------------------------------------
def push_bundle(bundle_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
                endpoint: str | None = None, commit_message: str | None = None) -> str:
    """Create the repo (exist_ok) and upload the bundle folder; returns the repo URL.

    Token: `token`, else HF_TOKEN, else the one saved by `huggingface-cli login`.
    """
    from huggingface_hub import HfApi

    bundle_dir = Path(bundle_dir)
    read_bundle(bundle_dir)
    assert_safetensors_only(bundle_dir)
    if repo_id.count("/") != 1:
        raise LlmrecError(f"--repo-id {repo_id!r}: expected USER/NAME.")
    api = HfApi(endpoint=endpoint, token=token or os.environ.get("HF_TOKEN") or None)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=str(bundle_dir), repo_type="model",
                          commit_message=commit_message or f"llmrec bundle {bundle_dir.name}",
                          ignore_patterns=[".*", "**/.*"])
    except Exception as e:
        raise LlmrecError(f"push to {repo_id} failed: {e}. Set HF_TOKEN (write scope) or run "
                          "`huggingface-cli login`.") from e
    return str(url)
