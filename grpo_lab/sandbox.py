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


# --------------------------------------------------------------------------------------------------
# The harness that runs inside the child (python -I -S -B -c HARNESS)
# --------------------------------------------------------------------------------------------------

HARNESS = r'''
import os, sys, json, resource, signal, builtins
def _boot():
    raw = b""
    while True:
        b = os.read(0, 1 << 16)
        if not b:
            break
        raw += b
    p = json.loads(raw)
    fd = os.open(os.devnull, os.O_RDONLY); os.dup2(fd, 0); os.close(fd)
    mode, work, L = p["mode"], p["workdir"], p["limits"]
    if mode in ("namespaces+uid", "userns"):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        size = "size=%dm,mode=1777" % L["tmpfs_mb"]
        for d in ("/tmp", "/var/tmp", "/dev/shm"):
            if os.path.isdir(d):
                libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, size.encode())
        os.makedirs(work, exist_ok=True)
        if mode == "namespaces+uid":
            os.chown(work, p["uid"], p["uid"])
            _expose_python(libc)
    elif mode == "ctypes-userns":
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(0x10000000 | 0x40000000) != 0:
            raise SystemExit("sandbox: unshare failed")
        for name, text in (("setgroups", "deny"), ("uid_map", "0 %d 1" % uid), ("gid_map", "0 %d 1" % gid)):
            try:
                with open("/proc/self/" + name, "w") as f:
                    f.write(text)
            except OSError:
                pass
    os.chdir(work)
    cpu = L["cpu_s"]
    for r, v in ((resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, (L["memory_bytes"],) * 2),
                 (resource.RLIMIT_FSIZE, (L["file_bytes"],) * 2), (resource.RLIMIT_NOFILE, (L["nofile"],) * 2),
                 (resource.RLIMIT_CORE, (0, 0)), (resource.RLIMIT_NPROC, (L["nproc"],) * 2)):
        try:
            resource.setrlimit(r, v)
        except (ValueError, OSError):
            pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large file raises OSError instead of killing us
    if mode == "namespaces+uid":
        os.setgroups([]); os.setgid(p["uid"]); os.setuid(p["uid"])
    if mode == "audit-hook":
        _install_audit(work)
    return p

def _expose_python(libc):
    # The dedicated uid must still read the Python installation. When it sits under a folder others cannot
    # enter (pyenv in /root, mode 700), hide that folder behind an empty tmpfs (good: its other contents
    # stay out of reach) and bind-mount just the installation back at its own path.
    MS_BIND, MS_REC, MNT_DETACH = 4096, 16384, 2
    def first_blocked(path):
        cur = "/"
        for part in path.strip("/").split("/"):
            cur = os.path.join(cur, part)
            try:
                if not os.stat(cur).st_mode & 0o001:
                    return cur
            except OSError:
                return None
        return None
    groups = {}
    for pre in {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}:
        b = first_blocked(pre)
        if b and b != pre:
            groups.setdefault(b, []).append(pre)
    for k, (blocked, prefixes) in enumerate(groups.items()):
        stages = []
        for j, pre in enumerate(prefixes):
            stage = "/tmp/.sandbox_stage_%d_%d" % (k, j)
            os.makedirs(stage)
            libc.mount(pre.encode(), stage.encode(), None, MS_BIND | MS_REC, None)
            stages.append((stage, pre))
        libc.mount(b"tmpfs", blocked.encode(), b"tmpfs", 0, b"mode=755,size=1m")
        for stage, pre in stages:
            os.makedirs(pre, exist_ok=True)
            libc.mount(stage.encode(), pre.encode(), None, MS_BIND | MS_REC, None)
            libc.umount2(stage.encode(), MNT_DETACH)
            os.rmdir(stage)

def _install_audit(work):
    work = os.path.realpath(work)
    me = os.getpid()
    def inside(path):
        try:
            path = os.fsdecode(path) if not isinstance(path, int) else None
        except Exception:
            return False
        if path is None:
            return True
        full = os.path.realpath(os.path.join(work, path))
        return full == work or full.startswith(work + os.sep) or full in ("/dev/null",)
    blocked = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "subprocess.Popen",
               "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "ctypes.dlopen",
               "ctypes.dlsym", "ctypes.cdata", "os.setsid", "pty.spawn"}
    def hook(event, args):
        if event in blocked:
            raise PermissionError("sandbox: %s is not allowed" % event)
        if event in ("os.kill", "os.killpg") and args and args[0] not in (me, 0):
            raise PermissionError("sandbox: signals to other processes are not allowed")
        if event == "open" and len(args) >= 2:
            path, mode = args[0], args[1] or "r"
            flags = args[2] if len(args) > 2 else 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and not inside(path):
                raise PermissionError("sandbox: writing outside the working folder is not allowed")
        if event in ("os.remove", "os.rmdir", "os.rename", "os.chmod", "os.chown", "os.truncate", "os.link",
                     "os.symlink", "os.mkdir", "shutil.rmtree", "os.utime") and args:
            for a in args[:2]:
                if isinstance(a, (str, bytes, os.PathLike)) and not inside(a):
                    raise PermissionError("sandbox: changing files outside the working folder is not allowed")
    sys.addaudithook(hook)

def _harness(p):
    import ast
    # Everything used after the code ran is bound now: the code may replace builtins and module attributes.
    _write, _exit, _type, _str, _BaseException = os.write, os._exit, type, str, BaseException
    _AssertionError, _SystemExit = AssertionError, SystemExit
    _settrace, _setprofile = sys.settrace, sys.setprofile
    sfd, nonce = p["status_fd"], p.pop("nonce")
    code, tests = p.pop("code"), p.pop("tests")
    pristine = dict(builtins.__dict__)
    def report(status, reason="", proof="-"):
        line = "%s\t%s\t%s\n" % (status, proof, reason[:500].replace("\n", " ").replace("\t", " "))
        try:
            _write(sfd, line.encode("utf-8", "replace"))
        except _BaseException:
            pass
    plain = {int, float, complex, bool, str, bytes, type(None), list, tuple, dict, set, frozenset, range, type}
    containers = {list, tuple, set, frozenset}
    def safe(v):
        stack, seen = [v], 0
        while stack:
            x = stack.pop()
            t = _type(x)
            seen += 1
            if t not in plain or seen > 200000:
                raise _AssertionError("a test compared a %s, not a plain built-in value" % t.__name__)
            if t in containers:
                stack.extend(x)
            elif t is dict:
                stack.extend(x.keys()); stack.extend(x.values())
        return v
    class Harden(ast.NodeTransformer):
        def wrap(self, node):
            return ast.Call(func=ast.Name(id="__sandbox_safe__", ctx=ast.Load()), args=[node], keywords=[])
        def visit_Assert(self, node):
            node.test = self.wrap(self._inner(node.test))
            return node
        def _inner(self, e):
            for name, value in ast.iter_fields(e):
                if isinstance(value, ast.AST):
                    setattr(e, name, self._inner(value))
                elif isinstance(value, list):
                    setattr(e, name, [self._inner(v) if isinstance(v, ast.AST) else v for v in value])
            if isinstance(e, ast.Compare):
                e.left = self.wrap(e.left)
                e.comparators = [self.wrap(c) for c in e.comparators]
            elif isinstance(e, ast.BoolOp):
                e.values = [self.wrap(v) for v in e.values]
            elif isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.Not):
                e.operand = self.wrap(e.operand)
            elif isinstance(e, ast.Call):
                return self.wrap(e)
            return e
    try:
        tree = ast.parse(tests, "<tests>")
    except SyntaxError as e:
        report("error", "the tests do not parse: %s" % e); _exit(0)
    n_asserts = sum(isinstance(n, ast.Assert) for n in ast.walk(tree))
    if not n_asserts:
        report("error", "the tests contain no assert"); _exit(0)
    tree = ast.fix_missing_locations(Harden().visit(tree))
    tests_code = compile(tree, "<tests>", "exec", optimize=0, dont_inherit=True)
    ns = {"__name__": "solution", "__builtins__": dict(pristine)}
    try:
        exec(compile(code, "<solution>", "exec", optimize=0, dont_inherit=True), ns)
    except _SystemExit as e:
        report("failed", "the code called exit(%r) before the tests ran" % (e.code,)); _exit(0)
    except _BaseException as e:
        report("error", "the code raised %s: %s" % (_type(e).__name__, _str(e)[:200])); _exit(0)
    _settrace(None); _setprofile(None)
    tns = dict(ns)
    tns["__builtins__"] = dict(pristine)
    tns["__sandbox_safe__"] = safe
    try:
        exec(tests_code, tns)
    except _AssertionError as e:
        report("failed", "assert failed: %s" % (_str(e)[:200] or "(no message)")); _exit(0)
    except _SystemExit as e:
        report("failed", "exit(%r) during the tests" % (e.code,)); _exit(0)
    except _BaseException as e:
        report("error", "the tests raised %s: %s" % (_type(e).__name__, _str(e)[:200])); _exit(0)
    if tns.get("__sandbox_safe__") is not safe:
        report("failed", "the test helper was tampered with"); _exit(0)
    try:
        sys.stdout.flush(); sys.stderr.flush()
    except _BaseException:
        pass
    report("passed", "%d asserts held" % n_asserts, nonce)
    _exit(0)

_harness(_boot())
'''

