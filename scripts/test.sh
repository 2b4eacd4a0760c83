#!/usr/bin/env bash
# Set up (a local .venv with the test extras) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
KALE_LIKE_EXTRAS=test source scripts/setup_env.sh
python -m pytest -n 2 "$@"
