"""The exercise pipeline: stubs from solutions (tools/build_exercises.py), check() reports, time limits."""

from pathlib import Path

import pytest

from grpo_lab.course import grading
from tools import build_exercises as builder

ROOT = Path(__file__).resolve().parents[1]


def test_exercises_are_up_to_date_with_solutions():
    changed = builder.build_exercises(ROOT, check_only=True)
    assert changed == [], f"run `make exercises`: {changed}"


def test_strip_solution_keeps_indentation_and_removes_code():
    src = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n\nprint(1)"
    out = builder.strip_solution(src)
    assert "y = x + 1" not in out
    assert '    raise NotImplementedError("not implemented yet' in out
    assert out.endswith("print(1)")
    ns = {}
    exec(out, ns)
    with pytest.raises(NotImplementedError):
        ns["f"](1)


@pytest.mark.parametrize(
    "bad", ["### BEGIN SOLUTION\nx", "x\n### END SOLUTION", "### BEGIN SOLUTION\n### BEGIN SOLUTION"]
)
def test_strip_solution_rejects_unbalanced_markers(bad):
    with pytest.raises(ValueError):
        builder.strip_solution(bad)


def test_solution_notebooks_contain_markers_and_exercises_do_not():
    for sol in sorted((ROOT / "solutions").glob("*.ipynb")):
        text = sol.read_text()
        assert builder.BEGIN in text, f"{sol.name} has no solution region"
        ex = (ROOT / "exercises" / sol.name).read_text()
        assert builder.BEGIN not in ex and "NotImplementedError" in ex


def _parse_gold(solution):
    """A hand-written solution of exercise 00."""
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def _my_advantages(rewards, num_generations, scale_rewards="group"):
    """A hand-written solution of exercise 02 (no library call)."""
    g = rewards.view(-1, num_generations)
    adv = rewards - g.mean(1).repeat_interleave(num_generations)
    if scale_rewards == "group":
        adv = adv / (g.std(1).repeat_interleave(num_generations) + 1e-4)
    elif scale_rewards == "batch":
        adv = adv / (rewards.std() + 1e-4)
    return adv


def test_check_reports_pass_fail_not_implemented_and_timeout(capsys):
    good = grading.check("00-parse-gsm8k-answer", _parse_gold)
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

    t = threading.Thread(
        target=lambda: result.setdefault(
            "r", grading.check("00-parse-gsm8k-answer", loops, verbose=False, time_scale=0.02)
        )
    )
    t.start()
    t.join()  # pytest-timeout stops a grader that never returns
    assert result["r"].outcomes[0].status == "timeout"


def test_strict_mode_raises_on_wrong_answers(monkeypatch):
    monkeypatch.setenv("GRPO_LAB_STRICT_CHECKS", "1")
    with pytest.raises(AssertionError):
        grading.check("00-parse-gsm8k-answer", lambda s: "0", verbose=False)


def test_unknown_exercise_and_non_callable_give_clear_errors():
    with pytest.raises(KeyError, match="known:"):
        grading.check("99-nope", print)
    with pytest.raises(TypeError, match="no parentheses"):
        grading.check("00-parse-gsm8k-answer", "72")


# --------------------------------------------------------------------------------------------------
# The library's own functions do not count as the student's work
# --------------------------------------------------------------------------------------------------

REFUSAL = "this exercise asks you to write it"


def _refused(report) -> str:
    assert not report.passed and [o.status for o in report.outcomes] == ["refused"], report.summary()
    return report.outcomes[0].message


def test_the_library_function_itself_is_refused(capsys):
    from grpo_lab.grpo import group_advantages

    msg = _refused(grading.check("02-group-advantages", group_advantages))
    assert REFUSAL in msg and "group_advantages" in msg
    assert REFUSAL in capsys.readouterr().out  # the student sees why


def test_wrappers_of_the_library_function_are_refused():
    import functools

    from grpo_lab import grpo
    from grpo_lab.grpo import group_advantages as ga

    def helper(r, g, s):
        return ga(r, g, s)

    def via_helper(r, g, s="group"):
        return helper(r, g, s)

    def via_attribute(r, g, s="group"):
        return grpo.group_advantages(r, g, s)

    wrappers = {
        "lambda": lambda r, g, s="group": ga(r, g, s),
        "partial": functools.partial(ga, scale_rewards="group"),
        "attribute": via_attribute,
        "one helper deeper": via_helper,
    }
    for name, fn in wrappers.items():
        msg = _refused(grading.check("02-group-advantages", fn, verbose=False))
        assert (
            f"{REFUSAL}; calling grpo_lab.grpo.group_advantages inside your function does not count" in msg
            or "grpo_lab's own" in msg
        ), f"{name}: {msg}"


