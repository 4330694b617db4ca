#!/usr/bin/env bash
# Set up and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
TINCT_EXTRAS=${TINCT_EXTRAS:-all} bash scripts/setup.sh
bash scripts/install-browser.sh   # Debian's chromium for the end-to-end page test (skips itself if impossible)
.venv/bin/python -m pytest -q "$@"
