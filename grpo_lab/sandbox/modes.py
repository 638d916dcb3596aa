"""Which containment this machine allows, detected once per process (see ``grpo_lab.sandbox``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

_MODE_LOCK = threading.Lock()
_MODE: str | None = None
MODES = ("namespaces+uid", "userns", "ctypes-userns", "audit-hook")
_NS_FLAGS = ["--net", "--pid", "--fork", "--kill-child", "--mount"]


def _probe(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def isolation_mode() -> str:
    """The strongest containment this machine allows (cached): one of ``MODES``, or ``none`` on non-POSIX.

    ``GRPO_LAB_SANDBOX_MODE`` forces a mode (tests use it to exercise the fallbacks).
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


def _detect_mode() -> str:
    if os.name != "posix":
        return "none"
    unshare = shutil.which("unshare") or next((p for p in ("/usr/bin/unshare", "/bin/unshare") if os.path.exists(p)), None)
    py = [sys.executable, "-I", "-S", "-c", "import ctypes,os; l=ctypes.CDLL(None); "
          "assert l.mount(b'tmpfs', b'/tmp', b'tmpfs', 0, b'size=1m') == 0"]
    if sys.platform.startswith("linux") and unshare:
        if os.geteuid() == 0 and _probe([unshare, *_NS_FLAGS, *py]):
            return "namespaces+uid"
        if _probe([unshare, "--user", "--map-root-user", *_NS_FLAGS, *py]):
            return "userns"
    if sys.platform.startswith("linux") and _probe(
        [sys.executable, "-I", "-S", "-c", "import ctypes; assert ctypes.CDLL(None).unshare(0x10000000|0x40000000) == 0"]
    ):
        return "ctypes-userns"
    return "audit-hook"


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