def test_a_hand_written_solution_passes_and_allowed_helpers_stay_allowed():
    assert grading.check("02-group-advantages", _my_advantages, verbose=False).passed

    # The training-step exercise may call grpo_loss and completion_logps: only what an exercise reimplements
    # is forbidden there.
    from grpo_lab.course.own_work import library_use
    from grpo_lab.grpo import grpo_loss

    def step(model, optimizer, rollout, advantages, **kw):
        return grpo_loss(rollout.logps, rollout.logps, advantages, rollout.completion_mask).item()

    assert library_use(step, grading._REGISTRY["04-training-step"].forbidden) is None


@pytest.mark.parametrize(
    "exercise, path",
    [
        ("08-kd-loss", "grpo_lab.distill.kd_loss"),
        ("09-distinct-n", "grpo_lab.hygiene.distinct_n"),
        ("03-clipped-loss", "grpo_lab.grpo.grpo_loss"),
        ("03-k3-kl", "grpo_lab.grpo.k3_kl"),
        ("04-token-logps", "grpo_lab.rollout.completion_logps"),
    ],
)
def test_each_reimplemented_function_is_refused(exercise, path):
    import importlib

    mod, name = path.rsplit(".", 1)
    lib = getattr(importlib.import_module(mod), name)
    _refused(grading.check(exercise, lib, verbose=False))
    msg = _refused(grading.check(exercise, lambda *a, **k: lib(*a, **k), verbose=False))
    assert f"calling {path} inside your function" in msg


def test_model_generate_does_not_count_as_a_sampling_loop():
    def sample(model, prompt_ids, max_new_tokens, eos_token_id, pad_token_id, temperature=1.0, generator=None):
        out = model.generate(prompt_ids, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature)
        return out[:, prompt_ids.shape[1] :], (out[:, prompt_ids.shape[1] :] != pad_token_id).long()

    assert "model.generate" in _refused(grading.check("04-sampling", sample, verbose=False))


def test_check_in_strict_mode_raises_on_a_refused_submission(monkeypatch):
    from grpo_lab.tasks import parse_gsm8k_answer

    monkeypatch.setenv("GRPO_LAB_STRICT_CHECKS", "1")
    with pytest.raises(AssertionError):
        grading.check("00-parse-gsm8k-answer", parse_gsm8k_answer, verbose=False)


# --------------------------------------------------------------------------------------------------
# Concept questions
# --------------------------------------------------------------------------------------------------

CONCEPTS = [
    "00-concepts",
    "01-concepts",
    "02-concepts",
    "03-concepts",
    "04-concepts",
    "04a-concepts",
    "05-concepts",
    "06-concepts",
    "06a-concepts",
    "07-concepts",
    "07a-concepts",
    "08-concepts",
    "09-concepts",
    "10-concepts",
]


def _right_answers(exercise_id):
    return {q.key: q.answer for q in grading._REGISTRY[exercise_id].questions}


def test_concept_questions_grade_answers_and_explain_wrong_ones(capsys):
    grading.list_exercises()
    right = _right_answers("03-concepts")
    assert grading.check("03-concepts", right, verbose=False).passed
    assert grading.check(
        "03-concepts", {k: f"({str(v).upper()})" if isinstance(v, str) else v for k, v in right.items()}, verbose=False
    ).passed  # "(B)" reads as "b"
    q3 = grading._REGISTRY["03-concepts"].questions[2]
    # A wrong letter of q3, whichever letter the seeded order (tools/shuffle_options.py) made right.
    wrong = dict(right, q3=next(k for k in q3.options if k != q3.answer), q2=0.25)
    rep = grading.check("03-concepts", wrong)
    out = capsys.readouterr().out
    assert [o.passed for o in rep.outcomes] == [True, False, False, True]
    why_q3 = q3.why
    assert f"why: {why_q3}" in out and "KL(pi_ref || pi_theta)" in why_q3
    rep = grading.check("03-concepts", dict(right, q4=None), verbose=False)
    assert rep.not_implemented and not rep.passed
    assert grading.check("03-concepts", dict(right, q1="z"), verbose=False).outcomes[0].status == "failed"
    with pytest.raises(TypeError, match="dict"):
        grading.check("03-concepts", lambda: right)


