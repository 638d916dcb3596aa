"""``grpo_lab.env``: an entry point's process keeps and reuses the memory it frees; the library itself never
changes the allocator."""

import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from grpo_lab.env import reuse_freed_memory
if sys.argv[1] == "on":
    if not (reuse_freed_memory() and reuse_freed_memory()):  # applies, and a second call is harmless
        print("refused")
        sys.exit()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(64 << 18)  # 64 MiB, freed at once: the heap grows to hold it (settles within a few rounds)
f0 = faults()
for _ in range(10):
    torch.ones(64 << 18)
print(faults() - f0)
"""


def _faults(mode: str, env: dict[str, str]) -> str:
    """Page faults of ten 64 MiB allocations in a fresh process (so this one's allocator stays as it is)."""
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env)
    return out.stdout.split()[-1]


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="reuse_freed_memory tunes glibc's malloc; elsewhere it does nothing (tested below)",
)
def test_reuse_freed_memory_and_malloc_env_stop_page_faults_on_reallocation():
    """Ten 64 MiB tensors allocated and freed in turn: glibc maps each afresh unless the process keeps the block
    on the heap for the next one, by ``reuse_freed_memory`` or started with ``malloc_env()``. Compared with the
    default only (no absolute count): with transparent huge pages set to ``always`` a fresh map costs far
    fewer faults."""
    from grpo_lab.env import malloc_env

    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    on = _faults("on", base)
    if on == "refused":
        pytest.skip("this glibc refuses an mmap threshold above 32 MiB (see grpo_lab.env.malloc_env)")
    off, started = int(_faults("off", base)), int(_faults("off", {**base, **malloc_env()}))
    assert off > 100, off  # the default maps every block afresh
    assert int(on) < off / 10 and started < off / 10, (on, started, off)


def test_reuse_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    import grpo_lab.env as env

    monkeypatch.setattr(env, "_HEAP_KEPT", False)
    monkeypatch.setattr(env.platform, "libc_ver", lambda *a, **k: ("", ""))
    assert env.reuse_freed_memory() is False


def test_set_threads_leaves_the_allocator_alone(monkeypatch):
    """Notebooks call ``set_threads``: it must not change the allocator of a student's kernel."""
    import torch

    import grpo_lab.env as env

    monkeypatch.setattr(env, "reuse_freed_memory", lambda: pytest.fail("set_threads changed the allocator"))
    before = torch.get_num_threads()
    try:
        assert env.set_threads() >= 1
    finally:
        torch.set_num_threads(before)
