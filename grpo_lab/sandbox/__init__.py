"""Run untrusted code and its assert-based tests in a sandboxed child process (code rewards for RLVR).

``run_tests(code, tests, timeout_s)`` returns a ``CodeResult``; ``passed`` is True only if the tests ran to
their end *after* the code, in the same interpreter, and every assert held.

How a pass is established (the reward-hacking defences):

- The parent sends code, tests and a random nonce through the child's stdin, which the child reads and
  replaces by ``/dev/null`` before running anything: the tests are never on disk, in argv or in the env.
- The harness runs the code, then the tests (compiled with asserts on), then writes the nonce to a private
  pipe and leaves with ``os._exit``. No nonce, no pass: ``exit(0)``, ``os._exit(0)``, a killed or crashed
  interpreter, an exception raised (or swallowed by a ``sys.excepthook``) before the end, all score 0.
- The tests run with a pristine copy of the builtins taken before the code ran, so monkeypatching
  ``builtins`` (``print``, ``isinstance``, ``len``...) does not reach them.
- Every assert is rewritten so that each call result, comparison operand and truth value it uses must be
  a plain built-in value (``int``, ``float``, ``str``, ``list``... checked by exact type, recursively):
  an object whose ``__eq__`` always returns True, or an ``int`` subclass, fails the assert instead of
  fooling it. Consequence: tests may only inspect built-in values (``assert f(x) == [1, 2]``), not
  instances of the solution's own classes.
- Trace and profile hooks the code installed are removed before the tests (a trace hook can jump over an
  ``assert`` line).

How the child is contained (``CodeResult.isolation`` says which mode ran):

- ``namespaces+uid`` (root with util-linux ``unshare``, the course's CI and dev machines): new network
  namespace (no network at all), PID namespace (the code cannot see or signal the parent; everything it
  spawned dies with it), mount namespace with size-limited private tmpfs on ``/tmp``, ``/var/tmp`` and
  ``/dev/shm`` (files written there vanish), and a dedicated random uid, so files outside the working
  folder are read-only and ``RLIMIT_NPROC`` really caps its processes (root ignores that limit).
- ``userns`` (``unshare --map-root-user``, for non-root Linux): the same namespaces without the uid drop.
- ``ctypes-userns`` (no ``unshare`` program): ``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` via ctypes:
  no network; no PID namespace (a double-forked ``setsid`` daemon could outlive the call).
- ``audit-hook`` (no namespaces: macOS, locked-down containers, Colab): Python audit hooks refuse
  sockets, process creation, signals to other processes, ctypes, and writes/deletes outside the working
  folder. This stops a policy's accidents and naive hacks, not a determined attacker.

Always: a fresh temporary working folder (removed afterwards), a minimal environment, closed stdin,
``RLIMIT_CPU/AS/FSIZE/NPROC/NOFILE/CORE``, a wall-clock limit, truncated stdout/stderr (and a kill once
the output passes ``max_output_total`` bytes), and the whole process group SIGKILLed at the end.

What it does NOT protect against: code that deliberately introspects the interpreter it shares with the
tests (``sys._getframe``, ``gc.get_objects()``) can find the nonce or patch the harness; monkeypatching
stdlib modules the tests use (``math.isclose = ...``); kernel exploits; CPU/disk contention with other
jobs for up to ``timeout_s``. For adversaries (not a policy being trained) use a VM or gVisor.
"""

from grpo_lab.sandbox.gallery import GALLERY_SOLUTION, GALLERY_TESTS, HOSTILE_GALLERY
from grpo_lab.sandbox.modes import MODES, isolation_mode
from grpo_lab.sandbox.runner import HARNESS_PATH, STATUSES, CodeResult, extract_code, run_tests

__all__ = ["run_tests", "CodeResult", "STATUSES", "extract_code", "isolation_mode", "MODES", "HARNESS_PATH",
           "HOSTILE_GALLERY", "GALLERY_TESTS", "GALLERY_SOLUTION"]
