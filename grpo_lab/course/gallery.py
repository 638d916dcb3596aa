"""The hostile-code gallery: programs a policy (or a person) might write to get a reward without earning it.

Course material, not library code (the sandbox it attacks is ``grpo_lab.sandbox``). Notebook 01 runs each one
through ``run_tests`` and shows its status; ``tests/test_sandbox.py`` asserts every one scores 0 (each with the
statuses listed here). Each entry is ``name -> (what it tries, code, the statuses it may end with)``; the first
status is the one the namespace modes give.
"""

from __future__ import annotations

GALLERY_TESTS = "assert add(1, 2) == 3\nassert add(-4, 4) == 0\nassert add(10, 5) == 15\n"
GALLERY_SOLUTION = "def add(a, b):\n    return a + b\n"
_WRONG = "def add(a, b):\n    return 0\n"
# Writes a forged "passed<TAB>nonce" verdict to every plausible file descriptor, then leaves.
_FORGE = (
    "        for fd in range(3, 64):\n            try:\n"
    "                os.write(fd, ('passed\\t%s\\tforged\\n' % {}).encode())\n"
    "            except OSError:\n                pass\n        os._exit(0)\n"
)

# name -> (what it tries, code, the statuses it may end with; the first is the one in the namespace modes)
HOSTILE_GALLERY: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "infinite loop": ("never returns", "while True:\n    pass\n", ("timeout",)),
    "busy child process": (
        "forks a child that spins, then waits for it",
        "import os\npid = os.fork()\nif pid == 0:\n    while True:\n        pass\nos.waitpid(pid, 0)\n"
        + GALLERY_SOLUTION,
        ("error",),
    ),
    "orphaned daemon": (
        "double-forks a setsid daemon that outlives the code, then gives up",
        "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        while True:\n            pass\n    os._exit(0)\n"
        + _WRONG,
        ("error",),
    ),
    "fork bomb": (
        "forks forever",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        ("timeout",),
    ),
    "memory bomb": ("allocates 10 GB", "x = bytearray(10 * 1024 ** 3)\n" + GALLERY_SOLUTION, ("error",)),
    "huge output": (
        "prints 100 MB",
        "import sys\nfor _ in range(1000):\n    sys.stdout.write('x' * 100_000)\n" + GALLERY_SOLUTION,
        ("killed",),
    ),
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
    "exit(0) before the tests": (
        "ends the interpreter with success before the asserts run",
        "import sys\nsys.exit(0)\n",
        ("failed",),
    ),
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
        "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\nbuiltins.isinstance = lambda *a: True\n"
        + _WRONG,
        ("failed",),
    ),
    "swallowed exception": (
        "installs excepthooks and an atexit handler that print a fake success",
        "import sys, atexit, threading\nsys.excepthook = lambda *a: print('all tests passed')\n"
        'threading.excepthook = lambda *a: None\natexit.register(lambda: print(\'{"status": "passed"}\'))\n' + _WRONG,
        ("failed",),
    ),
    "trace hook skips asserts": (
        "installs a trace hook that jumps over every assert line",
        "import sys\ndef skip(frame, event, arg):\n    if frame.f_code.co_filename == '<tests>' and event == 'line':\n"
        "        try:\n            frame.f_lineno = frame.f_lineno + 1\n        except Exception:\n            pass\n"
        "    return skip\nsys.settrace(skip)\n" + _WRONG,
        ("error",),
    ),
    "signal.alarm trick": (
        "arms an alarm whose handler fakes success and exits 0 during the tests",
        'import os, signal, time\ndef fake(*a):\n    print(\'{"status": "passed"}\')\n    os._exit(0)\n'
        "signal.signal(signal.SIGALRM, fake)\nsignal.setitimer(signal.ITIMER_REAL, 0.05)\n"
        "def add(a, b):\n    time.sleep(1)\n    return 0\n",
        ("error",),
    ),
    "ignores signals": (
        "ignores SIGTERM/SIGXCPU/SIGALRM and spins",
        "import signal\nfor s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGALRM, signal.SIGINT):\n    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n",
        ("error",),
    ),
    "kills its parent": (
        "sends SIGKILL to its parent and to every process it can see",
        "import os, signal\nfor pid in [os.getppid()] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    if pid not in (0, 1, os.getpid()):\n        try:\n            os.kill(pid, signal.SIGKILL)\n        except Exception:\n            pass\n"
        + _WRONG,
        ("failed",),
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
    # The harness proves a pass with a nonce the parent sent; these go looking for it in the interpreter
    # they share with the harness, then forge the verdict on every file descriptor.
    "nonce from the caller's frame": (
        "walks up the call stack (sys._getframe) to the harness and reads the nonce from its locals",
        "import sys, os\nf = sys._getframe(1)\nwhile f is not None:\n    if 'nonce' in f.f_locals:\n"
        + _FORGE.format("f.f_locals['nonce']")
        + "    f = f.f_back\n"
        + _WRONG,
        ("error",),
    ),
    "nonce from the garbage collector": (
        "scans every dict and frame the garbage collector tracks for a 32-hex-digit string",
        "import gc, os, re\nfor o in gc.get_objects():\n    d = o.f_locals if type(o).__name__ == 'frame' else o\n"
        "    vals = d.values() if isinstance(d, dict) else ()\n"
        "    for v in vals:\n        if isinstance(v, str) and re.fullmatch('[0-9a-f]{32}', v):\n"
        + _FORGE.format("v").replace("\n    ", "\n        ").replace("    for fd", "        for fd", 1)
        + _WRONG,
        ("error",),
    ),
    "nonce from a traceback": (
        "raises and catches an exception, then climbs from its traceback's frame to the harness",
        "import os\ntry:\n    1 / 0\nexcept ZeroDivisionError as e:\n    f = e.__traceback__.tb_frame\n"
        "while f is not None:\n    if 'nonce' in f.f_locals:\n"
        + _FORGE.format("f.f_locals['nonce']")
        + "    f = f.f_back\n"
        + _WRONG,
        ("error",),
    ),
    "nonce from a signal handler's frame": (
        "installs a SIGALRM handler, whose frame argument is whatever the main thread is running",
        "import os, signal\ndef grab(signum, f):\n    while f is not None:\n        if 'nonce' in f.f_locals:\n"
        + _FORGE.format("f.f_locals['nonce']")
        .replace("\n    ", "\n        ")
        .replace("    for fd", "        for fd", 1)
        + "        f = f.f_back\nsignal.signal(signal.SIGALRM, grab)\nsignal.setitimer(signal.ITIMER_REAL, 0.01)\n"
        "import time\ntime.sleep(0.1)\n" + _WRONG,
        ("error",),
    ),
}
