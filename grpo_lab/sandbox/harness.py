"""The sandbox's child process: reads its job from stdin, contains itself, runs the code, then the tests.

This file runs as a script in an isolated interpreter (``python -I -S -B harness.py``) started by
``grpo_lab.sandbox.runner.run_tests``; it must not import ``grpo_lab`` (nor anything outside the standard
library) except its sibling ``containment.py`` (namespaces, mounts, limits), loaded by file. It reports on a
private pipe one line ``status<TAB>proof<TAB>reason``; the parent counts a pass only when the proof is the nonce
it sent, which the harness writes only after the tests ran to their end.

Keeping the nonce out of the untrusted code's reach (it shares this interpreter):

- The code and the tests run in a worker thread, and the nonce lives only in that thread's bottom frame.
  Python runs signal handlers in the main thread only, and ``signal.signal`` refuses to install one from
  another thread, so no handler can receive a frame whose callers hold the nonce; the main thread only
  waits, holding nothing secret.
- The audit hook (PEP 578; installed in every mode) refuses every other road to frames and objects:
  ``sys._getframe`` (as ``ValueError``, which the standard library already handles: ``namedtuple``,
  ``warnings``, ``logging`` fall back gracefully), ``sys._current_frames``, ``sys.settrace``/``setprofile``,
  traceback/generator/coroutine ``*_frame`` attributes, ``gc.get_objects``/``get_referrers``/``get_referents``,
  new audit hooks, ``ctypes``, building code objects, and reading ``/proc/<pid>/mem``.
"""

import builtins
import json
import os
import sys

# The containment steps live next to this file. `python -I` leaves the script's folder off sys.path, so it goes
# on for this one import (before any untrusted code exists) and off again.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import containment  # noqa: E402  (standard library only, like this file)
finally:
    del sys.path[0]


def _read_job():
    raw = b""
    while True:
        b = os.read(0, 1 << 16)
        if not b:
            break
        raw += b
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    return json.loads(raw)


_DENIED = {
    "socket.__new__",
    "socket.connect",
    "socket.bind",
    "socket.getaddrinfo",
    "socket.sendto",
    "socket.sendmsg",
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
    "os.setsid",
    "sys._current_frames",
    "sys._current_exceptions",
    "sys.settrace",
    "sys.setprofile",
    "sys.monitoring.register_callback",
    "gc.get_objects",
    "gc.get_referrers",
    "gc.get_referents",
    "code.__new__",
    "os.startfile",
}
_DENIED_IMPORTS = {
    "ctypes",
    "_ctypes",
    "_posixsubprocess",
    "_xxsubinterpreters",
    "_interpreters",
    "_xxinterpchannels",
    "_testcapi",
    "_testinternalcapi",
}
_FRAME_ATTRS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame"}  # the ones CPython audits
# event -> positions of its dir_fd arguments (a directory fd opened elsewhere would make a relative path
# point outside the working folder)
_CHANGES = {
    "os.remove": (1,),
    "os.rmdir": (1,),
    "os.rename": (2, 3),
    "os.link": (2, 3),
    "os.symlink": (2,),
    "os.mkdir": (2,),
    "os.chmod": (2,),
    "os.chown": (3,),
    "os.utime": (3,),
    "os.truncate": (),
    "os.chflags": (),
    "os.setxattr": (),
    "os.removexattr": (),
    "shutil.rmtree": (1,),
    "shutil.copyfile": (),
    "shutil.copymode": (),
    "shutil.copystat": (),
    "shutil.move": (),
}


def _install_audit(work):
    """The floor every mode stands on: refuse network, new processes, signals to others, file changes
    outside the working folder, and any introspection that could reach the harness's nonce."""
    me = os.getpid()
    realpath, join, fsdecode, sep = os.path.realpath, os.path.join, os.fsdecode, os.sep

    def inside(path):
        try:
            full = realpath(join(work, fsdecode(path)))
        except Exception:
            return False
        return full == work or full.startswith(work + sep) or full == "/dev/null"

    def hook(event, args):
        if event in _DENIED:
            raise PermissionError("sandbox: %s is not allowed" % event)
        if event.startswith("ctypes.") or (event == "import" and args and args[0] in _DENIED_IMPORTS):
            raise PermissionError("sandbox: %s is not allowed" % (args[0] if event == "import" else event))
        if event in ("sys._getframe", "sys._getframemodulename"):
            raise ValueError("sandbox: frame introspection is not allowed")
        if event == "object.__getattr__" and len(args) > 1 and args[1] in _FRAME_ATTRS:
            raise PermissionError("sandbox: frame introspection is not allowed")
        if event == "sys.addaudithook":
            raise RuntimeError("sandbox: no further audit hooks")  # RuntimeError: the hook is silently not added
        if event in ("os.kill", "os.killpg") and args and args[0] not in (me, 0):
            raise PermissionError("sandbox: signals to other processes are not allowed")
        if event == "open" and args and not isinstance(args[0], int):
            path, mode = args[0], args[1] if len(args) > 1 else None
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            try:
                text = fsdecode(path)
            except Exception:
                text = ""
            if text.startswith("/proc/") and realpath(text).rsplit("/", 1)[-1] in ("mem", "pagemap", "map_files"):
                raise PermissionError("sandbox: reading process memory is not allowed")
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
            )
            # os.open (mode None) outside the folder is refused even for reading: a directory fd opened
            # there would let dir_fd-relative calls write outside.
            if (writing or mode is None) and not inside(path):
                raise PermissionError("sandbox: writing outside the working folder is not allowed")
        if event in _CHANGES and args:
            if any(i < len(args) and args[i] not in (None, -1) for i in _CHANGES[event]):
                raise PermissionError("sandbox: dir_fd arguments are not allowed")
            paths = (
                args[:2]
                if event in ("os.rename", "os.link", "os.symlink", "shutil.copyfile", "shutil.move")
                else args[:1]
            )
            for a in paths:
                if isinstance(a, int) or not inside(a):  # an fd (fchmod, ftruncate) may be a file opened outside
                    raise PermissionError("sandbox: changing files outside the working folder is not allowed")

    sys.addaudithook(hook)


