"""How the sandbox's child walls itself in, before it runs anything: namespaces, read-only mounts, private tmpfs
folders, resource limits and a dedicated uid, according to the containment mode (``grpo_lab.sandbox.modes``).

Part of the child process (``harness.py`` imports it by file, before any untrusted code exists): standard library
only, no ``grpo_lab`` imports, nothing done at import time. ``harness`` then installs the audit hook and runs the
code; the parent side is ``runner``.
"""

import os
import sys

_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
_NS_MODES = ("namespaces+uid", "userns", "ctypes-userns")


def contain(p):
    """Mode-specific containment, then limits, then the privileges dropped; ``p`` is the job the parent sent.

    Everything that needs privileges happens here, before the audit hook goes in and before any untrusted code."""
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
    ):
        try:
            resource.setrlimit(r, v)
        except (ValueError, OSError):
            pass
    if not L.get("nproc_relative"):
        # The dedicated uid of namespaces+uid owns nothing else: an absolute cap, set before dropping to it.
        resource.setrlimit(resource.RLIMIT_NPROC, (L["nproc"],) * 2)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large file raises OSError instead of killing us
    if mode == "namespaces+uid":
        os.setgroups([])
        os.setgid(p["uid"])
        os.setuid(p["uid"])
    for name in ("ctypes", "_ctypes", "ctypes._endian", "resource"):
        sys.modules.pop(name, None)  # a later `import ctypes` must go through the audit hook's import check


def limit_processes(p):
    """``RLIMIT_NPROC`` where the child shares its uid with other processes (every mode but namespaces+uid):
    the uid's task count *now* plus ``nproc``.

    The kernel counts tasks (threads), per uid, against it, so the count must include every thread of every
    process of the uid, measured when the limit is set: the parent's own threads and the other sandboxes
    running beside this one included. The harness calls this after its worker thread exists, so the limit can
    never keep the harness itself from starting (a limit computed earlier, or from a process count, did: with
    32 runs at once the harness could not create its worker thread and the run looked like exit() in the code).
    Raises if the limit cannot be set (the harness reports that as an infrastructure error)."""
    import resource

    L = p["limits"]
    if not L.get("nproc_relative"):
        return
    limit = _task_count(os.getuid()) + int(L["nproc"])
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    sys.modules.pop("resource", None)


def _task_count(uid):
    """Threads of every process owned by ``uid`` (what ``RLIMIT_NPROC`` counts); a process that ends while
    being counted is skipped."""
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.stat("/proc/" + d).st_uid == uid:
                n += len(os.listdir("/proc/%s/task" % d))
        except OSError:
            pass
    return n


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
