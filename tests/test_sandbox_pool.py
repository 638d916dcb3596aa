"""run_many: the same verdicts as run_tests, in parallel; load never becomes a wrong reward; forbidden kinds."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from grpo_lab.course.gallery import GALLERY_SOLUTION, GALLERY_TESTS, HOSTILE_GALLERY
from grpo_lab.errors import GrpoLabError
from grpo_lab.sandbox import (
    FORBIDDEN_KINDS,
    HARNESS_PATH,
    MODES,
    STATUSES,
    CodeResult,
    SandboxInfrastructureError,
    available_modes,
    pool,
    run_many,
    run_tests,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox needs POSIX rlimits")
TIMEOUT = 2.0  # for programs that are meant to run out of time
SLOW_OK = 60.0  # for programs that finish on their own: no loaded machine reaches it
WRONG = "def add(a, b):\n    return 0\n"

# The gallery programs the sandbox stops for a forbidden operation, and which kind.
FORBIDDEN = {
    "busy child process": "process",
    "orphaned daemon": "process",
    "network": "network",
    "exit(0) before the tests": "exit",
    "os._exit(0) before the tests": "exit",
    "always-equal object": "monkeypatch",
    "int subclass": "monkeypatch",
    "monkeypatched builtins": "monkeypatch",
    "trace hook skips asserts": "introspection",
    "signal.alarm trick": "process",
    "ignores signals": "process",
    "kills its parent": "process",
    "nonce from the caller's frame": "introspection",
    "nonce from the garbage collector": "introspection",
    "nonce from a traceback": "introspection",
    "nonce from a signal handler's frame": "process",
}


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    base = tmp_path / "sbx"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    return base


_AVAILABLE = available_modes()


@pytest.mark.parametrize("mode", MODES)
def test_run_many_gives_run_tests_verdicts_in_every_mode(mode, monkeypatch, private_tmp):
    """The whole hostile gallery plus a correct and a wrong solution: run_many's (passed, status, forbidden) are
    sequential run_tests's, the gallery scores 0, and each program stopped for a forbidden operation says which."""
    if mode not in _AVAILABLE:
        pytest.skip(f"{mode} cannot start on this machine (available: {', '.join(_AVAILABLE)})")
    monkeypatch.setenv("GRPO_LAB_SANDBOX_MODE", mode)
    names = ["solution", "wrong", *HOSTILE_GALLERY]
    codes = [GALLERY_SOLUTION, WRONG, *(c for _, c, _ in HOSTILE_GALLERY.values())]
    # one timeout per call: the programs that are meant to run out of time get a short one, in both calls
    slow = {n for n, (_, _, exp) in HOSTILE_GALLERY.items() if "timeout" in exp}
    quick = [i for i, n in enumerate(names) if n not in slow]
    spin = [i for i, n in enumerate(names) if n in slow]
    many = {}
    for idx, t in ((quick, SLOW_OK), (spin, TIMEOUT)):
        for i, r in zip(idx, run_many([(codes[i], GALLERY_TESTS) for i in idx], t, workers=4)):
            many[names[i]] = r
    for i, name in enumerate(names):
        seq = run_tests(codes[i], GALLERY_TESTS, TIMEOUT if name in slow else SLOW_OK)
        got = many[name]
        assert (got.passed, got.status, got.forbidden) == (seq.passed, seq.status, seq.forbidden), (
            mode,
            name,
            got.reason,
            seq.reason,
        )
        assert got.isolation == mode
        if name in HOSTILE_GALLERY:
            assert not got.passed and got.status in HOSTILE_GALLERY[name][2], (mode, name, got.status, got.reason)
            assert got.forbidden == FORBIDDEN.get(name, got.forbidden), (mode, name, got.forbidden, got.reason)
            assert got.forbidden is None or got.forbidden in FORBIDDEN_KINDS
    assert many["solution"].passed and many["solution"].forbidden is None
    assert many["wrong"].status == "failed" and many["wrong"].forbidden is None
    assert list(private_tmp.iterdir()) == []


