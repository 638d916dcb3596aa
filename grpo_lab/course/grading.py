"""Autograded exercises: ``check(exercise_id, fn)``, run in the student's kernel.

How exercises work (the CS336 model: small, sharply specified functions graded against expected values):

- Each exercise is written once, in a notebook under ``solutions/``. Solution code sits between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines (nbgrader's markers). ``tools/build_exercises.py``
  (``make exercises``) writes ``exercises/`` with every marked region replaced by
  ``raise NotImplementedError(...)`` at the same indentation, so the student's notebook runs up to the first
  call of an unfinished function.
- Checks live in ``grpo_lab/course/checks/``, one module per notebook (``nb04_*``: two, by concept), each test
  marked with ``@exercise_test("<id>")`` (``grpo_lab.course.registry``). The grader reads the modules listed in
  ``check_modules`` and nothing else. Each test receives the student's callable and asserts; a failing test's
  hint is printed.
- An exercise that reimplements a library function names it in ``forbid=`` (``"grpo_lab.grpo.group_advantages"``).
  Before any test runs, ``check`` refuses the library's own function, a wrapper of it (lambda, ``partial``,
  ``functools.wraps``) and any function whose code calls a forbidden name (``grpo_lab.course.own_work``): a
  value check cannot tell copying from understanding.
- Concept questions are data: ``grpo_lab/course/questions/<notebook>.json``, one file per notebook (exercise id,
  title, and per question its text, options, answer, tolerance and explanation). They are graded from a dict of
  answers, ``check("03-concepts", {"q1": "b", ...})``: multiple choice or numeric, with an explanation per wrong
  answer; ``questions_markdown`` gives the text the solution notebooks show.
- ``check`` runs the tests in the student's kernel (they are the student's own functions) with a time
  limit per test (``grpo_lab.deadline.Deadline``: a ``SIGALRM`` timer in the main thread, else a line-tracing
  clock), so an infinite loop becomes a failed test instead of a hung kernel. It never raises unless
  ``GRPO_LAB_STRICT_CHECKS=1`` (the test suite sets it when it executes the solution notebooks), works
  offline and in Colab, and returns a ``CheckReport``.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import ModuleType

from grpo_lab.course.own_work import library_use
from grpo_lab.course.registry import (  # noqa: F401  (re-exported: the grader's whole vocabulary in one place)
    DEFAULT_TIME_LIMIT_S,
    Exercise,
    ExerciseTest,
    Question,
    collect,
    concept_questions,
    exercise_test,
)
from grpo_lab.deadline import Deadline

STUB_MESSAGE = "not implemented yet: replace this line with your solution"
# The concept questions of each notebook: grpo_lab/course/questions/<name>.json (package data).
QUESTION_FILES = ("00", "01", "02", "03", "04", "04a", "05", "06", "06a", "07", "07a", "08", "09", "10")


class ExerciseTimeout(Exception):
    """Raised inside a student's function when a test exceeds its time limit."""


def check_modules() -> tuple[ModuleType, ...]:
    """The check modules, one per notebook (04's two by concept), in course order: a static list, imported on
    the first ``check`` so that ``from grpo_lab.grading import check`` stays cheap. Notebooks 06 and 10 have
    concept questions only."""
    from grpo_lab.course.checks import (
        nb00,
        nb01,
        nb02,
        nb03,
        nb04_rollout,
        nb04_update,
        nb04a,
        nb05,
        nb06a,
        nb07,
        nb07a,
        nb08,
        nb09,
    )

    return (nb00, nb01, nb02, nb03, nb04_rollout, nb04_update, nb04a, nb05, nb06a, nb07, nb07a, nb08, nb09)


def load_questions(name: str) -> Exercise:
    """The concept exercise stored in ``grpo_lab/course/questions/<name>.json``."""
    data = json.loads(resources.files("grpo_lab.course").joinpath("questions", f"{name}.json").read_text("utf-8"))
    questions = [Question(**q) for q in data["questions"]]
    return concept_questions(data["exercise"], questions, data["title"])


_REGISTRY: dict[str, Exercise] = {}


def _load_all() -> None:
    if _REGISTRY:
        return
    exercises = collect(check_modules())
    for name in QUESTION_FILES:
        ex = load_questions(name)
        if ex.id in exercises:
            raise ValueError(f"questions/{name}.json: exercise {ex.id} is defined twice")
        exercises[ex.id] = ex
    _REGISTRY.update(exercises)


def questions_markdown(exercise_id: str) -> str:
    """The questions of a concept exercise as markdown (the text the solution notebooks show)."""
    _load_all()
    return "\n\n".join(q.markdown() for q in _REGISTRY[exercise_id].questions)


def list_exercises() -> list[str]:
    """Ids of every registered exercise."""
    _load_all()
    return sorted(_REGISTRY)


