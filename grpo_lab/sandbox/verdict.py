"""The verdict on one sandboxed run: the result record, the statuses, and how the parent reads the child's
report, exit and scheduling statistics into one status (``runner.run_tests`` collects them)."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

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
    watch,
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
    reports = _reports(status)
    infra = [r for r in reports if r["status"] == "infra" and _proved(r, nonce)]
    if infra:
        res.status, res.reason = "infra", infra[0]["reason"]
    elif watch.ready_at is None:
        _died_setting_up(res, watch.killed_for, timeout_s, overload_is_infra)
    elif watch.killed_for == "timeout":
        _wall_clock(res, watch.sched, timeout_s, overload_is_infra)
    elif watch.killed_for == "output":
        res.status, res.reason = "killed", f"printed more than {max_output_total} bytes"
    else:
        _ran_to_its_end(res, reports, nonce)
    return res


def _reports(status: bytes) -> list[dict]:
    """The well-formed ``status<TAB>proof<TAB>forbidden<TAB>reason`` lines of the status pipe, as dicts."""
    reports = []
    for line in status.decode("utf-8", "replace").splitlines():
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[0] in STATUSES:
            kind = parts[2] if parts[2] in FORBIDDEN_KINDS else None
            reports.append({"status": parts[0], "proof": parts[1], "forbidden": kind, "reason": parts[3]})
    return reports


def _proved(report: dict, nonce: str) -> bool:
    """Whether a report carries this run's nonce. Compared as bytes: ``compare_digest`` raises on a str with
    non-ASCII characters, and the code can write such a line to the status pipe (its fd number is guessable)."""
    return secrets.compare_digest(report["proof"].encode("utf-8", "replace"), nonce.encode())


def _died_setting_up(res: CodeResult, killed_for: str | None, timeout_s: float, overload_is_infra: bool) -> None:
    """The run ended before the harness said ``ready``: no untrusted code ran, so ``infra``; a wall-clock kill
    then is ``timeout`` (reason: overloaded?) unless ``overload_is_infra``."""
    res.status = "infra"
    if killed_for == "timeout":
        res.reason = f"the sandbox did not finish setting itself up within {timeout_s:g} s (machine overloaded?)"
        if not overload_is_infra:
            res.status, res.reason = "timeout", f"wall-clock limit of {timeout_s:g} s: {res.reason}"
    else:
        tail = " ".join(res.stderr.strip().splitlines()[-2:])[-300:]
        res.reason = f"the sandbox ended while setting itself up (exit code {res.returncode})" + (
            f": {tail}" if tail else ""
        )


def _wall_clock(res: CodeResult, sched: dict | None, timeout_s: float, overload_is_infra: bool) -> None:
    """Killed by the wall clock after ``ready``: ``timeout``, or, when the machine starved the run
    (``_starved``) and ``overload_is_infra``, ``infra``; the reason says which."""
    if _starved(sched, timeout_s):
        res.status = "infra" if overload_is_infra else "timeout"
        res.reason = (
            f"wall-clock limit of {timeout_s:g} s after only {sched['cpu_s']:.2f} s of CPU: the program waited "
            f"{sched['wait_s']:.2f} s for a CPU (machine overloaded)"
        )
    else:
        res.status, res.reason = "timeout", f"wall-clock limit of {timeout_s:g} s"


def _ran_to_its_end(res: CodeResult, reports: list[dict], nonce: str) -> None:
    """The child ended by itself: a pass (the nonce and a clean exit), a signal (``timeout`` for the CPU
    limit, else ``killed``), the harness's failed/error report, or an exit before the tests finished."""
    rc = res.returncode
    passed = [r for r in reports if r["status"] == "passed" and _proved(r, nonce)]
    others = [r for r in reports if r["status"] in ("failed", "error")]
    if passed and rc == 0:
        res.passed, res.status, res.reason = True, "passed", passed[-1]["reason"]
    elif rc is not None and rc < 0:
        sig = -rc
        if sig in (signal.SIGXCPU,) or (sig == signal.SIGKILL and res.duration_s >= res.limits["cpu_s"] - 0.5):
            res.status, res.reason = "timeout", f"CPU-time limit ({signal.Signals(sig).name})"
        else:
            res.status, res.reason = "killed", f"killed by {signal.Signals(sig).name}"
    elif others:
        res.status, res.reason, res.forbidden = others[0]["status"], others[0]["reason"], others[0]["forbidden"]
    else:
        _left_early(res)


def _left_early(res: CodeResult) -> None:
    """The process ended cleanly or with an exit code, without a verdict from the harness."""
    rc = res.returncode
    if rc == 0:
        res.status, res.reason = "failed", "the process ended before the tests finished (exit() in the code?)"
        res.forbidden = "exit"
    else:
        res.status, res.reason = "error", f"the process exited with code {rc} before the tests finished"
        if "MemoryError" in res.stderr:
            res.reason += " (MemoryError)"
        else:
            res.forbidden = "exit"  # os._exit(n): the harness itself only ever leaves with 0
