"""Every task checker returns promptly, and correctly, on hostile model output.

A checker is the reward of a training step: one that hangs on a completion (``20**19**18`` evaluated as a
big-integer power, a regex that backtracks, a quadratic scan) stops training with no error. Each call is
timed with ``time.process_time`` (CPU time of this process): on a loaded machine wall-clock time grows
with other processes' work, CPU time does not, so the bound only trips on a checker that really computes
too much. The bounds are generous against measured costs (milliseconds): they catch the catastrophic
cases (seconds to hours), not slowness.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpo_lab.tasks import TASKS, Problem, get_task

BOUND_S = 0.1
# GSM8K's check falls back to math-verify (symbolic LaTeX) for answers it cannot read as a number; that
# path has its own time budget (rewards.answers_match, timeout_s=2.0), so its bound is that budget plus room.
GSM8K_CHECK_BOUND_S = 3.0


def _problems() -> dict[str, Problem]:
    out = {name: get_task(name).train(1, seed=0)[0] for name in TASKS if name != "gsm8k"}
    out["addition"] = get_task("addition").make(12, 35)
    out["gsm8k"] = Problem("q", "What is 6 * 7?", "42", {})
    return out


TASK_OBJECTS = {name: get_task(name) for name in TASKS}  # GSM8K loads no rows until asked for problems
PROBLEMS = _problems()
# Countdown problems whose numbers let the hostile expressions pass the number-use check, so the
# expression itself is what must be refused (before the ast checker, 20**19**18 ran as a Python power).
POWER_PROBLEM = Problem("18 19 20->38:", "", "38", {"numbers": [18, 19, 20], "target": 38})
TOWER_PROBLEM = Problem("9 9 9 9->24:", "", "24", {"numbers": [9, 9, 9, 9], "target": 24})
ZERO_PROBLEM = Problem("3 3 5->5:", "", "5", {"numbers": [3, 3, 5], "target": 5})


def timed(fn, *args):
    t0 = time.process_time()
    out = fn(*args)
    return out, time.process_time() - t0


def calls(name: str):
    """(label, function of the text, CPU bound) for every checker of a task: check, check_strict, extract."""
    task, problem = TASK_OBJECTS[name], PROBLEMS[name]
    check_bound = GSM8K_CHECK_BOUND_S if name == "gsm8k" else BOUND_S
    out = [("check", lambda s: task.check(problem, s), check_bound), ("extract", task.extract, BOUND_S)]
    if task.has_strict_check:
        out.append(("check_strict", lambda s: task.check_strict(problem, s), BOUND_S))
    return out


def assert_prompt(name: str, text: str):
    for label, fn, bound in calls(name):
        _, dt = timed(fn, text)
        assert dt < bound, f"{name}.{label} took {dt:.2f} s of CPU on {text[:60]!r} ({len(text)} chars)"


@pytest.fixture(scope="module", autouse=True)
def warm_imports():
    # The first symbolic comparison imports sympy and math-verify (seconds): a one-off, not the checker's cost.
    TASK_OBJECTS["gsm8k"].check(PROBLEMS["gsm8k"], "\\sqrt{4}")


HOSTILE = {
    "power": "20**19**18",
    "power tower": "9**9**9**9",
    "deep nesting": "(" * 5000 + "1" + ")" * 5000,
    "unclosed parens": "(" * 100_000,
    "100k digits": "9" * 100_000,
    "100k digits after ####": "Reasoning.\n#### " + "9" * 100_000,
    "division by zero": "1/0",
    "code": "__import__('os').system('true')",
    "unicode digits": "٤٢",
    "operator run": "+-*/" * 25_000,
    # About 100k characters each: a linear scan takes milliseconds, the quadratic ones these replaced took
    # seconds to minutes.
    "unterminated boxes": "\\boxed{" * 15_000,
    "spaced boxes": "\\boxed " * 15_000,
    "empty answer phrases": "The answer is .\n" * 6_000,
    "answer labels": "Answer: . " * 10_000,
    "symbolic power": "#### 2^{2^{2^{99}}}",
    "factorial": "#### 99999!",
    "long LaTeX": "#### \\frac{" * 5000,
}


@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("label", list(HOSTILE))
def test_hand_picked_hostile_text_is_refused_promptly(name, label):
    text = HOSTILE[label]
    assert_prompt(name, text)
    # The one hostile text that is right: Arabic-Indic 42 is 42, and GSM8K's verifier reads it as a number.
    right = name == "gsm8k" and label == "unicode digits"
    assert TASK_OBJECTS[name].check(PROBLEMS[name], text) is right


@pytest.mark.parametrize(
    "problem,text",
    [
        (POWER_PROBLEM, "20**19**18"),
        (TOWER_PROBLEM, "9**9**9**9"),
        (ZERO_PROBLEM, "5+3/(3-3)"),
        (POWER_PROBLEM, "٢٠+١٨"),
        (POWER_PROBLEM, "20+18.0"),
        (POWER_PROBLEM, "(" * 120 + "20+18" + ")" * 120),
        (POWER_PROBLEM, "20+18+" + "0" * 100_000),
    ],
)
def test_countdown_refuses_what_its_rules_do_not_allow(problem, text):
    (verdict, dt) = timed(TASK_OBJECTS["countdown"].check, problem, text)
    assert verdict is False and dt < BOUND_S, (text[:40], verdict, dt)


@pytest.mark.parametrize("text", ["20+18", "(20+18)", "(" * 90 + "20+18" + ")" * 90, " 20 + 18 "])
def test_countdown_accepts_right_answers(text):
    assert TASK_OBJECTS["countdown"].check(POWER_PROBLEM, text)
    assert TASK_OBJECTS["countdown"].check(ZERO_PROBLEM, "5*3/3") and TASK_OBJECTS["countdown"].check(
        ZERO_PROBLEM, "3/3*5"
    )


def test_right_answers_still_pass_every_checker():
    t = TASK_OBJECTS
    assert t["addition"].check(PROBLEMS["addition"], " 47 ") and not t["addition"].check(PROBLEMS["addition"], "٤٧")
    arith = PROBLEMS["arithmetic"]
    assert t["arithmetic"].check(arith, arith.answer)
    gsm = PROBLEMS["gsm8k"]
    for text in ["6 * 7 = 42.\n#### 42", "The answer is 42.", "So \\boxed{42}", "\\boxed{" * 1000 + "\\boxed{42}"]:
        assert t["gsm8k"].check(gsm, text), text
    assert t["gsm8k"].check_strict(gsm, "6 * 7 = 42.\n#### 42") and not t["gsm8k"].check_strict(gsm, "#### 42")
    assert t["gsm8k"].extract("Answer:\n\n**42**") == "42"


# Derandomized: the same examples on every run, so a failure reproduces and a pass does not depend on luck.
FUZZ = settings(derandomize=True, deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
MATHY = "0123456789+-*/^()[]{}.,=!$%#\\ \nboxedfracsqrtTheanswerisA:"


@pytest.mark.parametrize("name", list(TASKS))
@FUZZ
@given(text=st.text(max_size=400))
def test_any_text_is_checked_promptly(name, text):
    assert_prompt(name, text)


@pytest.mark.parametrize("name", list(TASKS))
@FUZZ
@given(text=st.text(alphabet=MATHY, max_size=400))
def test_math_like_text_is_checked_promptly(name, text):
    assert_prompt(name, text)
