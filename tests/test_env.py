"""``env.keep_freed_memory``: freed large blocks stay mapped for reuse instead of going back to the system."""

import subprocess
import sys

import pytest

PROBE = r"""
import sys
import torch
from grpo_lab.env import keep_freed_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

applied = keep_freed_memory() if sys.argv[1] == "keep" else False
x = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
peak = rss_mb()
del x
print(applied, peak - rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_keep_freed_memory_keeps_a_freed_block_mapped():
    def run(mode):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
        applied, released = out.split()
        return applied == "True", float(released)

    applied, released_default = run("default")
    assert not applied and released_default > 48  # glibc unmaps a freed 64 MB block: the pages are gone
    applied, released_kept = run("keep")
    assert applied and released_kept < 16  # kept for the next allocation of that size: no new page faults
