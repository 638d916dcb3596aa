"""The exercise pipeline: stubs from solutions, check() reports, time limits."""

from pathlib import Path

import pytest

from grpo_lab import grading

ROOT = Path(__file__).resolve().parents[1]


def test_exercises_are_up_to_date_with_solutions():
    changed = grading.build_exercises(ROOT, check_only=True)
    assert changed == [], f"run `make exercises`: {changed}"


def test_strip_solution_keeps_indentation_and_removes_code():
    src = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n\nprint(1)"
    out = grading.strip_solution(src)
    assert "y = x + 1" not in out
    assert '    raise NotImplementedError("not implemented yet' in out
    assert out.endswith("print(1)")
    ns = {}
    exec(out, ns)
    with pytest.raises(NotImplementedError):
        ns["f"](1)


@pytest.mark.parametrize("bad", ["### BEGIN SOLUTION\nx", "x\n### END SOLUTION", "### BEGIN SOLUTION\n### BEGIN SOLUTION"])
def test_strip_solution_rejects_unbalanced_markers(bad):
    with pytest.raises(ValueError):
        grading.strip_solution(bad)


def test_solution_notebooks_contain_markers_and_exercises_do_not():
    for sol in sorted((ROOT / "solutions").glob("*.ipynb")):
        text = sol.read_text()
        assert grading.BEGIN in text, f"{sol.name} has no solution region"
        ex = (ROOT / "exercises" / sol.name).read_text()
        assert grading.BEGIN not in ex and "NotImplementedError" in ex


def test_check_reports_pass_fail_not_implemented_and_timeout(capsys):
    from grpo_lab.tasks import parse_gsm8k_answer

    good = grading.check("00-parse-gsm8k-answer", parse_gsm8k_answer)
    assert good.passed and "All 5 checks passed" in capsys.readouterr().out

    def stub(s):
        raise NotImplementedError("not implemented yet")

    rep = grading.check("00-parse-gsm8k-answer", stub)
    assert not rep.passed and rep.not_implemented
    assert "not implemented yet" in capsys.readouterr().out

    wrong = grading.check("00-parse-gsm8k-answer", lambda s: s.split("####")[-1].strip())  # keeps commas
    assert not wrong.passed and any(o.status == "failed" for o in wrong.outcomes)
    assert "hint:" in capsys.readouterr().out

    def loops(s):
        while True:
            pass

    rep = grading.check("00-parse-gsm8k-answer", loops, time_scale=0.02)
    assert [o.status for o in rep.outcomes] == ["timeout"] * len(rep.outcomes)


def test_check_times_out_outside_the_main_thread():
    import threading

    result = {}

    def loops(s):
        while True:
            pass

    t = threading.Thread(target=lambda: result.setdefault("r", grading.check("00-parse-gsm8k-answer", loops, verbose=False, time_scale=0.02)))
    t.start()
    t.join(30)
    assert not t.is_alive() and result["r"].outcomes[0].status == "timeout"


def test_strict_mode_raises_on_wrong_answers(monkeypatch):
    monkeypatch.setenv("GRPO_LAB_STRICT_CHECKS", "1")
    with pytest.raises(AssertionError):
        grading.check("00-parse-gsm8k-answer", lambda s: "0", verbose=False)


def test_unknown_exercise_and_non_callable_give_clear_errors():
    with pytest.raises(KeyError, match="known:"):
        grading.check("99-nope", print)
    with pytest.raises(TypeError, match="no parentheses"):
        grading.check("00-parse-gsm8k-answer", "72")
