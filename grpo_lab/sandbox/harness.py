"""The sandbox's child process: reads its job from stdin, contains itself, runs the code, then the tests.

This file runs as a script in an isolated interpreter (``python -I -S -B harness.py``) started by
``grpo_lab.sandbox.runner.run_tests``; it must not import ``grpo_lab`` (nor anything outside the standard
library). It reports on a private pipe one line ``status<TAB>proof<TAB>reason``; the parent counts a pass
only when the proof is the nonce it sent, which the harness writes only after the tests ran to their end.

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

_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
_NS_MODES = ("namespaces+uid", "userns", "ctypes-userns")


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


def _contain(p):
    """Mode-specific containment, then limits; everything that needs privileges happens here, first."""
    import resource
    import signal

    mode, work, L = p["mode"], p["workdir"], p["limits"]
    if mode in _NS_MODES:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if mode == "ctypes-userns":
            _ctypes_unshare(libc)
        size = ("size=%dm,mode=1777" % L["tmpfs_mb"]).encode()
        for d in _TMP_DIRS:
            if os.path.isdir(d):
                libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, size)
        os.makedirs(work, exist_ok=True)
        if mode == "namespaces+uid":
            os.chown(work, p["uid"], p["uid"])
            _expose_python(libc)
        _read_only_root(libc)
    elif mode == "bwrap":
        os.makedirs(work, exist_ok=True)
    os.chdir(work)
    cpu = L["cpu_s"]
    for r, v in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (L["memory_bytes"],) * 2),
        (resource.RLIMIT_FSIZE, (L["file_bytes"],) * 2),
        (resource.RLIMIT_NOFILE, (L["nofile"],) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_NPROC, (L["nproc"],) * 2),
    ):
        try:
            resource.setrlimit(r, v)
        except (ValueError, OSError):
            pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large file raises OSError instead of killing us
    if mode == "namespaces+uid":
        os.setgroups([])
        os.setgid(p["uid"])
        os.setuid(p["uid"])
    for name in ("ctypes", "_ctypes", "ctypes._endian", "resource"):
        sys.modules.pop(name, None)  # a later `import ctypes` must go through the audit hook's import check
    _install_audit(os.path.realpath(work))


def _ctypes_unshare(libc):
    # New user, mount and network namespaces for this very process (Python 3.11 has no os.unshare).
    CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, MS_REC, MS_PRIVATE = 0x20000, 0x10000000, 0x40000000, 16384, 1 << 18
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) != 0:
        raise SystemExit("sandbox: unshare failed")
    for name, text in (("setgroups", "deny"), ("uid_map", "0 %d 1" % uid), ("gid_map", "0 %d 1" % gid)):
        try:
            with open("/proc/self/" + name, "w") as f:
                f.write(text)
        except OSError:
            pass
    libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None)


def _read_only_root(libc):
    """Every mount read-only (recursively, mount_setattr(2), Linux 5.12+), except our private tmpfs folders.

    In a user namespace the code runs as a uid mapped to the real user, so without this it could change
    the user's own files; remounting read-only is allowed there (clearing read-only on inherited mounts
    is not, which is why the tmpfs folders, mounted by us, can be made writable again).
    """
    import ctypes

    class MountAttr(ctypes.Structure):
        _fields_ = [
            ("attr_set", ctypes.c_uint64),
            ("attr_clr", ctypes.c_uint64),
            ("propagation", ctypes.c_uint64),
            ("userns_fd", ctypes.c_uint64),
        ]

    SYS_mount_setattr, AT_FDCWD, AT_RECURSIVE, RDONLY = 442, -100, 0x8000, 0x1
    libc.syscall.restype = ctypes.c_long

    def setattr_(path, set_, clr):
        a = MountAttr(set_, clr, 0, 0)
        return libc.syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, ctypes.byref(a), ctypes.sizeof(a))

    if setattr_(b"/", RDONLY, 0) != 0:
        _read_only_root_by_remount(libc)
    for d in _TMP_DIRS:
        if os.path.isdir(d):
            setattr_(d.encode(), 0, RDONLY)


def _read_only_root_by_remount(libc):
    # Kernels before 5.12: remount each mount point read-only, keeping the flags a user namespace may
    # not clear (nosuid, nodev, noexec), which would otherwise make the remount fail.
    MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
    try:
        lines = open("/proc/self/mountinfo").read().splitlines()
    except OSError:
        return
    for line in lines:
        parts = line.split()
        point, opts = parts[4], parts[5].split(",")
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for name, bit in (("nosuid", MS_NOSUID), ("nodev", MS_NODEV), ("noexec", MS_NOEXEC)):
            if name in opts:
                flags |= bit
        libc.mount(None, point.encode(), None, flags, None)


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
    _contain(p)
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