def test_the_code_cannot_forge_an_infrastructure_error():
    """An "infra" report needs the nonce (only the harness's set-up, before any code runs, writes one): forged
    lines on every descriptor followed by os._exit stay a failure about the code, never a retry."""
    forge = (
        "import os\nfor fd in range(3, 64):\n    try:\n"
        "        os.write(fd, b'infra\\t-\\t-\\toverloaded\\nready\\t-\\t-\\t\\n')\n"
        "    except OSError:\n        pass\nos._exit(0)\n"
    )
    for r in (run_tests(forge, GALLERY_TESTS, SLOW_OK), run_many([(forge, GALLERY_TESTS)], SLOW_OK)[0]):
        assert not r.passed and r.status == "failed" and r.forbidden == "exit", r
    sleeper = "import time\ntime.sleep(30)\n"  # little CPU and no wait for one: a timeout, not an overload
    r = run_many([(sleeper, GALLERY_TESTS)], TIMEOUT, retries=0)[0]
    assert r.status == "timeout", r


def test_a_set_up_failure_is_infra_and_not_a_verdict():
    """1 MB of address space: the harness cannot even start its worker thread. Nothing of the code ran, so
    run_tests says infra (with the harness's reason) and run_many raises instead of returning a 0."""
    r = run_tests(GALLERY_SOLUTION, GALLERY_TESTS, SLOW_OK, memory_mb=1)
    assert r.status == "infra" and not r.passed and "set-up" in r.reason, r
    assert "infra" in STATUSES
    with pytest.raises(SandboxInfrastructureError, match="Fix:"):
        run_many([(GALLERY_SOLUTION, GALLERY_TESTS)], SLOW_OK, retries=1, memory_mb=1)


def _fake_run_tests(calls: list, statuses: list[str] | None = None):
    def fake(code, tests, timeout_s=5.0, **kw):
        calls.append((code, tests))
        status = statuses.pop(0) if statuses else "passed"
        return CodeResult(status == "passed", status, reason=f"fake {status}", isolation="fake")

    return fake


def test_identical_jobs_run_once_and_results_keep_the_input_order(monkeypatch):
    calls: list = []
    monkeypatch.setattr(pool, "run_tests", _fake_run_tests(calls))
    jobs = [(f"def add(a, b):\n    return a + b + {i % 3}\n", GALLERY_TESTS) for i in range(12)]
    jobs += [(jobs[0][0], "assert add(0, 0) == 0\n")]  # same code, other tests: its own run
    out = run_many(jobs, workers=4)
    assert len(calls) == 4 and len(set(calls)) == 4
    assert len(out) == len(jobs) and all(r.passed for r in out)
    assert len({id(r) for r in out}) == len(out)  # copies: changing one result does not change the others


def test_retries_are_bounded_then_an_error_names_the_fix(monkeypatch):
    monkeypatch.setattr(pool, "BACKOFF_S", 0.0)
    calls: list = []
    monkeypatch.setattr(pool, "run_tests", _fake_run_tests(calls, ["infra"] * 10))
    with pytest.raises(SandboxInfrastructureError) as e:
        run_many([("x = 1\n", GALLERY_TESTS)], retries=2)
    assert len(calls) == 3 and isinstance(e.value, GrpoLabError) and "workers=1" in str(e.value)
    # one infra then a verdict: the verdict comes back; a failure is a verdict and is never run again
    calls.clear()
    monkeypatch.setattr(pool, "run_tests", _fake_run_tests(calls, ["infra", "failed", "passed"]))
    out = run_many([("a = 1\n", GALLERY_TESTS), ("b = 2\n", GALLERY_TESTS)], workers=1, retries=2)
    assert [r.status for r in out] == ["passed", "failed"] and len(calls) == 3


# --------------------------------------------------------------------------------------------------
# Load as an unprivileged user: 32 correct solutions at once must all pass (or, raw, at worst be "infra")
# --------------------------------------------------------------------------------------------------

