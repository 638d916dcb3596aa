"""The parent side of the sandbox: start the harness child, feed it, watch it, kill it, read its verdict."""

from __future__ import annotations

import json
import math
import os
import random
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from grpo_lab.sandbox.modes import _user_process_count, command, isolation_mode

HARNESS_PATH = str(Path(__file__).with_name("harness.py"))

STATUSES = ("passed", "failed", "error", "timeout", "killed")


@dataclass
class CodeResult:
    """The outcome of ``run_tests``.

    ``passed``: the tests ran to completion after the code and all asserts held. ``status``: one of
    ``passed`` / ``failed`` (an assert failed, or the run ended before the tests finished) / ``error``
    (the code or the tests raised something else: a syntax error, a ``MemoryError``...) / ``timeout``
    (wall-clock or CPU limit) / ``killed`` (a signal, or the output limit). ``stdout``/``stderr`` are
    truncated to ``max_output`` characters. ``reason`` says why in one line; ``isolation`` names the
    containment mode that ran (see the module docstring).
    """

    passed: bool
    status: str
    stdout: str = ""
    stderr: str = ""
    reason: str = ""
    isolation: str = ""
    returncode: int | None = None
    duration_s: float = 0.0
    limits: dict = field(default_factory=dict, repr=False)


def run_tests(
    code: str,
    tests: str,
    timeout_s: float = 5.0,
    *,
    memory_mb: int = 512,
    max_output: int = 10_000,
    max_output_total: int = 1_000_000,
    nproc: int = 16,
    file_mb: int = 16,
) -> CodeResult:
    """Run untrusted ``code`` followed by assert-based ``tests`` in a sandboxed child.

    ``passed`` iff the tests ran to their end after the code and every assert held, within ``timeout_s``
    seconds of wall-clock time (CPU time is capped near it too). ``memory_mb`` caps the address space,
    ``file_mb`` each file written, ``nproc`` the processes (in the ``namespaces+uid`` mode; elsewhere it is
    added to the user's current count), ``max_output`` the characters kept of stdout and stderr, and
    ``max_output_total`` the bytes the child may print before it is killed. Never raises for anything the
    code does; the module docstring lists what is and is not protected against.
    """
    t0 = time.monotonic()
    if not isinstance(code, str) or not isinstance(tests, str):
        return CodeResult(False, "error", reason="code and tests must be strings")
    mode = isolation_mode()
    if mode == "none":
        return CodeResult(
            False, "error", reason="the sandbox needs Linux or macOS (on Windows: WSL2 or Colab)", isolation=mode
        )
    workdir = tempfile.mkdtemp(prefix="grpo_lab_sbx_")
    limits = _limits(mode, timeout_s, memory_mb, file_mb, nproc)
    uid = random.SystemRandom().randrange(1 << 20, 1 << 30)
    nonce = secrets.token_hex(16)
    cmd = command(mode, [sys.executable, "-I", "-S", "-B", HARNESS_PATH], workdir, limits["tmpfs_mb"])
    status_r, status_w = os.pipe()
    payload = dict(
        mode=mode, workdir=workdir, limits=limits, uid=uid, status_fd=status_w, nonce=nonce, code=code, tests=tests
    )
    proc = None
    out = {"stdout": bytearray(), "stderr": bytearray(), "status": bytearray()}
    killed_for = None
    try:
        try:
            proc = _start(cmd, workdir, status_w)
        except OSError as e:
            return CodeResult(False, "error", reason=f"could not start the sandbox: {e}", isolation=mode)
        finally:
            os.close(status_w)
        writer = threading.Thread(target=_feed, args=(proc.stdin, json.dumps(payload).encode()), daemon=True)
        writer.start()
        killed_for = _collect(proc, status_r, out, t0 + timeout_s, max_output, max_output_total)
    finally:
        _clean_up(proc, status_r, workdir)
    duration = time.monotonic() - t0
    stdout = _truncate(out["stdout"], max_output)
    stderr = _truncate(out["stderr"], max_output)
    res = CodeResult(False, "failed", stdout, stderr, "", mode, proc.returncode, duration, limits)
    return _verdict(res, out["status"], killed_for, nonce, timeout_s, max_output_total)


def _limits(mode: str, timeout_s: float, memory_mb: int, file_mb: int, nproc: int) -> dict:
    """The child's resource limits (``run_tests`` explains the arguments); the harness applies them."""
    return {
        "cpu_s": int(math.ceil(timeout_s)) + 1,
        "memory_bytes": int(memory_mb) << 20,
        "file_bytes": int(file_mb) << 20,
        "tmpfs_mb": max(int(file_mb) * 4, 16),
        "nofile": 64,
        "nproc": int(nproc) if mode == "namespaces+uid" else _user_process_count() + int(nproc),
    }


