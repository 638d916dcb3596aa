"""Which containment this machine allows, detected once per process (see ``grpo_lab.sandbox`` for what each
mode contains), and the command line that starts the harness in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

# Strongest first. Every mode also installs the harness's audit hook and applies the rlimits.
MODES = ("namespaces+uid", "bwrap", "userns", "ctypes-userns", "audit-hook")
_NS_FLAGS = ["--net", "--pid", "--fork", "--kill-child", "--mount"]
_MODE_LOCK = threading.Lock()
_MODE: str | None = None


def _probe(cmd: list[str]) -> bool:
    try:
        return (
            subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def isolation_mode() -> str:
    """The strongest containment this machine allows (cached): one of ``MODES``, or ``none`` off POSIX.

    ``GRPO_LAB_SANDBOX_MODE`` forces a mode (the tests use it to exercise every fallback). A forced mode that
    cannot start here makes ``run_tests`` report ``error`` with the reason; it never silently degrades.
    """
    global _MODE
    forced = os.environ.get("GRPO_LAB_SANDBOX_MODE")
    if forced:
        if forced not in MODES:
            raise ValueError(f"GRPO_LAB_SANDBOX_MODE={forced!r}: choose one of {MODES}")
        return forced
    with _MODE_LOCK:
        if _MODE is None:
            _MODE = _detect_mode()
        return _MODE


def available_modes() -> list[str]:
    """Every mode that starts a working child on this machine, strongest first (``audit-hook`` on POSIX
    always). Probes each one (a fraction of a second each); not cached."""
    return [m for m in MODES if _works(m)] if os.name == "posix" else []


def _unshare() -> str | None:
    return shutil.which("unshare") or next(
        (p for p in ("/usr/bin/unshare", "/bin/unshare") if os.path.exists(p)), None
    )


def _works(mode: str) -> bool:
    linux = sys.platform.startswith("linux")
    mount_tmp = [
        sys.executable,
        "-I",
        "-S",
        "-c",
        "import ctypes,os; l=ctypes.CDLL(None); assert l.mount(b'tmpfs', b'/tmp', b'tmpfs', 0, b'size=1m') == 0",
    ]
    if mode == "namespaces+uid":
        return linux and os.geteuid() == 0 and bool(_unshare()) and _probe([_unshare(), *_NS_FLAGS, *mount_tmp])
    if mode == "bwrap":
        return (
            linux
            and bool(shutil.which("bwrap"))
            and _probe([*bwrap_prefix("/tmp/.grpo_lab_probe", 1), sys.executable, "-I", "-S", "-c", "pass"])
        )
    if mode == "userns":
        return linux and bool(_unshare()) and _probe([_unshare(), "--user", "--map-root-user", *_NS_FLAGS, *mount_tmp])
    if mode == "ctypes-userns":
        return linux and _probe(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                "import ctypes; assert ctypes.CDLL(None).unshare(0x10000000|0x40000000|0x20000) == 0",
            ]
        )
    return mode == "audit-hook" and os.name == "posix"


def _detect_mode() -> str:
    if os.name != "posix":
        return "none"
    return next(m for m in MODES if _works(m))


def bwrap_prefix(workdir: str, tmpfs_mb: int) -> list[str]:
    """bubblewrap (the sandbox of Flatpak): every namespace bwrap can create, all capabilities dropped, the
    whole file system bound read-only, fresh /dev and /proc, private size-limited tmpfs folders, a new
    session (no terminal to inject keystrokes into), killed when its parent dies."""
    size = str(int(tmpfs_mb) << 20)
    return [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--size",
        size,
        "--tmpfs",
        "/tmp",
        "--size",
        size,
        "--tmpfs",
        "/var/tmp",
        "--size",
        size,
        "--tmpfs",
        "/dev/shm",
        "--dir",
        workdir,
        "--chdir",
        workdir,
        "--",
    ]


def command(mode: str, python_argv: list[str], workdir: str, tmpfs_mb: int) -> list[str]:
    """The argv that starts ``python_argv`` (the harness) in ``mode``."""
    if mode == "namespaces+uid":
        return [_unshare() or "unshare", *_NS_FLAGS, *python_argv]
    if mode == "userns":
        return [_unshare() or "unshare", "--user", "--map-root-user", *_NS_FLAGS, *python_argv]
    if mode == "bwrap":
        return [*bwrap_prefix(workdir, tmpfs_mb), *python_argv]
    return list(python_argv)  # ctypes-userns unshares inside the harness; audit-hook needs nothing more


def _user_process_count() -> int:
    uid, n = os.getuid(), 0
    try:
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if os.stat(f"/proc/{d}").st_uid == uid:
                        n += 1
                except OSError:
                    pass
    except OSError:
        return 256
    return n
