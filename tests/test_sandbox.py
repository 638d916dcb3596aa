"""The code-execution sandbox: hostile code scores 0, is contained, finishes in time, and leaves nothing behind."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from grpo_lab.course.gallery import GALLERY_SOLUTION, GALLERY_TESTS, HOSTILE_GALLERY
from grpo_lab.rewards import code_reward, make_code_reward, run_tests
from grpo_lab.sandbox import (
    HARNESS_PATH,
    MODES,
    available_modes,
    extract_code,
    isolation_mode,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox needs POSIX rlimits")
TIMEOUT = 2.0  # for programs that are meant to run out of time
# For programs that finish on their own: a limit no loaded machine reaches, so a status never depends on load.
SLOW_OK = 60.0


def _ours(pid: str) -> bool:
    """True for a process started by this test: sandbox children inherit ``TMPDIR`` = a working folder made
    under ``tempfile.gettempdir()``, which the ``private_tmp`` fixture makes private to the test. Other tests
    running sandboxes at the same time (another xdist worker, a notebook) are not this test's leaks."""
    marker = b"TMPDIR=" + os.fsencode(tempfile.gettempdir()) + b"/"
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def _sandbox_processes() -> list[int]:
    """Pids of this test's live sandbox harnesses (their command line names the harness file)."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if HARNESS_PATH.encode() in Path(f"/proc/{d}/cmdline").read_bytes() and _ours(d):
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
                if os.stat(f"/proc/{d}").st_uid >= 1 << 20 and _ours(d):
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
    r = run_tests(GALLERY_SOLUTION, GALLERY_TESTS, timeout_s=SLOW_OK)
    assert r.passed and r.status == "passed", r
    assert r.isolation == isolation_mode()
    assert list(private_tmp.iterdir()) == []


def test_wrong_solution_syntax_error_and_bad_tests():
    assert run_tests("def add(a, b):\n    return a - b\n", GALLERY_TESTS, SLOW_OK).status == "failed"
    r = run_tests("def add(a, b) return", GALLERY_TESTS, SLOW_OK)
    assert r.status == "error" and "SyntaxError" in r.reason
    assert run_tests(GALLERY_SOLUTION, "add(1, 2)", SLOW_OK).status == "error"  # no assert: nothing was verified
    assert run_tests(GALLERY_SOLUTION, "assert (", SLOW_OK).status == "error"
    assert not run_tests(None, GALLERY_TESTS).passed


def test_stdout_is_captured_and_truncated():
    r = run_tests("print('hello')\nprint('y' * 50000)\n" + GALLERY_SOLUTION, GALLERY_TESTS, SLOW_OK, max_output=100)
    assert r.passed and r.stdout.startswith("hello") and "truncated" in r.stdout and len(r.stdout) < 200


def _wait_until_reaped(before: set[int], seconds: float = 120.0) -> None:
    """Poll until no sandbox process is left: a killed process is reaped a moment later, longer on a loaded
    machine. A leak is a process that is still there after the deadline."""
    deadline = time.monotonic() + seconds
    while (_sandbox_processes() or _spinning_orphans(before)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sandbox_processes() == []
    assert _spinning_orphans(before) == []


def _run_gallery() -> list[tuple[str, object, tuple[str, ...]]]:
    def one(item):
        name, (_, code, expected) = item
        return name, run_tests(code, GALLERY_TESTS, timeout_s=TIMEOUT if "timeout" in expected else SLOW_OK), expected

    with cf.ThreadPoolExecutor(6) as ex:
        return list(ex.map(one, HOSTILE_GALLERY.items()))


def test_hostile_gallery(private_tmp, tmp_path):
    """Every hostile program scores 0 with its expected status, is contained, and leaves nothing behind."""
    before = set(int(d) for d in os.listdir("/proc") if d.isdigit())
    for name, r, expected in _run_gallery():
        assert not r.passed, f"{name} passed: {r}"
        assert r.status in expected, f"{name}: status {r.status} ({r.reason}), expected one of {expected}"
    _wait_until_reaped(before)
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
        r = run_tests(code, GALLERY_TESTS, timeout_s=SLOW_OK)
        assert not r.passed and r.status == "error", r
        assert victim.read_text() == "precious"
        assert not probe.exists()
    finally:
        probe.unlink(missing_ok=True)


def test_writing_inside_the_working_folder_is_allowed():
    code = "open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n" + GALLERY_SOLUTION
    assert run_tests(code, GALLERY_TESTS, SLOW_OK).passed


def test_a_naive_verifier_is_fooled_by_exit0_and_ours_is_not():
    """What the nonce is for: with a plain `python -c code+tests`, exit status 0 means 'passed'."""
    import subprocess

    hack = "import sys\nsys.exit(0)\n"
    naive = subprocess.run([sys.executable, "-c", hack + GALLERY_TESTS], capture_output=True)
    assert naive.returncode == 0  # the naive verifier would reward this
    assert run_tests(hack, GALLERY_TESTS, SLOW_OK).status == "failed"


# Two ways a wrong `add` once passed: the harness ran the tests with the builtin `exec` looked up after the code
# had run, and its audit hook read its tables from the harness module's globals, which the code reaches as
# sys.modules["__main__"] (clearing _FRAME_ATTRS let it walk a traceback's frames to the nonce).
_REBIND_EXEC = "import builtins\nbuiltins.exec = lambda *a, **k: None\ndef add(a, b):\n    return 0\n"
_CLEAR_THE_HOOKS_TABLES = (
    "import os, sys\n"
    "m = sys.modules['__main__']\n"
    "for t in (m._FRAME_ATTRS, m._DENIED, m._DENIED_IMPORTS, m._CHANGES):\n"
    "    t.clear()\n"
    "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    f = e.__traceback__.tb_frame\n"
    "while f is not None and 'nonce' not in f.f_locals:\n    f = f.f_back\n"
    "os.write(f.f_locals['sfd'], ('passed\\t%s\\t-\\tforged\\n' % f.f_locals['nonce']).encode())\n"
    "os._exit(0)\n"
)


def test_rebinding_builtins_or_the_harness_globals_does_not_pass():
    for name, code in (("exec", _REBIND_EXEC), ("hook tables", _CLEAR_THE_HOOKS_TABLES)):
        r = run_tests(code, GALLERY_TESTS, SLOW_OK)
        assert not r.passed and r.status in ("failed", "error"), (name, r)
    r = run_tests(_CLEAR_THE_HOOKS_TABLES, GALLERY_TESTS, SLOW_OK)
    assert r.forbidden == "introspection" and "not allowed" in r.reason, r


def test_a_forged_report_with_a_non_ascii_proof_is_a_verdict_not_a_crash():
    # The status pipe's fd is guessable; a proof the parent compared as str once raised TypeError in run_tests.
    forge = (
        "import os\nfor fd in range(3, 12):\n    try:\n"
        "        os.write(fd, 'infra\\t\\u00e9\\t-\\tx\\npassed\\t\\u00e9\\t-\\tx\\n'.encode())\n"
        "    except OSError:\n        pass\n"
    )
    assert run_tests(forge + GALLERY_SOLUTION, GALLERY_TESTS, SLOW_OK).status == "passed"
    r = run_tests(forge + "def add(a, b):\n    return 0\n", GALLERY_TESTS, SLOW_OK)
    assert not r.passed and r.status == "failed", r


def test_the_audit_hook_looks_up_no_global_name():
    """Everything the hook and ``kind_of`` use is bound when the hook is installed (``_install_audit``'s
    docstring says why): no LOAD_GLOBAL/LOAD_NAME in any function nested in it."""
    import dis
    import importlib.util
    import types

    spec = importlib.util.spec_from_file_location("_harness_under_test", HARNESS_PATH)
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    todo = [c for c in harness._install_audit.__code__.co_consts if isinstance(c, types.CodeType)]
    found, names = [], []
    while todo:
        code = todo.pop()
        names.append(code.co_name)
        todo += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        found += [
            f"{code.co_name}: {i.argval}"
            for i in dis.get_instructions(code)
            if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")
        ]
    assert {"hook", "kind_of", "deny", "inside", "kind"} <= set(names)
    assert not found, found


def test_sixty_four_concurrent_calls_leave_no_process_and_no_folder(private_tmp):
    before = set(int(d) for d in os.listdir("/proc") if d.isdigit())
    programs = [
        GALLERY_SOLUTION,
        "while True:\n    pass\n",
        HOSTILE_GALLERY["orphaned daemon"][1],
        "import os\nos._exit(0)\n",
    ]
    with cf.ThreadPoolExecutor(64) as ex:
        futs = [
            ex.submit(run_tests, programs[i % 4], GALLERY_TESTS, 3.0 if i % 4 == 1 else SLOW_OK) for i in range(64)
        ]
        results = [f.result() for f in futs]
    assert [r.passed for r in results] == [i % 4 == 0 for i in range(64)], [
        (r.status, r.reason) for r in results if not r.passed
    ][:5]
    assert all(r.status == "timeout" for r in results[1::4])
    _wait_until_reaped(before)
    assert list(private_tmp.iterdir()) == []


_AVAILABLE = available_modes()


@pytest.mark.parametrize("mode", MODES)
def test_every_available_mode_passes_the_solution_and_stops_the_whole_gallery(mode, monkeypatch, private_tmp):
    """A mode this machine offers must pass the correct solution (a failure here is a bug, not a skip) and
    give every hostile program 0, with the same statuses as the strongest mode."""
    if mode not in _AVAILABLE:
        pytest.skip(f"{mode} cannot start on this machine (available: {', '.join(_AVAILABLE)})")
    monkeypatch.setenv("GRPO_LAB_SANDBOX_MODE", mode)
    before = set(int(d) for d in os.listdir("/proc") if d.isdigit())
    r = run_tests(GALLERY_SOLUTION, GALLERY_TESTS, timeout_s=SLOW_OK)
    assert r.passed and r.isolation == mode, r
    for name, rr, expected in _run_gallery():
        assert not rr.passed and rr.status in expected, (mode, name, rr.status, rr.reason)
    _wait_until_reaped(before)
    assert list(private_tmp.iterdir()) == []


def test_audit_mode_blocks_process_creation_and_signals(monkeypatch, private_tmp):
    monkeypatch.setenv("GRPO_LAB_SANDBOX_MODE", "audit-hook")
    before = set(int(d) for d in os.listdir("/proc") if d.isdigit())
    # (the fork bomb catches the PermissionError and keeps trying: it times out, having forked nothing)
    for name, want in (("fork bomb", "timeout"), ("kills its parent", "failed"), ("busy child process", "error")):
        r = run_tests(HOSTILE_GALLERY[name][1], GALLERY_TESTS, timeout_s=TIMEOUT if want == "timeout" else SLOW_OK)
        assert not r.passed and r.status == want, (name, r)
        assert "not allowed" in r.reason or want != "error", r
    _wait_until_reaped(before)


def test_forged_verdicts_need_the_nonce():
    """The frame and gc attacks of the gallery are refused by the audit hook, with its message."""
    for name in ("nonce from the caller's frame", "nonce from the garbage collector", "nonce from a traceback"):
        r = run_tests(HOSTILE_GALLERY[name][1], GALLERY_TESTS, timeout_s=SLOW_OK)
        assert not r.passed and r.status == "error" and "not allowed" in r.reason, (name, r)
    r = run_tests(HOSTILE_GALLERY["nonce from a signal handler's frame"][1], GALLERY_TESTS, timeout_s=SLOW_OK)
    assert not r.passed and "main thread" in r.reason, r


def test_extract_code_and_code_reward():
    good = "Here:\n```python\n" + GALLERY_SOLUTION + "```\n"
    two = "```python\ndef add(a, b):\n    return 0\n```\nbetter:\n```python\n" + GALLERY_SOLUTION + "```"
    assert extract_code(good).strip() == GALLERY_SOLUTION.strip()
    assert extract_code(two).strip() == GALLERY_SOLUTION.strip()
    assert extract_code("```python\nunterminated") is None and extract_code(None) is None
    comps = [
        good,
        two,
        "no code",
        "```python\nimport sys\nsys.exit(0)\n```",
        [{"role": "assistant", "content": good}],
        None,
    ]
    assert code_reward.__name__ == "code"
    patient = make_code_reward(
        "tests", timeout_s=SLOW_OK
    )  # the default 5 s is for training, not a loaded test machine
    out = patient(prompts=[None] * len(comps), completions=comps, tests=[GALLERY_TESTS] * len(comps))
    assert out == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0], patient.last_reasons
    assert "no ```python block" in patient.last_reasons[2] and "failed" in patient.last_reasons[3]
    f = make_code_reward("test_list", timeout_s=SLOW_OK)
    assert f.__name__ == "code_test_list"
    assert f(None, [good], test_list=[GALLERY_TESTS.strip().splitlines()]) == [1.0]


# --------------------------------------------------------------------------------------------------
# The non-root path, for real: a throwaway uid runs the gallery in every mode it can start
# --------------------------------------------------------------------------------------------------

_AS_USER = r"""
import json, os, sys, concurrent.futures as cf
from grpo_lab.course.gallery import GALLERY_TESTS, HOSTILE_GALLERY
from grpo_lab.sandbox import available_modes, run_many, run_tests
victim = sys.argv[1]
attack = (
    "import os, shutil\n"
    f"p = {victim!r}\n"
    "for f in (lambda: open(p, 'w').write('gone'), lambda: os.remove(p), lambda: os.chmod(p, 0o777),\n"
    "          lambda: os.rename(p, p + '.moved'), lambda: shutil.rmtree(os.path.dirname(p)),\n"
    "          lambda: os.truncate(p, 0)):\n"
    "    try:\n        f()\n    except Exception:\n        pass\n"
    "open(p, 'a').write('gone')\n"
)
out = {"uid": os.getuid(), "modes": {}}
for mode in available_modes():
    os.environ["GRPO_LAB_SANDBOX_MODE"] = mode
    with cf.ThreadPoolExecutor(4) as ex:
        res = dict(ex.map(lambda kv: (kv[0], run_tests(kv[1][1], GALLERY_TESTS,
                                                       timeout_s=2.0 if "timeout" in kv[1][2] else 60.0)),
                          HOSTILE_GALLERY.items()))
    pooled = {}
    for slow in (True, False):  # the parallel scorer of training (run_many), the slow programs with a short limit
        names = [k for k, e in HOSTILE_GALLERY.items() if ("timeout" in e[2]) == slow]
        got = run_many([(HOSTILE_GALLERY[k][1], GALLERY_TESTS) for k in names], 2.0 if slow else 60.0, workers=8)
        pooled.update(zip(names, got))
    v = run_tests(attack + "def add(a, b):\n    return a + b\n", GALLERY_TESTS, timeout_s=60.0)
    good = run_tests("def add(a, b):\n    return a + b\n", GALLERY_TESTS, timeout_s=60.0)
    out["modes"][mode] = {"gallery": {k: [r.passed, r.status, r.reason] for k, r in res.items()},
                          "pooled": {k: [r.passed, r.status, r.reason] for k, r in pooled.items()},
                          "victim": [v.passed, v.status, v.reason, open(victim).read()],
                          "solution": [good.passed, good.status, good.reason]}
