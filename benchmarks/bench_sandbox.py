"""Benchmark: programs per second through the code sandbox, one at a time (``run_tests``) vs ``run_many``.

    .venv/bin/python -m benchmarks.bench_sandbox [--n 2000] [--workers W] [--timeout 5]

The programs are what a code-RLVR step scores: short functions (add, reverse, fibonacci, primes, max of a list,
vowel count, ...) with 5 asserts each, about 60% correct, 30% wrong and 10% hostile (exit(0), os._exit(0),
an always-equal object, a socket, a fork, monkeypatched builtins; no infinite loop, whose 5 s would swamp the
rest). Every program differs (a comment with its number), so ``run_many``'s de-duplication does not help it.
The ``--n`` programs are split evenly between the configurations: one at a time, then ``run_many`` with 2, 4
and 8 workers (or only ``--workers W``). Each result is checked against the program's known verdict (a
correct one must pass, the others must not): "wrong" counts the mismatches.

Then what was left behind after all of them: sandbox processes still alive (children of this process, or
with a working folder of this run in their environment), processes of this uid beyond the count at the start
(other work on a shared machine shows up here too: informative only), ``grpo_lab_sbx_*`` folders in the temp
folder, and this process's open file descriptors and threads, before vs after. Exits 1 if anything leaked
(or any verdict was wrong). The machine is shared: report the load average with the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grpo_lab.sandbox import isolation_mode, run_many, run_tests  # noqa: E402

TASKS = [
    # (correct solution, wrong solution, tests)
    (
        "def add(a, b):\n    return a + b\n",
        "def add(a, b):\n    return a - b\n",
        "assert add(1, 2) == 3\nassert add(-4, 4) == 0\nassert add(10, 5) == 15\nassert add(0, 0) == 0\n"
        "assert add(7, -9) == -2\n",
    ),
    (
        "def rev(s):\n    return s[::-1]\n",
        "def rev(s):\n    return s\n",
        "assert rev('abc') == 'cba'\nassert rev('') == ''\nassert rev('a') == 'a'\nassert rev('ab') == 'ba'\n"
        "assert rev('racecar') == 'racecar'\n",
    ),
    (
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
        "def fib(n):\n    return n\n",
        "assert fib(0) == 0\nassert fib(1) == 1\nassert fib(2) == 1\nassert fib(10) == 55\nassert fib(20) == 6765\n",
    ),
    (
        "def is_prime(n):\n    if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n"
        "        if n % i == 0:\n            return False\n        i += 1\n    return True\n",
        "def is_prime(n):\n    return n % 2 == 1\n",
        "assert is_prime(2)\nassert is_prime(97)\nassert not is_prime(1)\nassert not is_prime(91)\n"
        "assert not is_prime(100)\n",
    ),
    (
        "def biggest(xs):\n    best = xs[0]\n    for x in xs:\n        if x > best:\n            best = x\n    return best\n",
        "def biggest(xs):\n    return xs[-1]\n",
        "assert biggest([1, 5, 3]) == 5\nassert biggest([-2, -7]) == -2\nassert biggest([4]) == 4\n"
        "assert biggest([0, 9, 9, 1]) == 9\nassert biggest([3, 2, 1]) == 3\n",
    ),
    (
        "def vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n",
        "def vowels(s):\n    return len(s)\n",
        "assert vowels('hello') == 2\nassert vowels('') == 0\nassert vowels('AEIOU') == 5\nassert vowels('xyz') == 0\n"
        "assert vowels('Banana') == 3\n",
    ),
]
HOSTILE = [
    "import sys\nsys.exit(0)\n",
    "import os\nos._exit(0)\n",
    "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\n"
    "def add(a, b):\n    return A()\n",
    "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)\n",
    "import os\nos.fork()\n",
    "import builtins\nbuiltins.len = lambda x: 3\nbuiltins.isinstance = lambda *a: True\n",
]


def programs(n: int, offset: int = 0) -> list[tuple[str, str, bool]]:
    """``n`` distinct (code, tests, should_pass) jobs: 6 correct, 3 wrong, 1 hostile in every 10."""
    out = []
    for i in range(offset, offset + n):
        correct, wrong, tests = TASKS[i % len(TASKS)]
        kind = i % 10
        if kind < 6:
            code, ok = correct, True
        elif kind < 9:
            code, ok = wrong, False
        else:
            code, ok = HOSTILE[(i // 10) % len(HOSTILE)] + wrong, False  # hostile, and no right answer
        out.append((f"# sample {i}\n" + code, tests, ok))
    return out


def _sandbox_processes(marker: bytes) -> list[int]:
    me, found = os.getpid(), []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            env = Path(f"/proc/{d}/environ").read_bytes()
            stat = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if marker in env or int(stat[1]) == me:
            found.append(int(d))
    return found


def _uid_processes() -> int:
    uid, n = os.getuid(), 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                n += os.stat(f"/proc/{d}").st_uid == uid
            except OSError:
                pass
    return n


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _sbx_folders(base: str) -> list[str]:
    return [p for p in os.listdir(base) if p.startswith("grpo_lab_sbx_")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="programs in all, split between the configurations")
    ap.add_argument("--workers", type=int, default=None, help="only this run_many worker count (default 2, 4, 8)")
    ap.add_argument("--timeout", type=float, default=5.0, help="timeout_s of each program")
    args = ap.parse_args(argv)

    from grpo_lab.jobs.report import machine_info

    info = machine_info()
    system_tmp = tempfile.gettempdir()
    base = tempfile.mkdtemp(prefix="grpo_lab_bench_sbx_")
    tempfile.tempdir = base  # the sandboxes' working folders go here: countable, and a marker for their processes
    marker = b"TMPDIR=" + os.fsencode(base) + b"/"
    configs = [("run_tests, one at a time", 1, False)] + [
        (f"run_many, workers={w}", w, True) for w in ([args.workers] if args.workers else [2, 4, 8])
    ]
    per = max(1, args.n // len(configs))
    before = {
        "uid_processes": _uid_processes(),
        "fds": _fds(),
        "threads": threading.active_count(),
        "system_tmp_folders": len(_sbx_folders(system_tmp)),
    }
    rows, offset, wrong_total = [], 0, 0
    for label, workers, many in configs:
        jobs = programs(per, offset)
        offset += per
        t0 = time.perf_counter()
        if many:
            res = run_many([(c, t) for c, t, _ in jobs], args.timeout, workers=workers)
        else:
            res = [run_tests(c, t, args.timeout) for c, t, _ in jobs]
        dt = time.perf_counter() - t0
        counts = {s: sum(r.status == s for r in res) for s in ("passed", "failed", "error", "timeout", "killed")}
        wrong = sum(r.passed != ok for r, (_, _, ok) in zip(res, jobs))
        wrong_total += wrong
        rows.append((label, per, dt, per / dt, counts, wrong))
    deadline = time.monotonic() + 30  # a killed process is reaped a moment later
    while _sandbox_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    after = {
        "sandbox_processes": len(_sandbox_processes(marker)),
        "uid_processes": _uid_processes(),
        "fds": _fds(),
        "threads": threading.active_count(),
        "folders": len(_sbx_folders(base)),
        "system_tmp_folders": len(_sbx_folders(system_tmp)),
    }
    leaked = (
        after["sandbox_processes"] > 0
        or after["folders"] > 0
        or after["fds"] > before["fds"]
        or after["threads"] > before["threads"]
        or after["system_tmp_folders"] > before["system_tmp_folders"]
    )
    load_after = round(os.getloadavg()[0], 2)

    print(f"Sandbox throughput: isolation mode `{isolation_mode()}`, {info['cpu']}, {os.cpu_count()} CPUs, ")
    print(f"load average {info['load_avg_1m']} before, {load_after} after; timeout_s={args.timeout:g}; ")
    print(f"{offset} programs in all (60% correct, 30% wrong, 10% hostile). Shared machine: indicative numbers.\n")
    print("| configuration | programs | seconds | programs/s | passed | failed | error | timeout | killed | wrong |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, n, dt, rate, c, wrong in rows:
        print(
            f"| {label} | {n} | {dt:.1f} | {rate:.1f} | {c['passed']} | {c['failed']} | {c['error']} | "
            f"{c['timeout']} | {c['killed']} | {wrong} |"
        )
    print(f"\nLeft behind after {offset} programs:\n")
    print("| what | before | after |")
    print("|---|---:|---:|")
    print(f"| sandbox processes still alive | 0 | {after['sandbox_processes']} |")
    print(
        f"| processes of uid {os.getuid()} (whole machine, informative) | {before['uid_processes']} | "
        f"{after['uid_processes']} |"
    )
    print(f"| grpo_lab_sbx_* folders in the run's temp folder | 0 | {after['folders']} |")
    print(
        f"| grpo_lab_sbx_* folders in {system_tmp} | {before['system_tmp_folders']} | {after['system_tmp_folders']} |"
    )
    print(f"| open file descriptors of this process | {before['fds']} | {after['fds']} |")
    print(f"| threads of this process | {before['threads']} | {after['threads']} |")
    try:
        os.rmdir(base)
    except OSError:
        pass
    if leaked or wrong_total:
        print(
            f"\nFAIL: {'something leaked' if leaked else ''} {f'{wrong_total} wrong verdicts' if wrong_total else ''}"
        )
        return 1
    print("\nNothing leaked; every verdict as expected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
