"""Data-parallel TRL backend: `accelerate launch` with 2 CPU processes (gloo) runs the capstone for 2 steps."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from grpo_lab.tasks import local_gsm8k_path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free right now: the OS picks one when we bind to port 0. A fixed port fails whenever
    another run (a parallel test worker, a second checkout) holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.full
@pytest.mark.skipif(local_gsm8k_path() is None, reason="no local GSM8K copy")
def test_two_cpu_processes_train_and_agree(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cfg = tmp_path / "cpu2.yaml"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "launch_trl_ddp.py"), "--write-accelerate-config", str(cfg)],
        check=True,
        capture_output=True,
    )
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(accelerate),
        "launch",
        "--config_file",
        str(cfg),
        "--main_process_port",
        str(free_port()),
        str(ROOT / "scripts" / "launch_trl_ddp.py"),
        "--preset",
        "cpu-tiny-gsm8k",
        "--steps",
        "2",
        "--reward",
        "digits",
        "--out",
        str(tmp_path),
    ]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert [x["rank"] for x in recs] == [0, 1] and all(x["world_size"] == 2 for x in recs)
    assert all(x["steps"] == 2 and len(x["history"]) == 2 for x in recs)
    # same start, weights moved (the digits reward varies within groups), and DDP kept the replicas equal
    assert recs[0]["checksum_init"] == recs[1]["checksum_init"]
    assert recs[0]["checksum"] != recs[0]["checksum_init"]
    assert abs(recs[0]["checksum"] - recs[1]["checksum"]) < 1e-6 * abs(recs[0]["checksum"])


def test_writes_a_multi_cpu_accelerate_config(tmp_path):
    cfg = tmp_path / "cpu2.yaml"
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "launch_trl_ddp.py"), "--write-accelerate-config", str(cfg)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "num_processes: 2" in cfg.read_text()