def _start(cmd: list[str], workdir: str, status_w: int) -> subprocess.Popen:
    """Start the harness in its own session (so its whole process group can be killed), in ``workdir``, with a
    minimal environment and no inherited file descriptor but the status pipe's write end."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    return subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(status_w,),
        cwd=workdir,
        env=env,
        start_new_session=True,
        close_fds=True,
    )


def _collect(proc, status_r: int, out: dict, deadline: float, max_output: int, max_output_total: int) -> str | None:
    """Read the child's stdout, stderr and status pipe into ``out`` until they close, the deadline passes
    (returns "timeout") or the output passes ``max_output_total`` bytes (returns "output"); then wait for
    the child to exit within the deadline. Returns None when the child finished on its own."""
    total = 0
    killed_for = None
    sel = selectors.DefaultSelector()
    streams = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr", status_r: "status"}
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(streams)
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            killed_for = "timeout"
            break
        for key, _ in sel.select(timeout=min(left, 0.25)):
            try:
                chunk = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(key.fd)
                open_fds.discard(key.fd)
                continue
            name = streams[key.fd]
            total += len(chunk)
            buf = out[name]
            keep = (1 << 16) if name == "status" else max_output * 4
            if len(buf) < keep:
                buf += chunk[: keep - len(buf)]
        if total > max_output_total:
            killed_for = "output"
            break
    sel.close()
    if killed_for is None:
        try:
            proc.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            killed_for = "timeout"
    return killed_for


def _verdict(
    res: CodeResult, status: bytes, killed_for: str | None, nonce: str, timeout_s: float, max_output_total: int
) -> CodeResult:
    """Fill in ``res`` (output, return code and duration already set): a pass needs a "passed" report whose
    proof is this run's nonce and a clean exit; otherwise the first reason that explains the end wins."""
    rc, duration, limits, stderr = res.returncode, res.duration_s, res.limits, res.stderr
    reports = []
    for line in status.decode("utf-8", "replace").splitlines():
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[0] in STATUSES:
            reports.append({"status": parts[0], "proof": parts[1], "reason": parts[2]})
    if killed_for == "timeout":
        res.status, res.reason = "timeout", f"wall-clock limit of {timeout_s:g} s"
        return res
    if killed_for == "output":
        res.status, res.reason = "killed", f"printed more than {max_output_total} bytes"
        return res
    passed = [r for r in reports if r["status"] == "passed" and secrets.compare_digest(r["proof"], nonce)]
    if passed and rc == 0:
        res.passed, res.status, res.reason = True, "passed", passed[-1]["reason"]
        return res
    others = [r for r in reports if r["status"] in ("failed", "error")]
    if rc is not None and rc < 0:
        sig = -rc
        if sig in (signal.SIGXCPU,) or (sig == signal.SIGKILL and duration >= limits["cpu_s"] - 0.5):
            res.status, res.reason = "timeout", f"CPU-time limit ({signal.Signals(sig).name})"
        else:
            res.status, res.reason = "killed", f"killed by {signal.Signals(sig).name}"
        return res
    if others:
        res.status, res.reason = others[0]["status"], others[0].get("reason", "")
        return res
    if rc == 0:
        res.status, res.reason = "failed", "the process ended before the tests finished (exit() in the code?)"
    else:
        res.status, res.reason = "error", f"the process exited with code {rc} before the tests finished"
        if "MemoryError" in stderr:
            res.reason += " (MemoryError)"
    return res


def _clean_up(proc, status_r: int, workdir: str) -> None:
    """Kill whatever is left of the child (``_kill_group``), close every pipe, remove the working folder."""
    if proc is not None:
        _kill_group(proc)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass
    try:
        os.close(status_r)
    except OSError:
        pass
    shutil.rmtree(workdir, ignore_errors=True)


def _feed(pipe, data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except (OSError, ValueError):
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group; in the namespace modes first its PID namespace.

    There the direct child is ``unshare``, whose child is the namespace's init (our harness). Killing that
    init makes the kernel kill everything else in the namespace (``setsid`` daemons included) and
    ``unshare`` exits only once they are all gone, so waiting for it proves nothing was left behind.
    """
    if proc.poll() is None:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        for c in children:
            try:
                os.kill(int(c), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
        if children:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        proc.kill()
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not take this long
        pass


def _truncate(buf: bytes | bytearray, n: int) -> str:
    s = bytes(buf).decode("utf-8", "replace")
    return s if len(s) <= n else s[:n] + f"\n... [truncated, {len(s) - n}+ more characters]"


_FENCE_RE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.S | re.I)


def extract_code(text: str) -> str | None:
    """The last fenced code block of a completion (```` ```python ```` preferred, a bare ```` ``` ```` block
    accepted), or None. An unterminated last fence (a truncated completion) is not used."""
    if not isinstance(text, str):
        return None
    blocks = _FENCE_RE.findall(text)
    py = [b for b in re.findall(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)```", text, re.S | re.I)]
    chosen = py or blocks
    return chosen[-1] if chosen else None
