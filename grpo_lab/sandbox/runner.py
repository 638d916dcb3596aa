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

from grpo_lab.sandbox.modes import command, isolation_mode

HARNESS_PATH = str(Path(__file__).with_name("harness.py"))

STATUSES = ("passed", "failed", "error", "timeout", "killed", "infra")
# What ``CodeResult.forbidden`` can say stopped a program: it ended before the tests (exit, os._exit); it tried
# to start a process or signal one; to change a file outside its working folder; to use the network; to reach
# frames, the garbage collector, code objects, ctypes or process memory; it tampered with the builtins or the
# tests' helper, or handed the tests an object that is not a plain built-in value.
FORBIDDEN_KINDS = ("exit", "process", "file", "network", "introspection", "monkeypatch")


@dataclass
class CodeResult:
    """The outcome of ``run_tests``.

    ``passed``: the tests ran to completion after the code and all asserts held. ``status``: one of
    ``passed`` / ``failed`` (an assert failed, or the run ended before the tests finished) / ``error``
    (the code or the tests raised something else: a syntax error, a ``MemoryError``...) / ``timeout``
    (wall-clock or CPU limit) / ``killed`` (a signal, or the output limit) / ``infra`` (the sandbox could not
    score it: the run could not start or set itself up, or the machine was so overloaded that the program got
    less than half of its time on a CPU before the wall clock ran out; nothing about the code, so
    ``run_many`` runs it again). ``stdout``/``stderr`` are truncated to ``max_output`` characters. ``reason``
    says why in one line; ``isolation`` names the containment mode that ran (see the module docstring).
    ``forbidden``: when the sandbox stopped the program for a forbidden operation, which kind (one of
    ``FORBIDDEN_KINDS``), else None.
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
    forbidden: str | None = None


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
    workdir = tempfile.mkdtemp(prefix="grpo_lab_sbx_")
    limits = _limits(mode, timeout_s, memory_mb, file_mb, nproc)
    uid = random.SystemRandom().randrange(1 << 20, 1 << 30)
    nonce = secrets.token_hex(16)
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
            return CodeResult(False, "infra", reason=f"could not start the sandbox: {e}", isolation=mode)
        finally:
            os.close(status_w)
            os.close(go_r)
        writer = threading.Thread(target=_feed, args=(proc.stdin, json.dumps(payload).encode()), daemon=True)
        writer.start()
        _collect(proc, status_r, out, t0 + timeout_s, max_output, max_output_total, watch)
    finally:
        watch.close_go()
        _clean_up(proc, status_r, workdir)
    duration = time.monotonic() - t0
    stdout = _truncate(out["stdout"], max_output)
    stderr = _truncate(out["stderr"], max_output)
    res = CodeResult(False, "failed", stdout, stderr, "", mode, proc.returncode, duration, limits)
    return _verdict(res, out["status"], watch, nonce, timeout_s, max_output_total, overload_is_infra)


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


def _sched(pid: int) -> dict | None:
    """CPU time used and time spent waiting for a CPU (run queue delay, ``/proc/<pid>/task/<tid>/schedstat``),
    in seconds, summed over every task of ``pid`` and its descendants; plus whether any task lowered its own
    priority (a higher nice value than ours, or a scheduling policy other than the normal one): a program can
    starve itself that way, which must not pass for an overloaded machine. None where Linux's schedstat is
    not available."""
    if not sys.platform.startswith("linux"):
        return None
    cpu = wait = 0.0
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    niced = False
    todo, seen, found = [pid], set(), False
    while todo and len(seen) < 4096:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            base = f"/proc/{p}/task/{t}/"
            try:
                run_ns, delay_ns = Path(base + "schedstat").read_text().split()[:2]
                fields = Path(base + "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, ValueError, IndexError):
                continue
            found = True
            cpu += int(run_ns) / 1e9
            wait += int(delay_ns) / 1e9
            try:
                nice, policy = int(fields[16]), int(fields[38])
            except (IndexError, ValueError):
                nice, policy = ours, 0
            niced = niced or nice > ours or policy != 0
            try:
                todo += [int(c) for c in Path(base + "children").read_text().split()]
            except (OSError, ValueError):
                pass
    return {"cpu_s": cpu, "wait_s": wait, "niced": niced} if found else None


def _starved(sched: dict | None, timeout_s: float) -> bool:
    """True when a run killed by the wall clock was starved by the machine, not slow by itself: it had used
    less than half of ``timeout_s`` of CPU (all its tasks together: spinning threads of its own would count)
    and had waited longer than that for a CPU, without having lowered its own priority."""
    if not sched or sched["niced"]:
        return False
    return sched["cpu_s"] < 0.5 * timeout_s and sched["wait_s"] > 0.5 * timeout_s


def _verdict(
    res: CodeResult,
    status: bytes,
    watch: _Watch,
    nonce: str,
    timeout_s: float,
    max_output_total: int,
    overload_is_infra: bool = False,
) -> CodeResult:
    """Fill in ``res`` (output, return code and duration already set): a pass needs a "passed" report whose
    proof is this run's nonce and a clean exit; otherwise the first reason that explains the end wins.

    ``infra`` (no verdict about the code) only from what the code cannot forge: the harness's own set-up
    report, proved by the nonce; a run that ended before the harness said ``ready`` (no untrusted code ran
    before the parent saw it); or, with ``overload_is_infra``, a wall-clock kill before ``ready`` or of a run
    the machine starved (``_starved``; without it, ``timeout`` whose reason says so). Whatever the code does
    once it runs (exit, os._exit, a crash, a kill, sleeping) stays a verdict about the code."""
    rc, duration, limits, stderr = res.returncode, res.duration_s, res.limits, res.stderr
    killed_for = watch.killed_for
    reports = []
    for line in status.decode("utf-8", "replace").splitlines():
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[0] in STATUSES:
            kind = parts[2] if parts[2] in FORBIDDEN_KINDS else None
            reports.append({"status": parts[0], "proof": parts[1], "forbidden": kind, "reason": parts[3]})
    infra = [r for r in reports if r["status"] == "infra" and secrets.compare_digest(r["proof"], nonce)]
    if infra:
        res.status, res.reason = "infra", infra[0]["reason"]
        return res
    if watch.ready_at is None:
        res.status = "infra"
        if killed_for == "timeout":
            res.reason = f"the sandbox did not finish setting itself up within {timeout_s:g} s (machine overloaded?)"
            if not overload_is_infra:
                res.status, res.reason = "timeout", f"wall-clock limit of {timeout_s:g} s: {res.reason}"
        else:
            tail = " ".join(stderr.strip().splitlines()[-2:])[-300:]
            res.reason = f"the sandbox ended while setting itself up (exit code {rc})" + (f": {tail}" if tail else "")
        return res
    if killed_for == "timeout":
        s = watch.sched
        if _starved(s, timeout_s):
            res.status = "infra" if overload_is_infra else "timeout"
            res.reason = (
                f"wall-clock limit of {timeout_s:g} s after only {s['cpu_s']:.2f} s of CPU: the program waited "
                f"{s['wait_s']:.2f} s for a CPU (machine overloaded)"
            )
        else:
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
        res.status, res.reason, res.forbidden = others[0]["status"], others[0]["reason"], others[0]["forbidden"]
        return res
    if rc == 0:
        res.status, res.reason = "failed", "the process ended before the tests finished (exit() in the code?)"
        res.forbidden = "exit"
    else:
        res.status, res.reason = "error", f"the process exited with code {rc} before the tests finished"
        if "MemoryError" in stderr:
            res.reason += " (MemoryError)"
        else:
            res.forbidden = "exit"  # os._exit(n): the harness itself only ever leaves with 0
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