def _run(p):
    """The worker thread: parse and harden the tests, run the code, run the tests, report.

    Why one function: the nonce must live in exactly one frame, this worker's bottom one, out of reach of
    signal handlers (main thread only) and of the audit-hooked introspection; helpers would hand it through
    more frames and closures."""
    import ast

    # Everything used after the code ran is bound now: the code may replace builtins and module attributes.
    _write, _exit, _type, _str, _BaseException = os.write, os._exit, type, str, BaseException
    _AssertionError, _SystemExit = AssertionError, SystemExit
    sfd, nonce = p["status_fd"], p.pop("nonce")
    code, tests = p.pop("code"), p.pop("tests")
    pristine = dict(builtins.__dict__)

    def report(status, reason="", proof="-"):
        line = "%s\t%s\t%s\n" % (status, proof, reason[:500].replace("\n", " ").replace("\t", " "))
        try:
            _write(sfd, line.encode("utf-8", "replace"))
        except _BaseException:
            pass

    try:
        tree = ast.parse(tests, "<tests>")
    except SyntaxError as e:
        report("error", "the tests do not parse: %s" % e)
        _exit(0)
    n_asserts = sum(isinstance(n, ast.Assert) for n in ast.walk(tree))
    if not n_asserts:
        report("error", "the tests contain no assert")
        _exit(0)
    safe, harden = _plain_value_checker(_type, _AssertionError)
    tests_code = compile(
        ast.fix_missing_locations(harden.visit(tree)), "<tests>", "exec", optimize=0, dont_inherit=True
    )
    ns = {"__name__": "solution", "__builtins__": dict(pristine)}
    try:
        exec(compile(code, "<solution>", "exec", optimize=0, dont_inherit=True), ns)
    except _SystemExit as e:
        report("failed", "the code called exit(%r) before the tests ran" % (e.code,))
        _exit(0)
    except _BaseException as e:
        report("error", "the code raised %s: %s" % (_type(e).__name__, _str(e)[:200]))
        _exit(0)
    tns = dict(ns)
    tns["__builtins__"] = dict(pristine)
    tns["__sandbox_safe__"] = safe
    try:
        exec(tests_code, tns)
    except _AssertionError as e:
        report("failed", "assert failed: %s" % (_str(e)[:200] or "(no message)"))
        _exit(0)
    except _SystemExit as e:
        report("failed", "exit(%r) during the tests" % (e.code,))
        _exit(0)
    except _BaseException as e:
        report("error", "the tests raised %s: %s" % (_type(e).__name__, _str(e)[:200]))
        _exit(0)
    if tns.get("__sandbox_safe__") is not safe:
        report("failed", "the test helper was tampered with")
        _exit(0)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except _BaseException:
        pass
    report("passed", "%d asserts held" % n_asserts, nonce)
    _exit(0)


def _plain_value_checker(_type, _AssertionError):
    """``safe(v)``: v itself if it is a plain built-in value (checked by exact type, recursively), else an
    AssertionError; and an AST transformer that wraps every call result, comparison operand and truth
    value of every ``assert`` in ``__sandbox_safe__(...)``, so an object with a lying ``__eq__`` or an
    ``int`` subclass fails the assert instead of fooling it."""
    import ast

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
                stack.extend(x.keys())
                stack.extend(x.values())
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

    return safe, Harden()


def _main():
    import _thread

    p = _read_job()
    containment.contain(p)
    _install_audit(os.path.realpath(p["workdir"]))
    done = _thread.allocate_lock()
    done.acquire()
    status_fd = p["status_fd"]

    def worker():
        try:
            _run(p)
        finally:
            done.release()

    try:
        _thread.start_new_thread(worker, ())
        done.acquire()  # the worker leaves with os._exit; getting here means it did not reach a verdict
        os.write(status_fd, b"failed\t-\tthe harness thread ended without a verdict\n")
    except BaseException:
        pass
    os._exit(0)


if __name__ == "__main__":
    _main()
