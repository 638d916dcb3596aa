#!/usr/bin/env bash
# One-command GPU check: GRPO must learn on SmolLM2 in bf16 and fp16 with both backends, in the dtype it claims;
# LoRA adapters stay fp32 and reload; the from-scratch trainer runs under gradient checkpointing; the T4 presets fit
# their memory at real shapes (printed against plan.estimate). Prints a table and exits 1 naming each failure.
# Offline by default (HF_HUB_OFFLINE=1; --no-offline to allow downloads); about 6-8 minutes on one GPU.
#   benchmarks/gpu_check.sh                    # on a GPU machine (pip install peft for the LoRA checks)
#   benchmarks/gpu_check.sh --cpu-smoke        # toy shapes on a CPU: proves the script itself works
#   benchmarks/gpu_check.sh --only learning/trl --json out.json
set -euo pipefail
cd "$(dirname "$0")/.."
# The interpreter: $PYTHON, else the repository's .venv, else `python`, else `python3` (images with only python3).
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
elif command -v python >/dev/null 2>&1; then PY=python
elif command -v python3 >/dev/null 2>&1; then PY=python3
else echo "gpu_check.sh: no Python found (tried \$PYTHON, .venv/bin/python, python, python3)" >&2; exit 2
fi
export TOKENIZERS_PARALLELISM=false
exec "$PY" benchmarks/gpu_check.py "$@"
