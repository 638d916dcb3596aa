"""The sandbox's child process: reads its job from stdin, contains itself, runs the code, then the tests.

This file runs as a script in an isolated interpreter (``python -I -S -B harness.py``) started by
``grpo_lab.sandbox.runner.run_tests``; it must not import ``grpo_lab`` (nor anything outside the standard
library). It reports on a private pipe one line ``status<TAB>proof<TAB>reason``; the parent counts a pass
only when the proof is the nonce it sent, which the harness writes only after the tests ran to their end.
"""

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


if __name__ == "__main__":
    _harness(_boot())
