"""benchmarks/gpu_check.sh on a CPU (--cpu-smoke): every check passes on the shipped code, and each defect put
back on purpose (GRPO_LAB_GPU_CHECK_INJECT) makes the check that guards against it fail with a non-zero exit; a
missing package is named with its fix; the launcher finds python3 where there is no `python`."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
HAVE_PEFT = importlib.util.find_spec("peft") is not None
# The smoke runs train several toy models on both backends (minutes): the integration tier (pytest.mark.full).


def run_check(tmp_path, *args, pythonpath: str | None = None, **env_extra):
    out = tmp_path / "gc.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    env.pop("GRPO_LAB_GPU_CHECK_INJECT", None)
    env.update(env_extra)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    cmd = [str(SCRIPT), "--cpu-smoke", "--json", str(out), *args]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    rows = {c["check"]: c for c in json.loads(out.read_text())["checks"]} if out.exists() else {}
    return r, rows


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    return run_check(tmp_path_factory.mktemp("gc"))


@pytest.mark.full
@pytest.mark.timeout(900)
def test_cpu_smoke_passes_every_check_on_the_shipped_code(clean_run):
    r, rows = clean_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for backend, dtype in [("grpo_lab", "bf16"), ("grpo_lab", "fp16"), ("trl", "bf16")]:
        for kind in ("learning", "dtype", "eval-precision"):
            assert rows[f"{kind}/{backend}/{dtype}"]["status"] == "PASS", rows[f"{kind}/{backend}/{dtype}"]
        learned = rows[f"learning/{backend}/{dtype}"]["numbers"]
        assert learned["reward_rise"] > 2 * learned["reward_rise_se"]
        assert learned["paired"]["diff"] > 0 and learned["after"] > learned["before"]
    # TRL's fp16 cannot run on a CPU (accelerate ignores it there): skipped, and the row says why
    assert rows["dtype/trl/fp16"]["status"] == "SKIP" and "skipped-on-CPU" in rows["dtype/trl/fp16"]["detail"]
    # the GPU presets by kind (their names belong to the presets): the full fine-tune runs, LoRA needs peft
    scratch = [r for n, r in rows.items() if n.startswith("scratch-checkpointing/")]
    memory = [r for n, r in rows.items() if n.startswith("memory/")]
    assert len(scratch) == 1 and scratch[0]["status"] == "PASS", scratch
    assert memory and all(r["status"] == "PASS" or (r["status"] == "SKIP" and not HAVE_PEFT) for r in memory), memory
    assert any(r["status"] == "PASS" for r in memory)
    assert rows["weights-move/bf16"]["numbers"]["logp_change"] > 0
    lora = rows["lora/trl/bf16"]
    assert lora["status"] == ("PASS" if HAVE_PEFT else "SKIP"), lora
    if not HAVE_PEFT:
        assert "pip install" in lora["detail"]
    summary = r.stdout.splitlines()[-2]  # "N PASS, 0 FAIL, N SKIP, 0 NOT RUN", then the total time
    assert " 0 FAIL" in summary and " 0 NOT RUN" in summary, summary


# Each defect with the --only filter that runs just the checks it must break, and the row that must fail.
INJECTIONS = [
    ("forward-wrapper", "eval-precision/trl/bf16", "eval-precision/trl/bf16"),
    ("no-cache", "scratch-checkpointing", "scratch-checkpointing/"),
    ("dtype", "dtype/trl/bf16", "dtype/trl/bf16"),
    ("stale-weights", "weights-move", "weights-move/bf16"),
]


@pytest.mark.full
@pytest.mark.timeout(900)
@pytest.mark.parametrize("defect,only,row", INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_each_injected_defect_fails_its_check_with_a_nonzero_exit(tmp_path, defect, only, row):
    # Three learning steps are enough to see a dtype or a forward wrapper: only that row is asserted here.
    args = ["--only", only, "--learn-steps", "3", "--eval-size", "50"]
    r, rows = run_check(tmp_path, *args, GRPO_LAB_GPU_CHECK_INJECT=defect)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    name = next(n for n in rows if n.startswith(row))  # the one row of that check (a preset's name may follow)
    assert rows[name]["status"] == "FAIL", rows[name]
    assert "FAILED:" in r.stdout and name in r.stdout.splitlines()[-2]


@pytest.mark.full
@pytest.mark.timeout(600)
def test_a_missing_package_is_named_with_its_fix_and_a_required_check_fails_the_run(tmp_path):
    """trl made unimportable (a shadowing module that raises ImportError): the TRL checks do not run, the output
    names the install command, and the exit is non-zero because they were required; no model is built."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "trl.py").write_text("raise ImportError('No module named trl (hidden by the test)')\n")
    r, rows = run_check(tmp_path, "--only", "dtype/trl/bf16", pythonpath=str(shadow))
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert rows["dtype/trl/bf16"]["status"] == "NOT RUN"
    assert "pip install" in rows["dtype/trl/bf16"]["detail"] and "missing: trl" in r.stdout


@pytest.mark.full
@pytest.mark.timeout(600)
def test_a_missing_optional_package_only_skips_its_checks_in_the_smoke_run(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "peft.py").write_text("raise ImportError('No module named peft (hidden by the test)')\n")
    r, rows = run_check(tmp_path, "--only", "lora", pythonpath=str(shadow))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert {rows[n]["status"] for n in ("lora/trl/bf16", "lora-eval/bf16")} == {"SKIP"}
    assert 'pip install "grpo-lab[lora]"' in rows["lora/trl/bf16"]["detail"]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("dirname") is None, reason="needs bash")
def test_launcher_falls_back_to_python3_when_there_is_no_python_and_no_venv(tmp_path):
    """A copy of gpu_check.sh in a layout without .venv, on a PATH whose only interpreter is a python3 shim."""
    sh = tmp_path / "repo" / "benchmarks" / "gpu_check.sh"
    sh.parent.mkdir(parents=True)
    shutil.copy(SCRIPT, sh)
    only = tmp_path / "bin"
    only.mkdir()
    (only / "python3").write_text('#!/bin/sh\necho "python3 shim ran $*"\n')
    (only / "python3").chmod(0o755)
    (only / "dirname").symlink_to(shutil.which("dirname"))
    r = subprocess.run([shutil.which("bash"), str(sh), "--x"], env={"PATH": str(only)}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "python3 shim ran benchmarks/gpu_check.py --x"
    (only / "python3").unlink()
    r = subprocess.run([shutil.which("bash"), str(sh)], env={"PATH": str(only)}, capture_output=True, text=True)
    assert r.returncode == 2 and "no Python found" in r.stderr
