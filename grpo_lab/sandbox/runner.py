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
from pathlib import Path

from grpo_lab.sandbox.modes import command, isolation_mode
from grpo_lab.sandbox.verdict import FORBIDDEN_KINDS, STATUSES, CodeResult, _sched, _verdict  # noqa: F401

HARNESS_PATH = str(Path(__file__).with_name("harness.py"))


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
    overload_is_infra: bool = False,
) -> CodeResult:
    """Run untrusted ``code`` followed by assert-based ``tests`` in a sandboxed child.

    ``passed`` iff the tests ran to their end after the code and every assert held, within ``timeout_s``
    seconds of wall-clock time (CPU time is capped near it too). ``memory_mb`` caps the address space,
    ``file_mb`` each file written, ``nproc`` the processes (in the ``namespaces+uid`` mode; elsewhere it is
    added to the user's task count when the child sets its limits), ``max_output`` the characters kept of stdout and stderr, and
    ``max_output_total`` the bytes the child may print before it is killed. Never raises for anything the
    code does; the module docstring lists what is and is not protected against. A run the sandbox could not
    score (``status == "infra"``) says nothing about the code: score it again (``run_many`` does).
    ``overload_is_infra``: also report a wall-clock kill that the machine's load caused (the run had not
    finished setting itself up, or it got less than half of ``timeout_s`` on a CPU while waiting longer than
    that for one) as ``infra`` instead of ``timeout``; ``run_many`` sets it, as it runs those again with fewer
    at once. Off by default: alone, ``run_tests`` cannot do better, and its reason then says the machine was
    overloaded.
    """
    t0 = time.monotonic()
    if not isinstance(code, str) or not isinstance(tests, str):
        return CodeResult(False, "error", reason="code and tests must be strings")
    mode = isolation_mode()
    if mode == "none":
        return CodeResult(
            False, "error", reason="the sandbox needs Linux or macOS (on Windows: WSL2 or Colab)", isolation=mode
        )
    limits = _limits(mode, timeout_s, memory_mb, file_mb, nproc)
    nonce = secrets.token_hex(16)
    try:
        rc, out, watch = _run_child(mode, limits, nonce, code, tests, t0 + timeout_s, max_output, max_output_total)
    except _StartFailed as e:
        return CodeResult(False, "infra", reason=str(e), isolation=mode)
    duration = time.monotonic() - t0
    stdout = _truncate(out["stdout"], max_output)
    stderr = _truncate(out["stderr"], max_output)
    res = CodeResult(False, "failed", stdout, stderr, "", mode, rc, duration, limits)
    return _verdict(res, out["status"], watch, nonce, timeout_s, max_output_total, overload_is_infra)


class _StartFailed(Exception):
    """The harness could not be started (``_run_child``): nothing of the code ran, an ``infra`` result."""


def _run_child(
    mode: str, limits: dict, nonce: str, code: str, tests: str, deadline: float, max_output: int, max_output_total: int
) -> tuple[int | None, dict, _Watch]:
    """One run of the harness: a fresh working folder, the job (code, tests, nonce, limits) sent on its stdin,
    its stdout, stderr and status pipe collected until it ends or is killed (``_collect``), then everything
    cleaned up (``_clean_up``). Returns the child's return code, the collected bytes and the ``_Watch``;
    raises ``_StartFailed`` when the child could not be started."""
    workdir = tempfile.mkdtemp(prefix="grpo_lab_sbx_")
    uid = random.SystemRandom().randrange(1 << 20, 1 << 30)
    cmd = command(mode, [sys.executable, "-I", "-S", "-B", HARNESS_PATH], workdir, limits["tmpfs_mb"])
    status_r, status_w = os.pipe()
    go_r, go_w = os.pipe()
    payload = dict(
        mode=mode,
        workdir=workdir,
        limits=limits,
        uid=uid,
        status_fd=status_w,
        go_fd=go_r,
        nonce=nonce,
        code=code,
        tests=tests,
    )
    proc = None
    out = {"stdout": bytearray(), "stderr": bytearray(), "status": bytearray()}
    watch = _Watch(go_w)
    try:
        try:
            proc = _start(cmd, workdir, (status_w, go_r))
        except OSError as e:
            raise _StartFailed(f"could not start the sandbox: {e}") from None
        finally:
            os.close(status_w)
            os.close(go_r)
        writer = threading.Thread(target=_feed, args=(proc.stdin, json.dumps(payload).encode()), daemon=True)
        writer.start()
        _collect(proc, status_r, out, deadline, max_output, max_output_total, watch)
    finally:
        watch.close_go()
        _clean_up(proc, status_r, workdir)
    return proc.returncode, out, watch


def _limits(mode: str, timeout_s: float, memory_mb: int, file_mb: int, nproc: int) -> dict:
    """The child's resource limits (``run_tests`` explains the arguments); the harness applies them."""
    return {
        "cpu_s": int(math.ceil(timeout_s)) + 1,
        "memory_bytes": int(memory_mb) << 20,
        "file_bytes": int(file_mb) << 20,
        "tmpfs_mb": max(int(file_mb) * 4, 16),
        "nofile": 64,
        # namespaces+uid: an absolute cap for the dedicated uid; elsewhere the child adds it to its uid's task
        # count once its own thread exists (containment.limit_processes)
        "nproc": int(nproc),
        "nproc_relative": mode != "namespaces+uid",
    }


def _start(cmd: list[str], workdir: str, fds: tuple[int, ...]) -> subprocess.Popen:
    """Start the harness in its own session (so its whole process group can be killed), in ``workdir``, with a
    minimal environment and no inherited file descriptor but ``fds`` (the status pipe's write end and the go
    pipe's read end)."""
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
        pass_fds=fds,
        cwd=workdir,
        env=env,
        start_new_session=True,
        close_fds=True,
    )


class _Watch:
    """What the parent learns while the child runs: whether (and when) the harness said ``ready`` (the go byte
    is then sent on ``go_w``: no untrusted code runs before the parent has seen ``ready``), why the parent
    killed it (``killed_for``: "timeout" or "output"), and at a timeout how much CPU the child's tasks had
    used and how long they had waited for one (``sched``, from ``_sched``)."""

    def __init__(self, go_w: int):
        self.go_w: int | None = go_w
        self.ready_at: float | None = None
        self.killed_for: str | None = None
        self.sched: dict | None = None

    def saw_status(self, status: bytearray) -> None:
        if self.ready_at is None and b"\n" in status:
            if status.startswith(b"ready\t"):
                self.ready_at = time.monotonic()
                try:
                    os.write(self.go_w, b"g")
                except OSError:
                    pass
            self.close_go()

    def close_go(self) -> None:
        if self.go_w is not None:
            try:
                os.close(self.go_w)
            except OSError:
                pass
            self.go_w = None


def _collect(
    proc, status_r: int, out: dict, deadline: float, max_output: int, max_output_total: int, watch: _Watch
) -> None:
    """Read the child's stdout, stderr and status pipe into ``out`` until they close, the deadline passes
    (``watch.killed_for = "timeout"``, with ``watch.sched`` measured before the kill) or the output passes
    ``max_output_total`` bytes ("output"); then wait for the child to exit within the deadline. Sends the go
    byte when the harness says ``ready``."""
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
            if name == "status":
                watch.saw_status(buf)
        if total > max_output_total:
            killed_for = "output"
            break
    sel.close()
    if killed_for is None:
        try:
            proc.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            killed_for = "timeout"
    if killed_for == "timeout":
        watch.sched = _sched(proc.pid)
    watch.killed_for = killed_for


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
