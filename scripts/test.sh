#!/usr/bin/env bash
# Set up and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian's chromium for the end-to-end page test: installed with apt-get when run as root (or with
# password-less sudo); TINCT_SKIP_BROWSER=1 skips the install (the browser test then skips itself).
if [ "${TINCT_SKIP_BROWSER:-0}" != "1" ]; then
  bash scripts/install-browser.sh
fi
# One intra-op thread per process: several test processes share 2 cores (torchrun, servers), and
# PyTorch's OpenMP threads slow down badly when a core they expect is busy.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
.venv/bin/python -m pytest -q "$@"
