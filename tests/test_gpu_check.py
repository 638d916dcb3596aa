"""benchmarks/gpu_check.sh runs on a CPU in its reduced mode (issue 7): the script is not broken."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_smoke(tmp_path):
    # --skip-pipeline keeps this test short; the tiny pipeline is jobs.run_demo, exercised by the demo tests.
    out = tmp_path / "gc.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", "--skip-pipeline", "--json", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "rollout tokens/s" in r.stdout and "seconds per GRPO step" in r.stdout
    res = json.loads(out.read_text())["shapes"]
    assert res["smoke"] and res["rollout_tokens_per_s"] > 0 and res["grpo_step_s"] > 0
