#!/usr/bin/env bash
# Set up (a local .venv) and compile the example notebook to a KFP v2 pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
python -m kale_like examples/notebooks/wine_quality.ipynb --kfp -o out/wine_quality.yaml
echo "next: upload out/wine_quality.yaml to Kubeflow Pipelines, or read out/wine_quality_kfp.py"
