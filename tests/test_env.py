"""``grpo_lab.env``: a CPU training process keeps and reuses the memory it frees."""

import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from grpo_lab.env import reuse_freed_memory
if sys.argv[1] == "on":
    assert reuse_freed_memory() and reuse_freed_memory()  # applies, and a second call is harmless
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(64 << 18)  # 64 MiB, freed at once: the heap grows to hold it (settles within a few rounds)
f0 = faults()
for _ in range(10):
    torch.ones(64 << 18)
print(faults() - f0)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="reuse_freed_memory tunes glibc's malloc; elsewhere it does nothing (tested below)",
)
def test_reuse_freed_memory_stops_page_faults_on_reallocation():
    """Ten 64 MiB tensors allocated and freed in turn: glibc maps each afresh (16,384 page faults apiece)
    unless ``reuse_freed_memory`` keeps the block on the heap for the next one."""
    counts = {
        mode: int(
            subprocess.run(
                [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )
        for mode in ("off", "on")
    }
    assert counts["off"] > 10 * 16384 * 0.9, counts
    assert counts["on"] < counts["off"] / 20, counts


def test_reuse_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    import grpo_lab.env as env

    monkeypatch.setattr(env, "_HEAP_KEPT", False)
    monkeypatch.setattr(env.platform, "libc_ver", lambda *a, **k: ("", ""))
    assert env.reuse_freed_memory() is False
