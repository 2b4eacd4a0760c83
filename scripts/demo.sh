#!/usr/bin/env bash
# Set up (a local .venv), compile the example notebook to a KFP v2 pipeline and run it locally.
set -euo pipefail
cd "$(dirname "$0")/.."
KALE_LIKE_EXTRAS=examples source scripts/setup_env.sh
python -m kale_like examples/notebooks/wine_quality.ipynb --kfp -o out/wine_quality.yaml --run --store out/.kale_like
echo "next: upload out/wine_quality.yaml to Kubeflow Pipelines, or read out/wine_quality_kfp.py"
