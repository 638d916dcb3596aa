"""The sandbox's child process: reads its job from stdin, contains itself, runs the code, then the tests.

This file runs as a script in an isolated interpreter (``python -I -S -B harness.py``) started by
``grpo_lab.sandbox.runner.run_tests``; it must not import ``grpo_lab`` (nor anything outside the standard
library) except its sibling ``containment.py`` (namespaces, mounts, limits), loaded by file. It reports on a
private pipe one line ``status<TAB>proof<TAB>forbidden<TAB>reason``; the parent counts a pass only when the proof
is the nonce it sent, which the harness writes only after the tests ran to their end. ``forbidden`` is ``-`` or
the kind of refused operation that stopped the program (``runner.FORBIDDEN_KINDS``).

Start-up handshake: once contained (limits set, worker thread started, audit hook in), the harness writes
``ready`` on the status pipe and waits for the parent's go byte on a second pipe before any untrusted code runs.
So the parent knows for certain whether a run died during set-up (an infrastructure error: nothing of the code
ran) or later. A set-up step that fails is reported as ``infra`` with the nonce as proof: the code never ran,
so nothing can have read the nonce, and nothing but the harness can forge an infrastructure error.

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


_PROCESS_EVENTS = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
    "os.setsid",
    "os.startfile",
    "_posixsubprocess",
}


def _install_audit(work):
    """The floor every mode stands on: refuse network, new processes, signals to others, file changes
    outside the working folder, and any introspection that could reach the harness's nonce.

    Returns ``kind_of(exc)``: the kind of refused operation (``network``, ``process``, ``file``,
    ``introspection``) whose refusal raised ``exc`` (or an exception in its ``__context__``/``__cause__``
    chain); with ``exc=None`` the kind of the first refusal the code caught and went on from (except
    ``sys._getframe``, which the standard library itself tries and handles); else None. The hook remembers
    the exception objects it raised, so an exception the code makes itself with the same message is not
    mistaken for a refusal.

    Why one function: the untrusted code shares this interpreter and can rebind anything the hook would look
    up when it runs: this module's globals (``sys.modules["__main__"]`` is this file: clearing ``_FRAME_ATTRS``
    there once let a program read the nonce from a traceback's frames and pass without its tests) and the
    builtins (``len``, ``isinstance``). So the hook and ``kind_of`` look up no global name at all: every table
    (copied into frozensets), builtin and exception class they use is bound here, as a local of this function,
    before any untrusted code exists, and the list of refusals lives only in their closure
    (``tests/test_sandbox.py`` checks their bytecode for global lookups). Module-level helpers would be global
    lookups again.
    """
    me = os.getpid()
    refused = []  # (exception object, kind) for the first refusals: only identity is compared
    _len, _isinstance, _any, _int, _str, _bytes = len, isinstance, any, int, str, bytes
    _PermissionError, _ValueError, _RuntimeError, _Exception = PermissionError, ValueError, RuntimeError, Exception
    _BaseException = BaseException
    denied, denied_imports, frame_attrs = frozenset(_DENIED), frozenset(_DENIED_IMPORTS), frozenset(_FRAME_ATTRS)
    process_events, changes = frozenset(_PROCESS_EVENTS), dict(_CHANGES)
    two_paths = frozenset(("os.rename", "os.link", "os.symlink", "shutil.copyfile", "shutil.move"))
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    realpath, join, fsdecode, sep = os.path.realpath, os.path.join, os.fsdecode, os.sep

    def kind(event):  # the ``forbidden`` kind of a refused audit event (or denied import)
        if event.startswith("socket."):
            return "network"
        return "process" if event in process_events else "introspection"

    def deny(exc, kind):
        if _len(refused) < 1000:
            refused.append((exc, kind))
        raise exc

    def inside(path):
        try:
            full = realpath(join(work, fsdecode(path)))
        except _Exception:
            return False
        return full == work or full.startswith(work + sep) or full == "/dev/null"

    def hook(event, args):
        if event in denied:
            deny(_PermissionError("sandbox: %s is not allowed" % event), kind(event))
        if event.startswith("ctypes.") or (event == "import" and args and args[0] in denied_imports):
            what = args[0] if event == "import" else event
            deny(_PermissionError("sandbox: %s is not allowed" % what), kind(what))
        if event in ("sys._getframe", "sys._getframemodulename"):
            deny(_ValueError("sandbox: frame introspection is not allowed"), "getframe")
        if event == "object.__getattr__" and _len(args) > 1 and args[1] in frame_attrs:
            deny(_PermissionError("sandbox: frame introspection is not allowed"), "introspection")
        if event == "sys.addaudithook":
            # RuntimeError: the hook is silently not added
            deny(_RuntimeError("sandbox: no further audit hooks"), "introspection")
        if event in ("os.kill", "os.killpg") and args and args[0] not in (me, 0):
            deny(_PermissionError("sandbox: signals to other processes are not allowed"), "process")
        if event == "open" and args and not _isinstance(args[0], _int):
            path, mode = args[0], args[1] if _len(args) > 1 else None
            flags = args[2] if _len(args) > 2 and _isinstance(args[2], _int) else 0
            try:
                text = fsdecode(path)
            except _Exception:
                text = ""
            if text.startswith("/proc/") and realpath(text).rsplit("/", 1)[-1] in ("mem", "pagemap", "map_files"):
                deny(_PermissionError("sandbox: reading process memory is not allowed"), "introspection")
            writing = (_isinstance(mode, _str) and _any(c in mode for c in "wax+")) or (flags & write_flags)
            # os.open (mode None) outside the folder is refused even for reading: a directory fd opened
            # there would let dir_fd-relative calls write outside.
            if (writing or mode is None) and not inside(path):
                deny(_PermissionError("sandbox: writing outside the working folder is not allowed"), "file")
        if event in changes and args:
            if _any(i < _len(args) and args[i] not in (None, -1) for i in changes[event]):
                deny(_PermissionError("sandbox: dir_fd arguments are not allowed"), "file")
            for a in args[:2] if event in two_paths else args[:1]:
                if _isinstance(a, _int) or not inside(a):  # an fd (fchmod, ftruncate) may be a file opened outside
                    deny(_PermissionError("sandbox: changing files outside the working folder is not allowed"), "file")

    _context = BaseException.__context__.__get__  # the descriptors: no attribute lookup the code could override
    _cause = BaseException.__cause__.__get__

    def kind_of(exc):
        if exc is None:
            for _, k in refused:
                if k != "getframe":
                    return k
            return None
        seen = 0
        todo = [exc]
        while todo and seen < 50:
            e = todo.pop()
            seen += 1
            for r, k in refused:
                if r is e:
                    return "introspection" if k == "getframe" else k
            for get in (_context, _cause):
                try:
                    nxt = get(e)
                except _BaseException:
                    nxt = None
                if nxt is not None:
                    todo.append(nxt)
        return None

    sys.addaudithook(hook)
    return kind_of


def _run(p, kind_of):
    """The worker thread: parse and harden the tests, run the code, run the tests, report (with the kind of
    forbidden operation that stopped the program, when one did: ``kind_of`` is the audit hook's).

    Why one function: the nonce must live in exactly one frame, this worker's bottom one, out of reach of
    signal handlers (main thread only) and of the audit-hooked introspection; helpers would hand it through
    more frames and closures."""
    import ast

    # Everything used after the code ran is bound now: the code may replace builtins and module attributes.
    _write, _exit, _type, _str, _BaseException = os.write, os._exit, type, str, BaseException
    _AssertionError, _SystemExit, _ValueError = AssertionError, SystemExit, ValueError
    _exec, _dict, _any = exec, dict, any  # replacing builtins.exec once skipped the tests and passed
    sfd, nonce = p["status_fd"], p.pop("nonce")
    code, tests = p.pop("code"), p.pop("tests")
    pristine = dict(builtins.__dict__)
    _live, _get, _missing = builtins.__dict__, dict.get, object()

    def tampered():
        # Did the code replace or delete a builtin? (The tests never see it: they run with the pristine copy.)
        return _any(_get(_live, k, _missing) is not v for k, v in pristine.items())

    def forbidden(e):
        kind = kind_of(e)
        if kind is None and _type(e) is _ValueError and _str(e).startswith("signal only works in main thread"):
            kind = "process"  # a signal handler: the code runs in a worker thread so that it cannot install one
        return kind

    def report(status, reason="", proof="-", kind=None):
        if kind is None and status != "passed":
            kind = "monkeypatch" if tampered() else kind_of(None)
        line = "%s\t%s\t%s\t%s\n" % (status, proof, kind or "-", reason[:500].replace("\n", " ").replace("\t", " "))
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
    safe, harden, tripped = _plain_value_checker(_type, _AssertionError)
    tests_code = compile(
        ast.fix_missing_locations(harden.visit(tree)), "<tests>", "exec", optimize=0, dont_inherit=True
    )
    ns = {"__name__": "solution", "__builtins__": dict(pristine)}
    try:
        exec(compile(code, "<solution>", "exec", optimize=0, dont_inherit=True), ns)
    except _SystemExit as e:
        report("failed", "the code called exit(%r) before the tests ran" % (e.code,), kind="exit")
        _exit(0)
    except _BaseException as e:
        report("error", "the code raised %s: %s" % (_type(e).__name__, _str(e)[:200]), kind=forbidden(e))
        _exit(0)
    tns = _dict(ns)
    tns["__builtins__"] = _dict(pristine)
    tns["__sandbox_safe__"] = safe
    try:
        _exec(tests_code, tns)
    except _AssertionError as e:
        kind = "monkeypatch" if any(t is e for t in tripped) else forbidden(e)
        report("failed", "assert failed: %s" % (_str(e)[:200] or "(no message)"), kind=kind)
        _exit(0)
    except _SystemExit as e:
        report("failed", "exit(%r) during the tests" % (e.code,), kind="exit")
        _exit(0)
    except _BaseException as e:
        report("error", "the tests raised %s: %s" % (_type(e).__name__, _str(e)[:200]), kind=forbidden(e))
        _exit(0)
    if tns.get("__sandbox_safe__") is not safe:
        report("failed", "the test helper was tampered with", kind="monkeypatch")
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
    AssertionError (remembered in the list returned third, so the harness can tell it from a plain failed
    assert); and an AST transformer that wraps every call result, comparison operand and truth
    value of every ``assert`` in ``__sandbox_safe__(...)``, so an object with a lying ``__eq__`` or an
    ``int`` subclass fails the assert instead of fooling it."""
    import ast

    plain = {int, float, complex, bool, str, bytes, type(None), list, tuple, dict, set, frozenset, range, type}
    containers = {list, tuple, set, frozenset}

    tripped = []

    def safe(v):
        stack, seen = [v], 0
        while stack:
            x = stack.pop()
            t = _type(x)
            seen += 1
            if t not in plain or seen > 200000:
                e = _AssertionError("a test compared a %s, not a plain built-in value" % t.__name__)
                if len(tripped) < 1000:
                    tripped.append(e)
                raise e
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

    return safe, Harden(), tripped


def _main():
    """Set up (limits, worker thread, audit hook), say ``ready``, wait for the parent's go, let the worker run.

    Any set-up failure is an infrastructure error, reported with the nonce as proof (see the module
    docstring); the thread is started before ``RLIMIT_NPROC`` is set, which counts it."""
    import _thread

    p = _read_job()
    status_fd, go_fd = p["status_fd"], p["go_fd"]
    gate = _thread.allocate_lock()
    gate.acquire()
    done = _thread.allocate_lock()
    done.acquire()
    hook = []

    def worker():
        try:
            gate.acquire()  # released only once everything below is in place
            _run(p, hook[0])
        finally:
            done.release()

    try:
        containment.contain(p)
        try:
            _thread.start_new_thread(worker, ())
        except BaseException as e:
            raise RuntimeError("could not start the harness thread (%s)" % e) from None
        containment.limit_processes(p)
        hook.append(_install_audit(os.path.realpath(p["workdir"])))
        os.write(status_fd, b"ready\t-\t-\t\n")
        go = os.read(go_fd, 1)
        os.close(go_fd)
    except BaseException as e:
        # No untrusted code has run (the worker waits at the gate): the nonce proves this report is ours.
        line = "infra\t%s\t-\tsandbox set-up failed: %s: %s\n" % (p.get("nonce", "-"), type(e).__name__, e)
        try:
            os.write(status_fd, line.replace("\n", " ").rstrip().encode("utf-8", "replace") + b"\n")
        except BaseException:
            pass
        os._exit(0)
    if go != b"g":
        os._exit(0)  # the parent gave up on this run before it started
    gate.release()
    try:
        done.acquire()  # the worker leaves with os._exit; getting here means it did not reach a verdict
        os.write(status_fd, b"failed\t-\t-\tthe harness thread ended without a verdict\n")
    except BaseException:
        pass
    os._exit(0)


if __name__ == "__main__":
    _main()