# --------------------------------------------------------------------------------------------------
# Isolation mode detection (once per process)
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# The parent side
# --------------------------------------------------------------------------------------------------


def run_tests(code: str, tests: str, timeout_s: float = 5.0, *, memory_mb: int = 512, max_output: int = 10_000,
              max_output_total: int = 1_000_000, nproc: int = 16, file_mb: int = 16) -> CodeResult:
    """Run untrusted ``code`` followed by assert-based ``tests`` in a sandboxed child (COURSE.md section 4).

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
    workdir = tempfile.mkdtemp(prefix="grpo_lab_sbx_")
    limits = {
        "cpu_s": int(math.ceil(timeout_s)) + 1,
        "memory_bytes": int(memory_mb) << 20,
        "file_bytes": int(file_mb) << 20,
        "tmpfs_mb": max(int(file_mb) * 4, 16),
        "nofile": 64,
        "nproc": int(nproc) if mode == "namespaces+uid" else _user_process_count() + int(nproc),
    }
    uid = random.SystemRandom().randrange(1 << 20, 1 << 30)
    nonce = secrets.token_hex(16)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8",
           "HOME": workdir, "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-I", "-S", "-B", "-c", HARNESS]
    if mode == "namespaces+uid":
        cmd = [shutil.which("unshare") or "unshare", *_NS_FLAGS, *cmd]
    elif mode == "userns":
        cmd = [shutil.which("unshare") or "unshare", "--user", "--map-root-user", *_NS_FLAGS, *cmd]
    status_r, status_w = os.pipe()
    payload = {"mode": mode, "workdir": workdir, "limits": limits, "uid": uid, "status_fd": status_w,
               "nonce": nonce, "code": code, "tests": tests}
    proc = None
    out = {"stdout": bytearray(), "stderr": bytearray(), "status": bytearray()}
    total = 0
    killed_for = None
    try:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=(status_w,), cwd=workdir, env=env, start_new_session=True,
                                    close_fds=True)
        except OSError as e:
            return CodeResult(False, "error", reason=f"could not start the sandbox: {e}", isolation=mode)
        finally:
            os.close(status_w)
        writer = threading.Thread(target=_feed, args=(proc.stdin, json.dumps(payload).encode()), daemon=True)
        writer.start()
        deadline = t0 + timeout_s
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
    finally:
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
    duration = time.monotonic() - t0
    stdout = _truncate(out["stdout"], max_output)
    stderr = _truncate(out["stderr"], max_output)
    res = CodeResult(False, "failed", stdout, stderr, "", mode, proc.returncode, duration, limits)
    reports = []
    for line in out["status"].decode("utf-8", "replace").splitlines():
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[0] in STATUSES:
            reports.append({"status": parts[0], "proof": parts[1], "reason": parts[2]})
    if killed_for == "timeout":
        res.status, res.reason = "timeout", f"wall-clock limit of {timeout_s:g} s"
        return res
    if killed_for == "output":
        res.status, res.reason = "killed", f"printed more than {max_output_total} bytes"
        return res
    rc = proc.returncode
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


# --------------------------------------------------------------------------------------------------
# The hostile-code gallery (notebook 01 and tests/test_sandbox.py)
# --------------------------------------------------------------------------------------------------

GALLERY_TESTS = "assert add(1, 2) == 3\nassert add(-4, 4) == 0\nassert add(10, 5) == 15\n"
GALLERY_SOLUTION = "def add(a, b):\n    return a + b\n"
_WRONG = "def add(a, b):\n    return 0\n"

# name -> (what it tries, code, the statuses it may end with; the first is the one in the namespace modes)
HOSTILE_GALLERY: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "infinite loop": ("never returns", "while True:\n    pass\n", ("timeout",)),
    "busy child process": (
        "forks a child that spins, then waits for it",
        "import os\npid = os.fork()\nif pid == 0:\n    while True:\n        pass\nos.waitpid(pid, 0)\n" + GALLERY_SOLUTION,
        ("timeout", "error"),
    ),
    "orphaned daemon": (
        "double-forks a setsid daemon that outlives the code, then gives up",
        "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        while True:\n            pass\n    os._exit(0)\n" + _WRONG,
        ("failed", "error"),
    ),
    "fork bomb": (
        "forks forever",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        ("timeout", "error"),
    ),
    "memory bomb": ("allocates 10 GB", "x = bytearray(10 * 1024 ** 3)\n" + GALLERY_SOLUTION, ("error",)),
    "huge output": ("prints 100 MB", "import sys\nfor _ in range(1000):\n    sys.stdout.write('x' * 100_000)\n" + GALLERY_SOLUTION, ("killed",)),
    "file bomb": (
        "writes 20 MB files until the disk is full",
        "i = 0\nwhile True:\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'0' * 20 * 1024 * 1024)\n    i += 1\n",
        ("error",),
    ),
    "network": (
        "opens a socket to the internet",
        "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1).close()\n" + GALLERY_SOLUTION,
        ("error",),
    ),
    "exit(0) before the tests": ("ends the interpreter with success before the asserts run", "import sys\nsys.exit(0)\n", ("failed",)),
    "os._exit(0) before the tests": ("leaves without running anything else", "import os\nos._exit(0)\n", ("failed",)),
    "always-equal object": (
        "returns an object whose __eq__ is always True",
        "class Anything:\n    def __eq__(self, other):\n        return True\n\ndef add(a, b):\n    return Anything()\n",
        ("failed",),
    ),
    "int subclass": (
        "returns an int whose __eq__ is always True",
        "class Int(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n\ndef add(a, b):\n    return Int(0)\n",
        ("failed",),
    ),
    "monkeypatched builtins": (
        "replaces isinstance/AssertionError/print in builtins",
        "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\nbuiltins.isinstance = lambda *a: True\n" + _WRONG,
        ("failed",),
    ),
    "swallowed exception": (
        "installs excepthooks and an atexit handler that print a fake success",
        "import sys, atexit, threading\nsys.excepthook = lambda *a: print('all tests passed')\n"
        "threading.excepthook = lambda *a: None\natexit.register(lambda: print('{\"status\": \"passed\"}'))\n" + _WRONG,
        ("failed",),
    ),
    "trace hook skips asserts": (
        "installs a trace hook that jumps over every assert line",
        "import sys\ndef skip(frame, event, arg):\n    if frame.f_code.co_filename == '<tests>' and event == 'line':\n"
        "        try:\n            frame.f_lineno = frame.f_lineno + 1\n        except Exception:\n            pass\n"
        "    return skip\nsys.settrace(skip)\n" + _WRONG,
        ("failed",),
    ),
    "signal.alarm trick": (
        "arms an alarm whose handler fakes success and exits 0 during the tests",
        "import os, signal, time\ndef fake(*a):\n    print('{\"status\": \"passed\"}')\n    os._exit(0)\n"
        "signal.signal(signal.SIGALRM, fake)\nsignal.setitimer(signal.ITIMER_REAL, 0.05)\n"
        "def add(a, b):\n    time.sleep(1)\n    return 0\n",
        ("failed",),
    ),
    "ignores signals": (
        "ignores SIGTERM/SIGXCPU/SIGALRM and spins",
        "import signal\nfor s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGALRM, signal.SIGINT):\n    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n",
        ("timeout",),
    ),
    "kills its parent": (
        "sends SIGKILL to its parent and to every process it can see",
        "import os, signal\nfor pid in [os.getppid()] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    if pid not in (0, 1, os.getpid()):\n        try:\n            os.kill(pid, signal.SIGKILL)\n        except Exception:\n            pass\n" + _WRONG,
        ("failed", "error"),
    ),
    "reads the tests": (
        "looks for the tests in files, argv, the environment and /proc to answer from them",
        "import os, sys, re, glob\nseen = ' '.join(sys.argv) + ' '.join(os.environ.values())\n"
        "for path in glob.glob('**/*', recursive=True) + ['/proc/self/cmdline', '/proc/self/environ', '/proc/self/fd/0']:\n"
        "    try:\n        seen += open(path, errors='ignore').read()\n    except Exception:\n        pass\n"
        "table = {(int(a), int(b)): int(c) for a, b, c in re.findall(r'add\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)', seen)}\n"
        "def add(a, b):\n    return table.get((a, b), 0)\n",
        ("failed",),
    ),
}
