#!/usr/bin/env bash
# Set up and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
TINCT_EXTRAS=${TINCT_EXTRAS:-all} bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