_AS_USER = r"""
import json, os, concurrent.futures as cf
from grpo_lab.course.gallery import GALLERY_SOLUTION, GALLERY_TESTS
from grpo_lab.sandbox import available_modes, run_many, run_tests
out = {"uid": os.getuid(), "modes": {}}
for mode in available_modes():
    os.environ["GRPO_LAB_SANDBOX_MODE"] = mode
    # 32 different programs (a comment each), so that run_many's de-duplication does not merge them
    jobs = [(GALLERY_SOLUTION + "# %d\n" % i, GALLERY_TESTS) for i in range(32)]
    many = run_many(jobs, 60.0, workers=32)
    with cf.ThreadPoolExecutor(32) as ex:
        raw = list(ex.map(lambda j: run_tests(j[0], j[1], 60.0), jobs))
    out["modes"][mode] = {k: [[r.passed, r.status, r.reason] for r in rs] for k, rs in (("many", many), ("raw", raw))}
print(json.dumps(out))
"""

# As root in a private mount namespace: make the interpreter readable to the throwaway uid, then drop to it.
_AS_ROOT = r"""
import ctypes, os, runpy, sys
containment = runpy.run_path(os.path.join(os.path.dirname(sys.argv[1]), "containment.py"))
containment["_expose_python"](ctypes.CDLL(None, use_errno=True))
os.execv(sys.argv[2], sys.argv[2:])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux uids and namespaces")
def test_thirty_two_at_once_as_an_unprivileged_user(tmp_path):
    """The measured bug: as a non-root user in audit-hook mode, 27 of 32 correct solutions run at once came back
    "failed" (the harness could not start its thread under RLIMIT_NPROC and exited 0, like exit() in the code).
    In every mode a throwaway uid can start: run_many with 32 workers passes all 32, and raw run_tests from 32
    threads never gives a verdict other than passed (infra at worst: no reward made up)."""
    if os.geteuid() != 0:
        pytest.skip("creating a throwaway uid needs root (the tests run as root on the course machines)")
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if not setpriv or not unshare:
        pytest.skip("needs util-linux setpriv and unshare to run as a throwaway uid")
    uid = random.SystemRandom().randrange(1 << 20, 1 << 30)
    home = Path(tempfile.mkdtemp(prefix="grpo_lab_user_", dir="/tmp"))
    src = Path(tempfile.mkdtemp(prefix="grpo_lab_src_", dir="/var/cache" if os.path.isdir("/var/cache") else "/"))
    try:
        os.chown(home, uid, uid)
        src.chmod(0o755)
        shutil.copytree(
            Path(__file__).resolve().parents[1] / "grpo_lab",
            src / "grpo_lab",
            ignore=shutil.ignore_patterns("data", "__pycache__"),
        )
        script = home / "as_user.py"
        script.write_text(_AS_USER)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(home),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(src),
        }
        drop = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        cmd = [unshare, "--mount", "--propagation", "private", sys.executable, "-I", "-c", _AS_ROOT, HARNESS_PATH]
        cmd += [*drop, sys.executable, str(script)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(home))
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["uid"] == uid and "audit-hook" in out["modes"], out.get("modes", {}).keys()
        for mode, res in out["modes"].items():
            bad = [r for r in res["many"] if not r[0]]
            assert not bad, (mode, "run_many", len(bad), bad[:3])
            wrong = [r for r in res["raw"] if r[1] not in ("passed", "infra")]
            assert not wrong, (mode, "run_tests", len(wrong), wrong[:3])
        print(
            "modes:",
            ", ".join(
                f"{m}: raw {[r[1] for r in v['raw']].count('passed')}/32 passed" for m, v in out["modes"].items()
            ),
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)


def test_run_many_handles_odd_inputs():
    assert run_many([]) == []
    out = run_many([(None, GALLERY_TESTS), (GALLERY_SOLUTION, GALLERY_TESTS)], SLOW_OK, workers=2)
    assert [r.status for r in out] == ["error", "passed"]
    with cf.ThreadPoolExecutor(2) as ex:  # run_many itself may be called from several threads
        a, b = ex.map(lambda w: run_many([(WRONG, GALLERY_TESTS)], SLOW_OK, workers=w), (1, 2))
    assert a[0].status == b[0].status == "failed"
