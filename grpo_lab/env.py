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
    the cores spin-wait on each other. Leaves the memory allocator alone (``reuse_freed_memory`` is for
    entry points).
    """
    import torch

    n = os.environ.get("GRPO_LAB_THREADS") or os.environ.get("OMP_NUM_THREADS") or min(default, os.cpu_count() or 1)
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


# glibc malloc's policy for a CPU training process (``reuse_freed_memory``, ``malloc_env``).
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap, not from a fresh mmap
TRIM_THRESHOLD = (1 << 31) - 1  # the largest value mallopt's int takes: freed memory stays with the process
_HEAP_KEPT = False


def _glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def reuse_freed_memory() -> bool:
    """Let this process keep the memory it frees and reuse it, instead of returning it to the kernel.

    For entry points that own the process (``grpo-lab``'s ``main``, the benchmarks); the library never calls
    it, so importing grpo-lab leaves a Jupyter kernel's allocator as it was. A launcher that starts a new
    process sets the same policy with ``malloc_env()``.

    glibc serves blocks above its mmap threshold (128 KiB at first, then raised dynamically to at most
    32 MiB) with ``mmap`` and unmaps them on ``free``, so every large activation, logits or gradient tensor
    of a training step arrives as fresh pages that the kernel zeroes on first touch.
    ``mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)`` and ``mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)`` keep them
    on the heap, where the next step finds them already mapped: the caching PyTorch's CUDA allocator does on
    a GPU. The cost is that the process holds on to its peak memory. Measurements: ``benchmarks/step_times.md``.

    Changes no arithmetic (PyTorch aligns its tensors itself), so results are identical bit for bit.
    Idempotent; returns True where both settings applied (Linux with glibc), False elsewhere (macOS, Windows,
    musl, or a glibc that refuses the threshold: see ``malloc_env``), where it changes nothing.
    """
    global _HEAP_KEPT
    if _HEAP_KEPT:
        return True
    if not _glibc():
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
    mmap_ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    _HEAP_KEPT = mmap_ok and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _HEAP_KEPT


def malloc_env() -> dict[str, str]:
    """The environment variables that give a process started with them ``reuse_freed_memory``'s policy from
    its first allocation: ``{"MALLOC_MMAP_THRESHOLD_": ..., "MALLOC_TRIM_THRESHOLD_": ...}``, for launchers
    (the Makefile, the notebook renderer) to export. Setting them in a running process does nothing to it.

    Facts, from glibc's manual and ``mallopt(3)``: both variables are read once, at start-up, as aliases of the
    ``glibc.malloc.mmap_threshold`` and ``glibc.malloc.trim_threshold`` tunables (``GLIBC_TUNABLES``), and
    setting either switches off the dynamic threshold, as ``mallopt`` does. ``mallopt(3)`` documents an upper
    limit for the mmap threshold, ``DEFAULT_MMAP_THRESHOLD_MAX`` (``4 * 1024 * 1024 * sizeof(long)``: 32 MiB
    on 64-bit, 512 KiB on 32-bit systems). Older glibc releases enforce it: ``mallopt`` returns 0 and the
    variable is ignored, both leaving the default. Recent ones (2.36, the course's machine) accept larger
    values either way (``tests/test_env.py`` checks both routes). ``mallopt`` takes an ``int`` (at most 2**31 - 1) where the variables take a
    ``size_t``; the values here fit both. Other C libraries (musl, macOS, Windows) ignore the variables.
    """
    return {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