@dataclass
class TestOutcome:
    name: str
    status: str  # "passed" | "failed" | "error" | "not implemented" | "timeout" | "refused"
    message: str = ""
    hint: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class CheckReport:
    exercise_id: str
    outcomes: list[TestOutcome]
    # check() printed the summary already: a notebook whose cell ends in check(...) must not show it twice.
    printed: bool = field(default=False, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return bool(self.outcomes) and all(o.passed for o in self.outcomes)

    @property
    def not_implemented(self) -> bool:
        return any(o.status == "not implemented" for o in self.outcomes)

    def summary(self) -> str:
        n_ok = sum(o.passed for o in self.outcomes)
        lines = [f"Exercise {self.exercise_id}: {n_ok}/{len(self.outcomes)} checks passed"]
        label = "why" if _REGISTRY.get(self.exercise_id, Exercise("")).kind == "concepts" else "hint"
        for o in self.outcomes:
            mark = "PASS" if o.passed else "FAIL"
            lines.append(f"  [{mark}] {o.name}" + ("" if o.passed else f": {o.message}"))
            if not o.passed and o.hint and o.status != "not implemented":
                lines.append(f"         {label}: {o.hint}")
        if self.passed:
            lines.append(f"All {len(self.outcomes)} checks passed. Well done!")
        elif self.not_implemented:
            lines.append("This exercise is not implemented yet: fill in the function and run the check again.")
        return "\n".join(lines)

    def __repr__(self) -> str:  # what a notebook shows when check() is the last expression
        return self.summary()

    _repr_pretty_ = lambda self, p, cycle: p.text(self.summary())  # noqa: E731

    def _ipython_display_(self) -> None:
        """Jupyter's display of ``check(...)`` as a cell's last expression (IPython prefers this hook to the repr):
        the summary, unless ``check`` printed it already."""
        if not self.printed:
            print(self.summary())


def _run_one(test: ExerciseTest, fn: Callable, time_scale: float) -> TestOutcome:
    t0 = time.perf_counter()
    try:
        limit = test.time_limit_s * time_scale
        # Line tracing off the main thread: a student's `while True: pass` calls nothing, so only line
        # events can stop it there.
        with Deadline(
            limit, error=lambda: ExerciseTimeout(f"took longer than {limit:.0f} s (an infinite loop?)"), trace="line"
        ):
            test.fn(fn)
        status, msg = "passed", ""
    except NotImplementedError:
        status, msg = "not implemented", STUB_MESSAGE.split(":")[0]
    except ExerciseTimeout as e:
        status, msg = "timeout", str(e)
    except AssertionError as e:
        status, msg = "failed", str(e) or "an assertion failed"
    except Exception as e:  # the student's code raised: show where, briefly
        tb = traceback.extract_tb(e.__traceback__)
        where = f" (line {tb[-1].lineno} of {Path(tb[-1].filename).name})" if tb else ""
        status, msg = "error", f"{type(e).__name__}: {e}{where}"
    return TestOutcome(test.name, status, msg, test.hint, time.perf_counter() - t0)


def check(exercise_id: str, fn: Callable | Mapping, *, verbose: bool = True, time_scale: float = 1.0) -> CheckReport:
    """Grade ``fn`` against the tests of ``exercise_id`` and print a friendly per-test report.

    ``fn`` is the student's function, or for a concept exercise a dict of answers (``{"q1": "b", "q2": 0.5}``).
    A function that is grpo_lab's own, wraps it, or calls a name the exercise forbids is refused before any
    test runs, with the reason. Never raises for a wrong or unfinished solution (a stub's
    ``NotImplementedError`` is reported as "not implemented yet"); each test has a time limit. With
    ``GRPO_LAB_STRICT_CHECKS=1`` a failing report raises ``AssertionError`` after printing, so executing a
    solution notebook under the test suite fails loudly.
    """
    _load_all()
    if exercise_id not in _REGISTRY:
        raise KeyError(f"unknown exercise {exercise_id!r}; known: {', '.join(sorted(_REGISTRY))}")
    ex = _REGISTRY[exercise_id]
    if ex.kind == "concepts":
        if not isinstance(fn, Mapping):
            raise TypeError(
                f"check({exercise_id!r}, answers): pass a dict such as {{'q1': 'b'}}, got {type(fn).__name__}"
            )
        refused = None
    elif not callable(fn):
        raise TypeError(
            f"check({exercise_id!r}, fn): pass your function itself (no parentheses), got {type(fn).__name__}"
        )
    else:
        refused = library_use(fn, ex.forbidden)
    outcomes: list[TestOutcome] = []
    if refused:
        outcomes.append(
            TestOutcome(
                "written by you",
                "refused",
                refused,
                "write the function yourself; the exercise text says which helpers you may call",
            )
        )
    for t in ex.tests if not refused else ():
        if outcomes and outcomes[-1].status == "timeout":
            # One runaway loop is enough to report; waiting out every limit would stall the notebook.
            outcomes.append(TestOutcome(t.name, "timeout", "skipped after the previous test timed out", t.hint))
            continue
        outcomes.append(_run_one(t, fn, time_scale))
    report = CheckReport(exercise_id, outcomes)
    if verbose:
        print(report.summary())
        report.printed = True
    if os.environ.get("GRPO_LAB_STRICT_CHECKS") == "1" and not report.passed and not report.not_implemented:
        raise AssertionError(f"exercise {exercise_id} failed its checks")
    return report
