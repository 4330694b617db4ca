#!/usr/bin/env bash
# Create .venv (if missing) and install tinct with everything its tests need. Idempotent.
# torch is installed first, pinned, so that pip never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,${TINCT_EXTRAS:-all}]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import torch, tinct; print('tinct', tinct.__version__, '| torch', torch.__version__)"