print(json.dumps(out))
"""

# Run as root inside a private mount namespace: make the interpreter readable to the throwaway uid (pyenv
# under /root, mode 700, is the usual obstacle), then drop to that uid with setpriv or runuser.
_AS_ROOT = r"""
import ctypes, os, runpy, sys
# The harness's containment steps, next to it: a file that defines functions only.
containment = runpy.run_path(os.path.join(os.path.dirname(sys.argv[1]), "containment.py"))
containment["_expose_python"](ctypes.CDLL(None, use_errno=True))
os.execv(sys.argv[2], sys.argv[2:])
"""


def _drop_to(uid: int) -> list[str]:
    return [shutil.which("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux uids and namespaces")
def test_hostile_gallery_as_an_unprivileged_user(tmp_path):
    """Runs as a throwaway non-root uid, where the namespace modes run the code as the real user: every
    hostile program scores 0 in every mode that user can start, one at a time and through run_many (the
    parallel scorer training uses), and a file the user owns outside the
    working folder survives an attempt to overwrite, delete, chmod, rename and truncate it."""
    if os.geteuid() != 0:
        pytest.skip("creating a throwaway uid needs root (the tests run as root on the course machines)")
    unshare = shutil.which("unshare")
    if not shutil.which("setpriv") or not unshare:
        pytest.skip("needs util-linux setpriv and unshare to run as a throwaway uid")
    uid = random.SystemRandom().randrange(1 << 20, 1 << 30)
    home = Path(tempfile.mkdtemp(prefix="grpo_lab_user_", dir="/tmp"))
    try:
        victim = home / "precious.txt"
        victim.write_text("precious")
        for p in (home, victim):
            os.chown(p, uid, uid)
        script = home / "as_user.py"
        script.write_text(_AS_USER)
        # A copy of the package the throwaway uid can read (the checkout may sit under a folder only root enters),
        # outside /tmp, /var/tmp and /dev/shm, which the bwrap mode hides behind private tmpfs folders.
        src = Path(tempfile.mkdtemp(prefix="grpo_lab_src_", dir="/var/cache" if os.path.isdir("/var/cache") else "/"))
        src.chmod(0o755)
        shutil.copytree(
            Path(__file__).resolve().parents[1] / "grpo_lab",
            src / "grpo_lab",
            ignore=shutil.ignore_patterns("data", "__pycache__"),
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(home),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(src),
        }
        cmd = [
            unshare,
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            "-I",
            "-c",
            _AS_ROOT,
            HARNESS_PATH,
            *_drop_to(uid),
            sys.executable,
            str(script),
            str(victim),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(home))
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["uid"] == uid
        modes = out["modes"]
        assert "namespaces+uid" not in modes and "audit-hook" in modes, modes.keys()
        for mode, res in modes.items():
            assert res["solution"][0], (mode, res["solution"])
            assert set(res["pooled"]) == set(res["gallery"]) == set(HOSTILE_GALLERY)
            for name, (passed, status, reason) in [*res["gallery"].items(), *res["pooled"].items()]:
                assert not passed and status in HOSTILE_GALLERY[name][2], (mode, name, status, reason)
            assert not res["victim"][0] and res["victim"][3] == "precious", (mode, res["victim"])
        print("modes the throwaway uid could start:", ", ".join(modes))
        assert victim.read_text() == "precious" and victim.stat().st_uid == uid
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if "src" in locals():
            shutil.rmtree(src, ignore_errors=True)