def test_every_notebook_ends_its_exercise_notebook_with_concept_questions():
    import json

    grading.list_exercises()
    assert sorted(CONCEPTS) == sorted(e for e in grading._REGISTRY if e.endswith("-concepts"))
    solutions = {p.name.split("_")[0]: p for p in (ROOT / "solutions").glob("*.ipynb")}
    missing = sorted({p.name.split("_")[0] for p in (ROOT / "notebooks").glob("*.ipynb")} - set(solutions))
    assert not missing, f"notebooks without an exercise notebook in solutions/: {missing}"
    for prefix, path in solutions.items():
        last = json.loads(path.read_text())["cells"][-1]
        assert f'check("{prefix}-concepts", answers)' in "".join(last["source"]), (
            f"{path.name} does not end with its concept questions"
        )


@pytest.mark.parametrize("exercise_id", CONCEPTS)
def test_each_notebook_has_a_few_sharp_questions_shown_in_its_solution(exercise_id):
    import json

    grading.list_exercises()
    qs = grading._REGISTRY[exercise_id].questions
    assert 3 <= len(qs) <= 4
    for q in qs:
        assert q.why and (q.options and q.answer in q.options or not q.options and isinstance(q.answer, (int, float)))
    prefix = exercise_id.split("-")[0]  # "04a" for "04a-concepts": its own notebook, not 04's
    nb = ROOT / "solutions" / next(p.name for p in (ROOT / "solutions").glob(f"{prefix}_*.ipynb"))
    cells = json.loads(nb.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells)
    assert grading.questions_markdown(exercise_id) in text, f"{nb.name} does not show the questions of {exercise_id}"
    assert f'check("{exercise_id}", answers)' in text


def test_the_notebooks_short_import_is_the_course_grader():
    import grpo_lab.grading

    assert grpo_lab.grading.check is grading.check and grpo_lab.grading.CheckReport is grading.CheckReport


def test_check_modules_register_nothing_when_imported():
    # A check module only marks its tests; the grader's exercises are those of the modules it lists.
    from grpo_lab.course import registry
    from grpo_lab.course.checks import nb02

    tests = registry.tests_of(nb02)
    assert tests and {t.exercise_id for t in tests} == {"02-group-advantages"}
    assert set(registry.collect([nb02])) == {"02-group-advantages"}
    assert nb02 in grading.check_modules()


def test_the_builders_stub_is_the_one_the_grader_reports():
    assert builder.STUB_MESSAGE == grading.STUB_MESSAGE


def test_every_decorated_test_is_collected():
    # A test is found through its module's namespace: a second function of the same name would hide the first.
    import ast
    import inspect

    from grpo_lab.course import registry

    for module in grading.check_modules():
        tree = ast.parse(inspect.getsource(module))
        decorated = [
            f.name
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef)
            and any(isinstance(d, ast.Call) and getattr(d.func, "id", "") == "exercise_test" for d in f.decorator_list)
        ]
        assert [t.fn.__name__ for t in registry.tests_of(module)] == decorated, module.__name__


def test_a_cell_ending_in_check_shows_the_report_once(capsys):
    """check() prints its summary; Jupyter then displays the returned report (IPython calls
    ``_ipython_display_``), which must not print it again. A report nobody printed is shown once."""
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance()
    report = grading.check("00-parse-gsm8k-answer", lambda text: None)
    printed = capsys.readouterr().out
    assert printed.count("Exercise 00-parse-gsm8k-answer") == 1
    from IPython.display import display  # what Jupyter does with a cell's last value

    display(report)
    assert "Exercise 00-parse-gsm8k-answer" not in capsys.readouterr().out
    quiet = grading.check("00-parse-gsm8k-answer", lambda text: None, verbose=False)
    assert capsys.readouterr().out == ""
    display(quiet)
    assert capsys.readouterr().out.count("Exercise 00-parse-gsm8k-answer") == 1
