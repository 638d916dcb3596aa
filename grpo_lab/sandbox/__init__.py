"""Run untrusted code and its assert-based tests in a sandboxed child process (code rewards for RLVR).

``run_tests(code, tests, timeout_s)`` returns a ``CodeResult``; ``passed`` is True only if the tests ran to
their end *after* the code, in the same interpreter, and every assert held.

``run_many(jobs, timeout_s, workers=None, retries=2, **limits)`` scores a list of ``(code, tests)`` pairs (a
training step's completions) in parallel, each in its own ``run_tests`` child with every guarantee below,
results in input order; identical pairs run once. Load never becomes a reward: a run the sandbox could not
score gets status ``infra`` (the child could not start or set itself up, or it was killed by the wall clock
after the machine had kept it waiting for a CPU longer than it ran); ``run_many`` runs those again with fewer
at once after a short backoff, and raises ``SandboxInfrastructureError`` if they still cannot be scored.
``infra`` is decided only from what the code cannot forge: a set-up report proved by the nonce (written before
any untrusted code runs), the parent having never seen the harness's ``ready`` (the code starts only after
the parent has), and the kernel's scheduler statistics of the child; exit, ``os._exit``, crashes and sleeping
stay verdicts about the code, so a hostile program cannot get itself retried.

``CodeResult.forbidden`` names the kind of forbidden operation that stopped a program (``FORBIDDEN_KINDS``:
``exit``, ``process``, ``file``, ``network``, ``introspection``, ``monkeypatch``), else None. It is diagnostic:
the reward depends only on ``passed``.

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
- The code may not install trace or profile hooks (a trace hook can jump over an ``assert`` line).

How the child is contained (``CodeResult.isolation`` names the mode; ``MODES`` lists them strongest first):

Every mode: the harness's audit hook (PEP 578) refuses sockets, process creation (fork, exec, spawn,
``subprocess``), signals to other processes, ``ctypes``, building code objects, file changes outside the
working folder (and ``os.open``/``dir_fd`` tricks that would reach outside it), and every road to the
nonce: frame introspection (``sys._getframe``, tracebacks' and generators' frames, ``sys.settrace``), the
garbage collector's object lists, ``/proc/self/mem``; the code runs in a worker thread, so it cannot install
a signal handler (whose frame argument would lead back to the harness). Plus a fresh temporary working
folder (removed afterwards), a minimal environment, closed stdin, ``RLIMIT_CPU/AS/FSIZE/NPROC/NOFILE/CORE``
(``RLIMIT_NPROC`` counts threads per uid: outside ``namespaces+uid`` it is the uid's task count when the
child sets it, after its own thread exists, plus ``nproc``), a wall-clock limit, truncated stdout/stderr
(and a kill once the output passes ``max_output_total`` bytes), and the whole process group SIGKILLed at the
end. Then, strongest first:

- ``namespaces+uid`` (root and util-linux ``unshare``): new network namespace (no network at all), PID
  namespace (nothing it starts outlives it), mount namespace in which every mount is read-only except
  size-limited private tmpfs on ``/tmp``, ``/var/tmp``, ``/dev/shm``, and a dedicated random uid, so
  ``RLIMIT_NPROC`` really caps its processes.
- ``bwrap`` (bubblewrap installed, user namespaces allowed): every namespace bwrap can create, no
  capabilities, the file system bound read-only, private tmpfs folders, fresh ``/dev`` and ``/proc``.
- ``userns`` (``unshare --user --map-root-user``, for non-root Linux): network, PID and mount namespaces,
  everything remounted read-only except the private tmpfs folders; the code's uid maps to the real user,
  which is why the read-only remount matters.
- ``ctypes-userns`` (no ``unshare`` program): user, mount and network namespaces made by the harness itself
  with ``unshare(2)``, read-only remount and private tmpfs as above; no PID namespace (the audit hook
  already refuses new processes).
- ``audit-hook`` (no namespaces): the audit hook and the limits only. Writes outside the working folder are
  refused by path, which a race between a symlink swap and an ``open`` can in principle beat.

What a student's machine gets:

- Linux as root (the course's development and test machines, most Docker containers): ``namespaces+uid``.
- Linux as a normal user: ``bwrap`` when bubblewrap is installed, else ``userns`` (most distributions allow
  unprivileged user namespaces; where a policy forbids them, such as Ubuntu's AppArmor restriction since
  23.10, the next mode that starts is used), else ``audit-hook``.
- macOS: ``audit-hook`` (no namespaces; macOS also ignores ``RLIMIT_AS``, so memory is not capped).
- Colab: root in a container that usually refuses new namespaces, so typically ``audit-hook``; run
  ``isolation_mode()`` to see.
- Windows: no sandbox (``isolation_mode()`` is ``none`` and ``run_tests`` reports an error): use WSL2, which
  is Linux as a normal user, or Colab.

What it does NOT protect against: monkeypatching stdlib modules the tests use (``math.isclose = ...``);
Python-level escapes that audit hooks were never designed to stop (PEP 578 says so: e.g. crafted pickles or
bytecode reaching C-level memory bugs); kernel exploits; CPU/disk contention with other jobs for up to
``timeout_s``. For adversaries (not a policy being trained) use a VM or gVisor. Legitimate code that prints
its own traceback (``traceback.print_exc()``) or forks fails here: the verifier does not need either.

The gallery of hostile programs that notebook 01 runs against it is course material: ``grpo_lab.course.gallery``.
"""

from grpo_lab.errors import SandboxInfrastructureError
from grpo_lab.sandbox.modes import MODES, available_modes, isolation_mode
from grpo_lab.sandbox.pool import default_workers, run_many
from grpo_lab.sandbox.runner import FORBIDDEN_KINDS, HARNESS_PATH, STATUSES, CodeResult, extract_code, run_tests

__all__ = [
    "run_tests",
    "run_many",
    "default_workers",
    "SandboxInfrastructureError",
    "CodeResult",
    "STATUSES",
    "FORBIDDEN_KINDS",
    "extract_code",
    "isolation_mode",
    "available_modes",
    "MODES",
    "HARNESS_PATH",
]
