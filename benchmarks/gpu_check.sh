#!/usr/bin/env bash
# One-command GPU check: runs the shipped training code (mixed-precision steps, the T4 presets under a 14.5 GiB
# cap, the LoRA presets, the TRL backend in fp16), prints PASS/FAIL per check and exits 1 when one fails.
# No network; under 10 minutes on one GPU.
#   benchmarks/gpu_check.sh              # on a GPU machine (pip install peft for the LoRA presets)
#   benchmarks/gpu_check.sh --cpu-smoke  # toy shapes on a CPU: proves the script itself works
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" benchmarks/gpu_check.py "$@"
