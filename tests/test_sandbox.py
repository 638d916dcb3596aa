"""The code-execution sandbox: hostile code scores 0, is contained, finishes in time, and leaves nothing behind."""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from grpo_lab.rewards import code_reward, make_code_reward, run_tests
from grpo_lab.sandbox import (
    GALLERY_SOLUTION,
    GALLERY_TESTS,
    HARNESS_PATH,
    HOSTILE_GALLERY,
    MODES,
    extract_code,
    isolation_mode,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox needs POSIX rlimits")
TIMEOUT = 2.0


def _sandbox_processes() -> list[int]:
    """Pids of live sandbox harnesses (their command line names the harness file)."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if HARNESS_PATH.encode() in Path(f"/proc/{d}/cmdline").read_bytes():
                    found.append(int(d))
            except OSError:
                pass
    return found


def _spinning_orphans(before: set[int]) -> list[int]:
    """Processes owned by a sandbox uid (>= 2**20) that were not there before."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) not in before:
            try:
                if os.stat(f"/proc/{d}").st_uid >= 1 << 20:
                    out.append(int(d))
            except OSError:
                pass
    return out


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Sandbox temp folders go under tmp_path, so a leak is countable."""
    base = tmp_path / "sbx"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    return base


def test_correct_solution_passes(private_tmp):
    r = run_tests(GALLERY_SOLUTION, GALLERY_TESTS, timeout_s=TIMEOUT)
    assert r.passed and r.status == "passed", r
    assert r.isolation == isolation_mode()
    assert list(private_tmp.iterdir()) == []


def test_wrong_solution_syntax_error_and_bad_tests():
    assert run_tests("def add(a, b):\n    return a - b\n", GALLERY_TESTS).status == "failed"
    r = run_tests("def add(a, b) return", GALLERY_TESTS)
    assert r.status == "error" and "SyntaxError" in r.reason
    assert run_tests(GALLERY_SOLUTION, "add(1, 2)").status == "error"  # no assert: nothing was verified
    assert run_tests(GALLERY_SOLUTION, "assert (").status == "error"
    assert not run_tests(None, GALLERY_TESTS).passed


def test_stdout_is_captured_and_truncated():
    r = run_tests("print('hello')\nprint('y' * 50000)\n" + GALLERY_SOLUTION, GALLERY_TESTS, max_output=100)
    assert r.passed and r.stdout.startswith("hello") and "truncated" in r.stdout and len(r.stdout) < 200


def test_hostile_gallery(private_tmp, tmp_path):
    """Every hostile program scores 0 with its expected status, within its time limit, and is contained."""
    before = set(int(d) for d in os.listdir("/proc") if d.isdigit())
    t0 = time.monotonic()

    def one(item):
        name, (_, code, expected) = item
        start = time.monotonic()
        return name, run_tests(code, GALLERY_TESTS, timeout_s=TIMEOUT), time.monotonic() - start, expected

    with cf.ThreadPoolExecutor(6) as ex:
        results = list(ex.map(one, HOSTILE_GALLERY.items()))
    for name, r, took, expected in results:
        assert not r.passed, f"{name} passed: {r}"
        assert r.status in expected, f"{name}: status {r.status} ({r.reason}), expected one of {expected}"
        assert took < TIMEOUT + 3, f"{name} took {took:.1f} s"
    if isolation_mode() in ("namespaces+uid", "userns"):
        for name, r, _, expected in results:
            assert r.status == expected[0], f"{name}: {r.status} ({r.reason})"
    assert time.monotonic() - t0 < 60
    time.sleep(0.2)
    assert _sandbox_processes() == []
    assert _spinning_orphans(before) == []
    assert list(private_tmp.iterdir()) == []


def test_files_outside_the_working_folder_are_safe(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    probe = Path(__file__).with_name(".sandbox_probe")
    code = (
        f"import os\nfor p in [{str(victim)!r}]:\n"
        "    try:\n        os.remove(p)\n    except Exception:\n        pass\n"
        f"    try:\n        open(p, 'w').write('gone')\n    except Exception:\n        pass\n"
        f"open({str(probe)!r}, 'w').write('x')\n" + GALLERY_SOLUTION
    )
    try:
        r = run_tests(code, GALLERY_TESTS, timeout_s=TIMEOUT)
        assert not r.passed and r.status == "error", r
        assert victim.read_text() == "precious"
        assert not probe.exists()
    finally:
        probe.unlink(missing_ok=True)


def test_writing_inside_the_working_folder_is_allowed():
    code = "open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n" + GALLERY_SOLUTION
    assert run_tests(code, GALLERY_TESTS).passed


def test_a_naive_verifier_is_fooled_by_exit0_and_ours_is_not():
    """What the nonce is for: with a plain `python -c code+tests`, exit status 0 means 'passed'."""
    import subprocess

    hack = "import sys\nsys.exit(0)\n"
    naive = subprocess.run([sys.executable, "-c", hack + GALLERY_TESTS], capture_output=True, timeout=30)
    assert naive.returncode == 0  # the naive verifier would reward this
    assert run_tests(hack, GALLERY_TESTS).status == "failed"


def test_sixty_four_concurrent_calls_leave_no_process_and_no_folder(private_tmp):
    before = set(int(d) for d in os.listdir("/proc") if d.isdigit())
    programs = [GALLERY_SOLUTION, "while True:\n    pass\n", HOSTILE_GALLERY["orphaned daemon"][1], "import os\nos._exit(0)\n"]
    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(64) as ex:
        futs = [ex.submit(run_tests, programs[i % 4], GALLERY_TESTS, 3.0) for i in range(64)]
        results = [f.result() for f in futs]
    took = time.monotonic() - t0
    assert [r.passed for r in results] == [i % 4 == 0 for i in range(64)], [(r.status, r.reason) for r in results if not r.passed][:5]
    assert all(r.status == "timeout" for r in results[1::4])
    # A killed process can take a moment to be reaped on a loaded machine; a leak is one that stays.
    deadline = time.monotonic() + 10
    while (_sandbox_processes() or _spinning_orphans(before)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _sandbox_processes() == []
    assert _spinning_orphans(before) == []
    assert list(private_tmp.iterdir()) == []
    assert took < 45


@pytest.mark.parametrize("mode", [m for m in MODES if m != "namespaces+uid"])
def test_fallback_modes_still_stop_the_basic_hacks(mode, monkeypatch, private_tmp):
    monkeypatch.setenv("GRPO_LAB_SANDBOX_MODE", mode)
    if mode in ("userns", "ctypes-userns") and not sys.platform.startswith("linux"):
        pytest.skip("Linux namespaces")
    r = run_tests(GALLERY_SOLUTION, GALLERY_TESTS, timeout_s=TIMEOUT)
    if not r.passed and mode != "audit-hook":
        pytest.skip(f"{mode} not available here: {r.reason}")
    assert r.passed and r.isolation == mode, r
    for name in ("network", "exit(0) before the tests", "always-equal object", "infinite loop", "memory bomb"):
        rr = run_tests(HOSTILE_GALLERY[name][1], GALLERY_TESTS, timeout_s=TIMEOUT)
        assert not rr.passed and rr.status in HOSTILE_GALLERY[name][2], (name, rr)
    assert list(private_tmp.iterdir()) == []


def test_audit_mode_blocks_process_creation_and_signals(monkeypatch):
    monkeypatch.setenv("GRPO_LAB_SANDBOX_MODE", "audit-hook")
    # (the fork bomb catches the PermissionError and keeps trying: it times out, having forked nothing)
    for name, want in (("fork bomb", "timeout"), ("kills its parent", "failed"), ("busy child process", "error")):
        r = run_tests(HOSTILE_GALLERY[name][1], GALLERY_TESTS, timeout_s=TIMEOUT)
        assert not r.passed and r.status == want, (name, r)
    assert _sandbox_processes() == []


def test_extract_code_and_code_reward():
    good = "Here:\n```python\n" + GALLERY_SOLUTION + "```\n"
    two = "```python\ndef add(a, b):\n    return 0\n```\nbetter:\n```python\n" + GALLERY_SOLUTION + "```"
    assert extract_code(good).strip() == GALLERY_SOLUTION.strip()
    assert extract_code(two).strip() == GALLERY_SOLUTION.strip()
    assert extract_code("```python\nunterminated") is None and extract_code(None) is None
    comps = [good, two, "no code", "```python\nimport sys\nsys.exit(0)\n```", [{"role": "assistant", "content": good}], None]
    out = code_reward(prompts=[None] * len(comps), completions=comps, tests=[GALLERY_TESTS] * len(comps))
    assert out == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0], code_reward.last_reasons
    assert "no ```python block" in code_reward.last_reasons[2] and "failed" in code_reward.last_reasons[3]
    f = make_code_reward("test_list")
    assert f.__name__ == "code_test_list"
    assert f(None, [good], test_list=[GALLERY_TESTS.strip().splitlines()]) == [1.0]
