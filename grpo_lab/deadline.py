"""One time limit for Python code that runs in *this* interpreter: ``with Deadline(seconds): ...``.

Used by the verifier (``grpo_lab.rewards``: math-verify on a pathological LaTeX answer) and by the exercise
grader (``grpo_lab.course.grading``: a student's infinite loop). Untrusted code never relies on it: that runs in a
separate process under ``grpo_lab.sandbox``, where the kernel enforces the limits.

Contract
--------
- **Main thread, POSIX** (the usual case in a notebook): a real-time interval timer (``setitimer(ITIMER_REAL)``)
  delivers ``SIGALRM``; the handler raises the deadline's exception in the code that is running. Python
  runs signal handlers between bytecodes, so pure-Python loops are interrupted on time; a long call into C
  (``10 ** 10 ** 8``, a big ``sum(range(...))``, a regex on a huge string) is interrupted only when it
  returns, and a blocking system call (``time.sleep``) is interrupted right away.
  A timer that was already running when the deadline started (an outer ``Deadline``, a caller's
  ``signal.alarm``) is honoured: if it is due first its own handler runs at its own time (and
  ``outer_fired`` becomes True), and on exit it is re-armed with whatever time it had left. An exception
  that handler raised is never lost: if the code in the block catches it (math-verify catches
  ``Exception``), it is raised again when the block exits.
- **Any other thread, or no ``setitimer`` (Windows)**: signals only reach the main thread, so a trace hook
  (``sys.settrace``, this thread only) compares the clock with the deadline. ``trace="call"`` checks at
  every Python function call: cheap (sympy, being pure Python, calls functions constantly), but a loop
  that calls nothing (``while True: pass``) is never interrupted. ``trace="line"`` also checks on every
  line: it stops any Python loop, at the cost of running the traced code several times slower. Neither can
  interrupt C code or a blocking call; the deadline's exception is raised at the next traced event after
  the time is up. A trace hook already installed (a debugger, coverage) is suspended inside the block and
  restored after it; an enclosing ``Deadline`` in the same thread keeps being checked.
- The exception is built by ``error()`` (default ``DeadlineExceeded``); it is raised in the thread that
  entered the block, never elsewhere. ``Deadline`` objects are single-use and not reentrant.

The pattern is the standard one (``signal.setitimer`` for the main thread, ``sys.settrace`` elsewhere, as
in pytest-timeout's "signal" and "thread" methods); see the ``signal`` and ``sys.settrace`` docs.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable


class DeadlineExceeded(Exception):
    """The default exception of a ``Deadline`` whose time is up."""


class Deadline:
    """``with Deadline(seconds, error=..., trace="call"):`` raises ``error()`` in the block after ``seconds``.

    See the module docstring for what it can and cannot interrupt in the main thread and elsewhere.
    ``mode`` is ``"signal"`` or ``"trace"`` once entered; ``outer_fired`` is True when a timer that was
    running before the block came due during it (its own handler then ran).
    """

    def __init__(self, seconds: float, error: Callable[[], BaseException] = DeadlineExceeded, trace: str = "call"):
        if trace not in ("call", "line"):
            raise ValueError(f"trace must be 'call' or 'line', got {trace!r}")
        self.seconds = float(seconds)
        self.error = error
        self.trace = trace
        self.mode: str | None = None
        self.outer_fired = False
        self._outer_error: BaseException | None = None

    def __enter__(self) -> Deadline:
        now = time.monotonic()
        self._end = now + self.seconds
        main = threading.current_thread() is threading.main_thread()
        if main and hasattr(signal, "setitimer"):
            try:
                self._old_handler = signal.getsignal(signal.SIGALRM)
                old_delay, _ = signal.getitimer(signal.ITIMER_REAL)
                self._outer_end = now + old_delay if old_delay > 0 else None
                signal.signal(signal.SIGALRM, self._on_alarm)
                due = self.seconds if self._outer_end is None else min(self.seconds, old_delay)
                signal.setitimer(signal.ITIMER_REAL, max(due, 1e-4))
                self.mode = "signal"
            except (ValueError, OSError):  # e.g. a sub-interpreter: fall back to tracing
                self.mode = None
        if self.mode is None:
            self.mode = "trace"
            self._old_trace = sys.gettrace()
            sys.settrace(self._trace)
        return self

    def _on_alarm(self, signum, frame):
        if self._outer_end is not None and time.monotonic() >= self._outer_end - 1e-3:
            self.outer_fired = True
            old = self._old_handler
            signal.signal(signal.SIGALRM, old)
            self._outer_end = None
            if callable(old):
                try:
                    old(signum, frame)
                except BaseException as e:
                    self._outer_error = e
                    raise
            return
        if time.monotonic() >= self._end - 1e-3:
            raise self.error()
        signal.setitimer(signal.ITIMER_REAL, max(self._end - time.monotonic(), 1e-4))

    def _trace(self, frame, event, arg):
        if time.monotonic() > self._end:
            raise self.error()
        outer = self._old_trace
        if isinstance(getattr(outer, "__self__", None), Deadline):
            try:
                outer(frame, event, arg)  # an enclosing deadline in this thread is still checked
            except BaseException as e:
                self.outer_fired, self._outer_error = True, e
                raise
        return self._trace if self.trace == "line" else None

    def __exit__(self, *exc) -> bool:
        if self.mode == "signal":
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old_handler)
            if self._outer_end is not None:
                signal.setitimer(signal.ITIMER_REAL, max(self._outer_end - time.monotonic(), 1e-4))
        elif self.mode == "trace":
            sys.settrace(self._old_trace)
        if self._outer_error is not None and exc[1] is not self._outer_error:
            raise self._outer_error  # the block swallowed (or replaced) the outer timer's exception
        return False
