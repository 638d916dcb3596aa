"""``grpo-lab train --resume``: a run killed mid-run, or mid-write of a checkpoint, and resumed from its folder
ends with the same weights, accuracy and steps as a run that was never interrupted.

The kill is real: ``grpo-lab train`` runs in a child process that gets SIGKILL. Where it dies is chosen by a
wrapper around ``torch.save`` that lives only in this test (the library has no test hook): when the writer
starts on the second checkpoint (``checkpoint-4``), the child either stops and waits to be killed from outside
(case "mid-run": ``checkpoint-2`` is complete on disk) or writes half of the file and kills itself (case
"mid-write": a torn checkpoint is on disk).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ARGS = [
    "train",
    "--preset",
    "cpu-addition",
    "--backend",
    "grpo_lab",
    "--steps",
    "6",
    "--save-steps",
    "2",
    "--eval-size",
    "16",
    "--seed",
    "1",
    "--set",
    "per_device_train_batch_size=16",
    "--set",
    "eval_steps=0",
    "--set",
    "learning_rate=1e-3",
    "--no-progress",
]

CHILD = """
import os, signal, sys, time
from pathlib import Path
import torch

mode, marker = sys.argv[1], Path(sys.argv[2])
real_save = torch.save

def save(obj, f, *args, **kwargs):
    if mode != "none" and "checkpoint-4" in str(f) and not marker.exists():
        marker.write_text(str(f))
        if mode == "pause":  # checkpoint-2 is complete: wait for the test's SIGKILL
            time.sleep(600)
        real_save(obj, f, *args, **kwargs)  # mode "torn": half a file, then die
        size = os.path.getsize(f)
        with open(f, "r+b") as fh:
            fh.truncate(size // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)

torch.save = save
from grpo_lab import cli
sys.exit(cli.main(sys.argv[3:]))
"""


def _env() -> dict:
    return {**os.environ, "GRPO_LAB_THREADS": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def warm_start(tmp_path_factory) -> Path:
    """A tiny model with a short SFT: it gets some samples right, so GRPO's groups have signal and every step
    moves the weights (an untrained model scores 0 everywhere and would not move at all)."""
    from grpo_lab.models import build_tiny_model
    from grpo_lab.sft import sft_train
    from grpo_lab.tasks import get_task

    folder = tmp_path_factory.mktemp("resume") / "warm"
    model, tok = build_tiny_model("nano", seed=0)
    sft_train(model, tok, get_task("addition"), max_steps=300, batch_size=64, learning_rate=3e-3, progress=False)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _train(out: Path, mode: str, warm: Path) -> subprocess.Popen:
    marker = out.parent / f"{out.name}.marker"
    cmd = [sys.executable, "-c", CHILD, mode, str(marker), *ARGS, "--init", str(warm), "--out", str(out)]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "final" / "model.safetensors")


def _same_run(a: Path, b: Path, warm: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    from safetensors.torch import load_file

    w0 = load_file(warm / "model.safetensors")
    assert any(not torch.equal(w0[k], wa[k]) for k in wa), "GRPO did not move the weights: the test proves nothing"
    ra, rb = (json.loads((p / "report.json").read_text()) for p in (a, b))
    for key in ("accuracy_before", "accuracy_after", "steps", "status", "samples"):
        assert ra[key] == rb[key], key
    timings = ("step_time", "rollout_seconds", "reward_seconds")  # wall-clock times differ between any two runs
    strip = [{k: v for k, v in r.items() if k not in timings} for r in ra["history"]]
    assert strip == [{k: v for k, v in r.items() if k not in timings} for r in rb["history"]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, warm_start):
    out = tmp_path_factory.mktemp("resume") / "whole"
    proc = _train(out, "none", warm_start)
    log, _ = proc.communicate()
    assert proc.returncode == 0, log
    return out


def resume_args(out: Path, warm: Path, mode: str) -> list[str]:
    """ "pause": ``grpo-lab train --resume DIR`` alone (preset, knobs, init model, held-out size and backend come
    from DIR/report.json); "torn": the original command line plus ``--resume DIR``."""
    if mode == "pause":
        return ["train", "--resume", str(out), "--no-progress"]
    return [*ARGS, "--init", str(warm), "--resume", str(out)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pause", "torn"])
def test_a_killed_run_resumes_to_the_same_weights_and_report(tmp_path, uninterrupted, warm_start, mode):
    out = tmp_path / "run"
    proc = _train(out, mode, warm_start)
    marker = tmp_path / "run.marker"
    while not marker.exists() and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), proc.communicate()[0]
    if mode == "pause":
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "final").exists() and json.loads((out / "report.json").read_text())["status"] != "done"

    resumed = subprocess.run(
        [sys.executable, "-m", "grpo_lab.cli", *resume_args(out, warm_start, mode)],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stdout and "checkpoint-2" in resumed.stdout
    _same_run(out, uninterrupted, warm_start)
    assert json.loads((out / "report.json").read_text())["resumed_from"].endswith("checkpoint-2")


def test_resume_names_a_folder_without_checkpoints(tmp_path):
    from grpo_lab.errors import MissingDataError
    from grpo_lab.jobs.backends import checkpoint_to_resume

    with pytest.raises(MissingDataError, match="--save-steps"):
        checkpoint_to_resume(tmp_path, None)
    assert checkpoint_to_resume(True, tmp_path) is None  # nothing yet: start from the beginning
    (tmp_path / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    (tmp_path / "checkpoints" / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoints" / "tmp-checkpoint-5").mkdir()  # a torn write never counts
    (tmp_path / "checkpoints" / "checkpoint-4").mkdir()  # nor a folder without its trainer state
    found = tmp_path / "checkpoints" / "checkpoint-3"
    assert checkpoint_to_resume(True, tmp_path) == found == checkpoint_to_resume(tmp_path, None)
    assert checkpoint_to_resume(found, None) == found


@pytest.mark.slow
def test_trl_resume_continues_the_step_counter(tmp_path):
    from grpo_lab import jobs, presets

    p = presets.get_preset("cpu-addition").replace(
        model="tiny:nano", grpo={"max_steps": 2, "save_steps": 1, "per_device_train_batch_size": 16, "eval_steps": 0}
    )
    first = jobs.run_train("trl", p, out=tmp_path, eval_size=8, progress=False)
    assert first["steps"] == 2 and (tmp_path / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()
    again = jobs.run_train("trl", p, steps=4, resume=tmp_path, eval_size=8, progress=False)
    assert again["steps"] == 4 and again["resumed_from"].endswith("checkpoint-2")
    assert [r["step"] for r in again["history"] if "reward" in r] == [3, 4]  # TRL's log resumes at step 3


def test_keep_latest_checkpoints_leaves_the_newest_and_torn_writes_alone(tmp_path):
    from grpo_lab.jobs import KeepLatestCheckpoints

    for name in ("checkpoint-2", "checkpoint-10", "checkpoint-4", "tmp-checkpoint-12"):
        (tmp_path / name).mkdir()
    KeepLatestCheckpoints(tmp_path, keep=1)({"step": 11})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "tmp-checkpoint-12"]
