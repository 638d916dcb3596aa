"""The machine a course process runs on: Colab or not, torch's threads, glibc malloc, installed versions.

The environment report of notebook 00 (which also asks ``models`` and ``tasks``) is
``grpo_lab.jobs.environment_report``: this module stays at the bottom of the floor plan."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def in_colab() -> bool:
    """True inside Google Colab (its kernel imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def package_version(dist: str) -> str:
    """The installed version of distribution ``dist``, or ``"not installed"``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def set_threads(default: int = 2) -> int:
    """Set torch's intra-op threads and return the number: ``GRPO_LAB_THREADS``, else ``OMP_NUM_THREADS``,
    else ``min(default, cores)``.

    Two threads suit the course's 2-core target; more only adds synchronisation on tiny matrices. When
    several processes share the cores (parallel tests), each must use one: OpenMP threads that outnumber
    the cores spin-wait on each other and a 30-second notebook took 12 minutes that way. Also calls
    ``reuse_freed_memory`` (a CPU training process should keep the memory it frees).
    """
    import torch

    n = os.environ.get("GRPO_LAB_THREADS") or os.environ.get("OMP_NUM_THREADS") or min(default, os.cpu_count() or 1)
    reuse_freed_memory()
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


_HEAP_KEPT = False


def reuse_freed_memory() -> bool:
    """Let this process keep the memory it frees and reuse it, instead of returning it to the kernel.

    glibc serves large blocks (above a threshold of 128 KiB to 32 MiB) with ``mmap`` and hands them back on
    ``free``, so every new activation, logits or gradient tensor of a training step arrives as fresh pages
    that the kernel must zero on first touch. On the course's 2-core machine that page-fault work made an
    elementwise product of two 12 MB tensors cost 2.3 ms instead of 0.9 ms, and the exponential of a 100 MB
    block 40 ms instead of 12 ms. ``mallopt(M_MMAP_THRESHOLD, 1 GiB)`` and ``mallopt(M_TRIM_THRESHOLD,
    2 GiB)`` keep such blocks on the heap, where the next step finds them already mapped: the caching that
    PyTorch's CUDA allocator does on a GPU. The cost is that the process holds on to its peak memory.

    Changes no arithmetic (tensors stay 64-byte aligned by PyTorch's allocator), so results are identical bit
    for bit. Idempotent; returns True where it applied (Linux with glibc), False elsewhere (macOS, Windows,
    musl), where it does nothing.
    """
    global _HEAP_KEPT
    if _HEAP_KEPT:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
    _HEAP_KEPT = bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) & bool(libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))
    return _HEAP_KEPT
