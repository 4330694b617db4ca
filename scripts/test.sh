#!/usr/bin/env bash
# Set up and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-browser.sh   # Debian's chromium for the end-to-end page test (skips itself if impossible)
# One intra-op thread per process: several test processes share 2 cores (torchrun, servers), and
# PyTorch's OpenMP threads slow down badly when a core they expect is busy.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
.venv/bin/python -m pytest -q "$@"
