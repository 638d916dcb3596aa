"""What an exercise is, as plain data: its tests (``ExerciseTest``), its concept questions (``Question``), and the
``exercise_test`` decorator that a check module puts on each test.

The bottom of ``grpo_lab.course``: it imports nothing from ``grpo_lab``, and the check modules and the grader
import it. Decorating a test registers nothing anywhere: it records the test's ``ExerciseTest`` on the function
itself, and ``collect`` reads those records from the modules the grader names (``grading.CHECK_MODULES``, a static
list), in the order the tests are defined. So importing a check module changes nothing outside it, and the
grader's exercises are exactly those of the modules it lists.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType

DEFAULT_TIME_LIMIT_S = 20.0
TEST_ATTRIBUTE = "exercise_test"  # where the decorator leaves a test's record on the function


@dataclass
class ExerciseTest:
    """One test of an exercise: ``fn(student_fn) -> None`` fails by raising; ``hint`` is shown when it fails.

    ``exercise_id``, ``title`` and ``forbid`` say which exercise the test belongs to and what that exercise asks;
    ``collect`` turns them into the ``Exercise``'s fields."""

    name: str
    fn: Callable
    hint: str = ""
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    exercise_id: str = ""
    title: str = ""
    forbid: tuple[str, ...] = ()


@dataclass
class Exercise:
    """One exercise: its tests in order, the library names it forbids (short name -> library path), and its
    kind: ``"function"`` (graded by calling the student's function) or ``"concepts"`` (a dict of answers)."""

    id: str
    title: str = ""
    tests: list[ExerciseTest] = field(default_factory=list)
    forbidden: dict[str, str] = field(default_factory=dict)
    kind: str = "function"
    questions: list = field(default_factory=list)


def exercise_test(
    exercise_id: str,
    hint: str = "",
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    title: str = "",
    forbid: tuple[str, ...] = (),
):
    """Mark ``fn(student_fn) -> None`` as a test of ``exercise_id``; it fails by raising.

    Tests run in the order they are defined; ``hint`` is shown when the test fails. ``forbid``: library paths
    (``"grpo_lab.grpo.group_advantages"``) that the exercise asks the student to write, so neither passing them
    nor calling them counts; the last dotted part is the name looked for in the student's code (a label such
    as ``"model.generate"`` forbids an attribute of that name). The test's name is the function's, without
    ``test_`` and with spaces for underscores.
    """

    def deco(fn):
        name = fn.__name__.removeprefix("test_").replace("_", " ")
        setattr(fn, TEST_ATTRIBUTE, ExerciseTest(name, fn, hint, time_limit_s, exercise_id, title, tuple(forbid)))
        return fn

    return deco


def tests_of(module: ModuleType) -> list[ExerciseTest]:
    """The tests defined in ``module`` (not those it imports), in the order of their definitions."""
    found = [getattr(obj, TEST_ATTRIBUTE) for obj in vars(module).values() if hasattr(obj, TEST_ATTRIBUTE)]
    return [t for t in found if t.fn.__module__ == module.__name__]


def collect(modules: Iterable[ModuleType]) -> dict[str, Exercise]:
    """The function exercises of ``modules``: each test joins its exercise, the first title given names it, and
    the forbidden paths add up (two paths with one short name, a library function and a method, share the entry)."""
    exercises: dict[str, Exercise] = {}
    for module in modules:
        for test in tests_of(module):
            ex = exercises.setdefault(test.exercise_id, Exercise(test.exercise_id, test.title))
            if test.title and not ex.title:
                ex.title = test.title
            for path in test.forbid:
                short = path.rsplit(".", 1)[-1]
                ex.forbidden[short] = path if short not in ex.forbidden else f"{ex.forbidden[short]} or {path}"
            ex.tests.append(test)
    return exercises


@dataclass
class Question:
    """A concept question. ``text`` (markdown) and, for multiple choice, ``options`` (letter -> text);
    ``answer``: the right letter, or a number accepted within ``tolerance`` (absolute) when there are no
    options. ``why`` is printed when the student's answer is wrong: it explains the concept, so a wrong
    answer still teaches. ``quotes``: the numbers the question takes from its notebook's stored run, as
    ``[label, number]`` pairs; ``tools.prose_drift.drifted_quotes`` checks each against the notebook's outputs
    (the same rule as a ``<!-- out: label -->`` marker in its prose), so a re-render cannot leave them stale."""

    key: str
    text: str
    answer: str | float
    why: str
    options: dict[str, str] = field(default_factory=dict)
    tolerance: float = 1e-6
    quotes: list[list[str]] = field(default_factory=list)

    def markdown(self) -> str:
        """The question as a markdown list item (options as a sub-list), for the notebook."""
        lines = [f"**{self.key}.** {self.text}"]
        lines += [f"   - ({k}) {v}" for k, v in self.options.items()]
        return "\n".join(lines)


def grade_answer(q: Question, answers: Mapping) -> None:
    """The test of one concept question: passes when ``answers[q.key]`` is right, else raises with the reason."""
    given = answers.get(q.key)
    if given is None or given is Ellipsis:
        raise NotImplementedError(f"{q.key} is not answered yet")
    if q.options:
        got = str(given).strip().strip("()").strip().lower()
        assert got in q.options, f"answer with one letter among {', '.join(q.options)}, got {given!r}"
        assert got == q.answer, f"{given!r} is not the right answer"
        return
    try:
        x = float(given)
    except (TypeError, ValueError):
        raise AssertionError(f"answer with a number, got {given!r}") from None
    assert abs(x - float(q.answer)) <= q.tolerance, f"{given!r} is not the right value"


def concept_questions(exercise_id: str, questions: list[Question], title: str = "Concept questions") -> Exercise:
    """``questions`` as exercise ``exercise_id``, graded by ``check(exercise_id, {"q1": "b", ...})``: one test per
    question, whose hint is the question's ``why``."""
    ex = Exercise(exercise_id, title, kind="concepts")
    for q in questions:
        ex.tests.append(ExerciseTest(q.key, functools.partial(grade_answer, q), q.why))
        ex.questions.append(q)
    return ex
