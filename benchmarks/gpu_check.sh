#!/usr/bin/env bash
# One-command GPU check (issue 7): no network, < 10 min on one GPU.
#   benchmarks/gpu_check.sh              # on a GPU machine: T4-preset shapes + the tiny pipeline
#   benchmarks/gpu_check.sh --cpu-smoke  # reduced shapes on a CPU, ~15 s: proves the script is not broken
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" benchmarks/gpu_check.py "$@"
