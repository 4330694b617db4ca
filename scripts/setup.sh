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
# pip's output is filtered of one harmless notice; a failing install stops here with pip's message.
pip_install() {
  local log
  log=$(mktemp)
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check "$@" >"$log" 2>&1; then
    grep -v "is ignored" "$log" >&2 || true
    rm -f "$log"
    echo "setup: 'pip install $*' failed (message above)" >&2
    exit 1
  fi
  grep -v "is ignored" "$log" || true
  rm -f "$log"
}
pip_install --upgrade pip
pip_install "torch==2.13.0"
pip_install -e ".[dev,${TINCT_EXTRAS:-all}]"
.venv/bin/python -c "import torch, tinct; print('tinct', tinct.__version__, '| torch', torch.__version__)"
