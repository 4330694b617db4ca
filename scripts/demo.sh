#!/usr/bin/env bash
# Set up and colorize the example photos with the shipped default model (no network needed
# once packages are installed). Results go to colorized/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tinct colorize examples/ -o colorized --overwrite "$@"
