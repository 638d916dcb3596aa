"""Notebook 06a: a code reward, graded on fixed completions of one fixed problem through the real sandbox.

The student writes ``fn(completions: list[str], problems: list[Problem]) -> list[float]``, one reward per
completion:

- the program is the completion's first closed code block (``grpo_lab.tasks.code.extract_program``) with the
  name rule applied (``apply_name_rule(program, problem.meta["func"])``); no program: 0.0;
- every program runs against its problem's hidden tests (``problem.meta["tests"]``) in ONE call of
  ``grpo_lab.sandbox.run_many``; a program the sandbox stopped for a forbidden operation scores 0.0;
- otherwise 1.0 if it passed, plus 0.1 when the completion holds exactly one closed code block
  (``extract_program`` finds a program and the completion contains exactly two ```` ``` ```` fences).

The tests use the real sandbox (each call takes about a second), and one of them checks that no program ran in
the student's own process.
"""

import sys

from grpo_lab.course.registry import exercise_test
from grpo_lab.tasks.base import Problem

ID = "06a-code-reward"
FORBID = (
    "grpo_lab.rewards.code_reward",
    "grpo_lab.rewards.make_code_reward",
    "grpo_lab.tasks.code.CodeTask.verdicts",
    "grpo_lab.tasks.code.CodeTask.check_many",
)

TESTS = "assert clamp_add(2, 3) == 5\nassert clamp_add(7, 8) == 10\nassert clamp_add(0, 0) == 0\n"
PROBLEM = Problem(
    "Write a Python function `clamp_add(a, b)` that returns a + b, but never more than 10.\ndef clamp_add(a, b):",
    "Write a Python function `clamp_add(a, b)` that returns a + b, but never more than 10.",
    "def clamp_add(a, b):",
    {"func": "clamp_add", "tests": TESTS, "family": "check", "level": 1},
)
RIGHT = "def clamp_add(a, b):\n    return min(a + b, 10)\n"
WRONG = "def clamp_add(a, b):\n    return a + b\n"  # forgets the cap: the second assert fails
MARKER = "grpo_lab_06a_ran_here"


def block(code: str, tag: str = "python") -> str:
    return f"```{tag}\n{code}```"


def _rewards(fn, completions: list[str]) -> list[float]:
    got = fn(list(completions), [PROBLEM] * len(completions))
    assert isinstance(got, (list, tuple)), f"return a list of floats, got {type(got).__name__}"
    assert len(got) == len(completions), (
        f"{len(completions)} completions need {len(completions)} rewards, got {len(got)}"
    )
    for r in got:
        assert isinstance(r, (int, float)) and not isinstance(r, bool), (
            f"each reward is a float, got {type(r).__name__} ({r!r})"
        )
    return [float(r) for r in got]


def _expect(fn, cases: dict[str, tuple[str, float]]) -> None:
    got = _rewards(fn, [c for c, _ in cases.values()])
    wrong = [
        f"{what}: expected {want:g}, got {g:g}"
        for (what, (_, want)), g in zip(cases.items(), got)
        if abs(g - want) > 1e-9
    ]
    assert not wrong, "; ".join(wrong)


@exercise_test(
    ID,
    title="A code reward through the sandbox",
    forbid=FORBID,
    hint="A passing program in exactly one closed block earns 1.0 + 0.1; a wrong one still earns the 0.1 format term.",
)
def test_right_and_wrong_program(fn):
    _expect(
        fn,
        {
            "a right program in one block (with words around it)": (
                f"Here is my solution:\n\n{block(RIGHT)}\n\nIt adds and caps at 10.",
                1.1,
            ),
            "a wrong program in one block": (block(WRONG), 0.1),
            "a right program in a bare ``` block": (block(RIGHT, tag=""), 1.1),
        },
    )


@exercise_test(
    ID,
    forbid=FORBID,
    hint="extract_program returns None without a closed block: that completion has no program and scores 0.0 "
    "(and gets no format term).",
)
def test_no_closed_block(fn):
    _expect(
        fn,
        {
            "no code block at all": ("def clamp_add(a, b):\n    return min(a + b, 10)", 0.0),
            "a block whose closing fence is missing": ("```python\n" + RIGHT, 0.0),
        },
    )


@exercise_test(
    ID,
    forbid=FORBID,
    hint="Only the FIRST block runs, and the 0.1 is for exactly one block (two fences), so two blocks never get it.",
)
def test_two_blocks(fn):
    _expect(
        fn,
        {
            "two blocks, the first right": (f"{block(RIGHT)}\nor, shorter:\n{block(WRONG)}", 1.0),
            "two blocks, the first wrong and the second right": (f"{block(WRONG)}\nFixed:\n{block(RIGHT)}", 0.0),
        },
    )


@exercise_test(
    ID,
    forbid=FORBID,
    hint="Apply apply_name_rule(program, problem.meta['func']) before running: one function under another name "
    "still counts.",
)
def test_wrong_name(fn):
    renamed = RIGHT.replace("clamp_add", "add_capped")
    _expect(fn, {"the right function under another name": (block(renamed), 1.1)})


@exercise_test(
    ID,
    forbid=FORBID,
    hint="A program the sandbox stopped for a forbidden operation (result.forbidden is not None) scores 0.0, "
    "format term included.",
)
def test_hostile_exit(fn):
    _expect(
        fn,
        {
            "a program that calls sys.exit(0) before the tests": (
                block("import sys\n" + RIGHT + "sys.exit(0)\n"),
                0.0,
            ),
        },
    )


@exercise_test(
    ID,
    forbid=FORBID,
    hint="Run the programs with grpo_lab.sandbox.run_many only: never exec or import a model's program in your "
    "own process.",
)
def test_nothing_runs_in_this_process(fn):
    sys.modules.pop(MARKER, None)
    program = f"import sys\nsys.modules.setdefault({MARKER!r}, sys)\n" + RIGHT
    got = _rewards(fn, [block(program)])
    ran_here = MARKER in sys.modules
    sys.modules.pop(MARKER, None)
    assert not ran_here, "a program ran inside this Python process: run every program in the sandbox (run_many)"
    assert abs(got[0] - 1.1) < 1e-9, f"a right program that also touches sys.modules: expected 1.1, got {got[0]:g}"


@exercise_test(
    ID,
    forbid=FORBID,
    hint="Keep the rewards in the order of the completions, also when some have no program and are not run.",
)
def test_a_mixed_batch_keeps_its_order(fn):
    _expect(
        fn,
        {
            "item 0, no block": ("no code", 0.0),
            "item 1, right": (block(RIGHT), 1.1),
            "item 2, no block": ("still no code", 0.0),
            "item 3, wrong": (block(WRONG), 0.1),
            "item 4, right under another name": (block(RIGHT.replace("clamp_add", "f")), 1.1),
        },
    )
