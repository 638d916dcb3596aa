"""benchmarks/gpu_check.sh on a CPU (--cpu-smoke): its checks pass on the shipped code, and a check fails, with a
non-zero exit status, when the stale-weights bug is put back on purpose."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

# Two runs of the GPU check script in its CPU smoke mode: minutes, so the integration tier.
pytestmark = [pytest.mark.full, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]


def run_check(tmp_path, **env_extra):
    out = tmp_path / "gc.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", **env_extra)
    r = subprocess.run(
        [str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    return r, (json.loads(out.read_text())["checks"] if out.exists() else [])


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    return run_check(tmp_path_factory.mktemp("gc"))


def test_cpu_smoke_passes_every_check_on_the_shipped_code(clean_run):
    r, checks = clean_run
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    names = {c["check"] for c in checks}
    assert {"weights-move/fp16", "weights-move/bf16", "preset/t4-qwen2.5-0.5b-gsm8k"} <= names
    moved = [c for c in checks if c["check"].startswith("weights-move")]
    assert all(c["weight_change"] > 0 and c["logp_change"] > 0 for c in moved)
    assert "checks passed" in r.stdout and "FAIL" not in r.stdout


def test_injected_stale_weights_fail_the_check_with_a_nonzero_exit(tmp_path):
    r, checks = run_check(tmp_path, GRPO_LAB_GPU_CHECK_INJECT="stale-weights")
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    failed = {c["check"] for c in checks if not c["ok"]}
    assert "weights-move/fp16" in failed and "weights-move/bf16" in failed
    assert "FAILED:" in r.stdout
