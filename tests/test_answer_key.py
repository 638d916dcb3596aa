"""An answer key nobody can game (issue #27): across the course's concept questions no letter is right more than
35% of the time, the right option is the longest in at most half of the multiple-choice questions, every letter an
explanation names is an option, and the question files, the solution notebooks and the exercises are as
``tools/shuffle_options.py`` leaves them."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tools import shuffle_options

ROOT = Path(__file__).resolve().parents[1]
QUESTION_FILES = sorted((ROOT / "grpo_lab" / "course" / "questions").glob("*.json"))
MAX_LETTER_SHARE = 0.35
MAX_LONGEST_SHARE = 0.5


def _multiple_choice(files=QUESTION_FILES) -> list[tuple[str, dict]]:
    out = []
    for path in files:
        data = json.loads(path.read_text("utf-8"))
        out += [(f"{path.name} {q['key']}", q) for q in data["questions"] if q.get("options")]
    return out


def letter_share(questions: list[dict]) -> tuple[str, float]:
    """The letter that is right most often among ``questions`` (multiple choice) and its share of them."""
    letter, count = Counter(q["answer"] for q in questions).most_common(1)[0]
    return letter, count / len(questions)


def right_is_longest(q: dict) -> bool:
    """Whether the right option is at least as long as every other one: a tie still rewards 'pick the longest'."""
    return len(q["options"][q["answer"]]) >= max(len(t) for t in q["options"].values())


def test_the_course_has_multiple_choice_questions_to_judge():
    # The rules below are shares: an empty or tiny key would pass them vacuously.
    assert len(_multiple_choice()) >= 30 and len(QUESTION_FILES) == 14


def test_no_letter_is_right_more_than_35_percent_of_the_time():
    letter, share = letter_share([q for _, q in _multiple_choice()])
    assert share <= MAX_LETTER_SHARE, f"({letter}) is right in {share:.0%} of the questions: run tools/shuffle_options"


def test_the_right_option_is_the_longest_in_at_most_half_of_the_questions():
    questions = _multiple_choice()
    longest = [name for name, q in questions if right_is_longest(q)]
    assert len(longest) <= MAX_LONGEST_SHARE * len(questions), (
        f"the right option is the longest in {len(longest)} of {len(questions)}: lengthen a wrong option or tighten "
        f"the right one in some of {longest}"
    )


def test_every_letter_an_explanation_names_is_an_option():
    bad = [
        f"{name} names ({letter})"
        for name, q in _multiple_choice()
        for letter in shuffle_options.LETTER_REF.findall(q["why"])
        if letter not in q["options"]
    ]
    assert not bad, bad


def test_the_rules_catch_a_key_that_can_be_gamed():
    # The same questions with the key every hand-written quiz drifts to: all (b), (b) the longest.
    planted = []
    for _, q in _multiple_choice():
        options = dict(q["options"])
        options["b"] = max(options.values(), key=len) + " (and more)"
        planted.append({**q, "options": options, "answer": "b"})
    assert letter_share(planted) == ("b", 1.0)
    assert all(right_is_longest(q) for q in planted)


def test_the_files_are_in_their_seeded_order_and_the_solutions_follow_them():
    # A question added or reworded without the tool would keep its hand-written order (and letter).
    changed = shuffle_options.shuffle_course(ROOT, check_only=True)
    assert changed == [], f"run `python -m tools.shuffle_options`: {changed}"


def test_each_solution_answers_its_questions_with_the_right_letters():
    for path in QUESTION_FILES:
        data = json.loads(path.read_text("utf-8"))
        sol = shuffle_options._solution_of(ROOT, path.stem)
        cells = json.loads(sol.read_text("utf-8"))["cells"]
        src = next(
            "".join(c["source"]) for c in cells if f'check("{data["exercise"]}", answers)' in "".join(c["source"])
        )
        answers = ast.literal_eval(re.search(r"^answers = (\{.*\})$", src, re.M).group(1))
        letters = {q["key"]: q["answer"] for q in data["questions"] if q.get("options")}
        assert {k: answers[k] for k in letters} == letters, sol.name


def _question(**kw) -> dict:
    q = {
        "key": "q1",
        "text": "?",
        "options": {"a": "right", "b": "wrong one", "c": "wrong two", "d": "wrong three"},
        "answer": "a",
        "why": "(a) is right; (c) is the trap.",
    }
    return {**q, **kw}


def test_the_order_depends_on_the_texts_not_on_the_letters():
    q = _question()
    once = shuffle_options.shuffle_question("99-concepts", q)
    assert once["options"][once["answer"]] == "right"
    assert sorted(once["options"].values()) == sorted(q["options"].values())
    assert list(once["options"]) == ["a", "b", "c", "d"]
    # Written in another order, the same options land in the same seeded order: the tool is idempotent.
    reversed_q = _question(
        options={"a": "wrong three", "b": "wrong two", "c": "wrong one", "d": "right"},
        answer="d",
        why="(d) is right; (b) is the trap.",
    )
    assert shuffle_options.shuffle_question("99-concepts", reversed_q) == once
    assert shuffle_options.shuffle_question("99-concepts", once) == once
    # The seed matters: five seeds do not all give one order (a fixed order would, whatever the seed).
    orders = {
        tuple(shuffle_options.shuffle_question("99-concepts", q, seed=str(s))["options"].values()) for s in range(5)
    }
    assert len(orders) > 1


def test_explanations_follow_their_options_and_a_missing_option_is_refused():
    out = shuffle_options.shuffle_question("99-concepts", _question())
    right, trap = out["answer"], next(k for k, v in out["options"].items() if v == "wrong two")
    assert out["why"] == f"({right}) is right; ({trap}) is the trap."
    with pytest.raises(ValueError, match=r"names option \(e\)"):
        shuffle_options.shuffle_question("99-concepts", _question(why="unlike (e)"))
    numeric = {"key": "q2", "text": "?", "answer": 0.5, "tolerance": 0.01, "why": "(a) of the paper"}
    assert shuffle_options.shuffle_question("99-concepts", numeric) == numeric
