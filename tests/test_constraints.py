"""COLLIE-style constraints: the checker on hand-made outputs, potentials on partial strings, the program parser
on malformed programs, SMC steering against a toy model's exact posterior, best-of-N, and ICE revision rounds."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from grpo_lab.errors import GrpoLabError
from grpo_lab.tasks import (
    ConstraintTask,
    Problem,
    ProgramError,
    get_task,
    make_problem,
    parse_program,
    program_for,
    sentence_of,
    words_of,
)


def problem_of(*checks: dict) -> Problem:
    """A hand-made problem with these constraints (what ``make_problem`` stores in meta)."""
    return Problem("p", "q", json.dumps(list(checks)), {"constraints": list(checks), "level": len(checks)})


TASK = ConstraintTask()

# ------------------------------------------------------------------------------------------ the checker


def test_words_are_letter_runs_with_inner_apostrophes():
    assert words_of("The dog's ball, don't  STOP!  42 cats") == ["the", "dog's", "ball", "don't", "stop", "42", "cats"]


def test_check_on_hand_made_outputs():
    p = problem_of({"op": "word_count", "n": 4}, {"op": "word_at", "k": 2, "word": "cat"})
    assert TASK.check(p, "The cat sat down.")
    assert TASK.check(p, '  "the CAT sat down"\nHope this helps!')  # first line, quotes and case ignored
    assert not TASK.check(p, "The cat sat.")  # three words
    assert not TASK.check(p, "A dog sat down.")  # word 2 wrong
    assert not TASK.check(p, "") and not TASK.check(p, None)
    p = problem_of({"op": "max_word_len", "n": 4}, {"op": "not_contains", "letter": "e"})
    assert TASK.check(p, "A cat sat on a mat")
    assert not TASK.check(p, "A cat sat on the mat")  # 'e'
    assert not TASK.check(p, "A cat sat on a rug outside")  # 7 letters
    p = problem_of({"op": "ends_with", "word": "home"}, {"op": "contains", "word": "dog"})
    assert TASK.check(p, "The dog ran home.") and not TASK.check(p, "The dogs ran home.")
    assert not TASK.check(p, "Home is where the dog is")
    p = problem_of({"op": "not_contains", "word": "the"}, {"op": "contains", "text": "ran h"})
    assert TASK.check(p, "Then a dog ran home") and not TASK.check(p, "The dog ran home")


def test_explain_names_each_failed_constraint():
    p = problem_of(
        {"op": "word_count", "n": 3}, {"op": "not_contains", "letter": "z"}, {"op": "ends_with", "word": "sea"}
    )
    assert TASK.explain(p, "Blue sea") == ["has exactly 3 words (got: 2 words)"]
    got = TASK.explain(p, "The zebra swims")
    assert got == [
        "does not contain the letter 'z' (got: it does)",
        "ends with the word 'sea' (got: ends with 'swims')",
    ]
    assert TASK.explain(p, "The blue sea") == [] and TASK.check(p, "The blue sea")


def test_generated_problems_are_satisfiable_by_their_witness_and_leveled():
    rng = random.Random(0)
    for level in (1, 2, 3):
        for _ in range(200):
            problem, witness = make_problem(rng, level)
            assert TASK.check(problem, witness), (problem.meta, witness)
            assert len(problem.meta["constraints"]) == level and problem.meta["level"] == level
            assert witness not in json.dumps(problem.meta) + problem.prompt + problem.question + problem.answer
            # the constraints bite: a fixed dull sentence fails a good share of them (checked below in aggregate)


def test_constraints_bite():
    rng = random.Random(1)
    dull = "the cat sat on the mat"
    passed = sum(TASK.check(make_problem(rng, 2)[0], dull) for _ in range(300))
    assert passed < 60  # a sentence that ignores the instructions rarely passes two constraints


def test_task_split_levels_prompts_and_registry():
    t = get_task("constraints", levels=[3])
    train, held = t.train(300, seed=0), t.heldout(100, seed=0)
    assert not {t.key(p) for p in train} & {t.key(p) for p in held}
    assert {p.meta["level"] for p in train} == {3}
    p = held[0]
    assert p.prompt.endswith("Sentence:") and p.question.startswith("Write one English sentence that")
    assert program_for(p).describe()[0] in p.question  # the prompt states the program's checks
    assert parse_program(p.answer) == program_for(p)  # answer holds the program, not a sentence
    with pytest.raises(ValueError):
        ConstraintTask(levels=[4])
    assert t.extract("  The Cat, sat!\nmore") == "the cat sat" and t.extract("  \n") is None


def test_chat_prompt_uses_the_task_system_prompt():
    class Tok:  # a chat template that names roles (prompts.is_chat_tokenizer)
        chat_template = "{role}"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"

    p = get_task("constraints", tokenizer=Tok()).heldout(1)[0]
    assert p.prompt.startswith("system:Reply with the sentence only") and p.meta["plain_prompt"].endswith("Sentence:")


def test_overlong_or_hostile_text_is_refused_promptly():
    p = problem_of({"op": "not_contains", "letter": "q"})
    assert TASK.check(p, "a " * 200) and not TASK.check(p, "a " * 300)  # 600 characters: refused unread
    assert not TASK.check(p, "\n\n  \n")


# ------------------------------------------------------------------------------------------ programs


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("not json", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
        ('{"op": "word_count", "n": 3}', "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        ("[3]", "must be an object"),
        ('[{"op": "rhymes"}]', "unknown op 'rhymes'"),
        ('[{"n": 3}]', "unknown op None"),
        ('[{"op": "word_count"}]', "missing field 'n'"),
        ('[{"op": "word_count", "n": "7"}]', "must be an integer"),
        ('[{"op": "word_count", "n": true}]', "must be an integer"),
        ('[{"op": "word_count", "n": 0}]', "must be an integer"),
        ('[{"op": "word_count", "n": 7.0}]', "must be an integer"),
        ('[{"op": "word_at", "k": 2}]', "missing field 'word'"),
        ('[{"op": "word_at", "k": 2, "word": "two words"}]', "single word"),
        ('[{"op": "word_at", "k": 2, "word": ""}]', "non-empty string"),
        ('[{"op": "contains"}]', "exactly one of"),
        ('[{"op": "contains", "letter": "e", "word": "x"}]', "exactly one of"),
        ('[{"op": "not_contains", "letter": "ee"}]', "one character"),
        ('[{"op": "ends_with", "word": 5}]', "non-empty string"),
        ('[{"op": "ends_with", "word": "home", "k": 1}]', "unknown fields ['k']"),
        (json.dumps([{"op": "word_count", "n": 3}] * 21), "at most 20"),
    ],
)
def test_malformed_programs_raise_a_clear_program_error(text, fragment):
    with pytest.raises(ProgramError, match=None) as info:
        parse_program(text)
    assert fragment in str(info.value) and isinstance(info.value, GrpoLabError)


def test_parser_accepts_fenced_json_and_round_trips():
    src = '```json\n[{"op": "word_count", "n": 7}, {"op": "contains", "word": "River"}]\n```'
    prog = parse_program(src)
    assert prog.checks[1].word == "river"  # lower-cased: comparisons are case-insensitive
    assert parse_program(prog.to_json()) == prog


@pytest.mark.parametrize("junk", [None, 3, "", "null", '"x"', "[null]", '[{"op": null}]', '[{"op": ["word_count"]}]'])
def test_parser_never_crashes_on_junk(junk):
    with pytest.raises(ProgramError):
        parse_program(junk)


P = parse_program(
    json.dumps(
        [
            {"op": "word_count", "n": 4},
            {"op": "word_at", "k": 2, "word": "river"},
            {"op": "max_word_len", "n": 5},
            {"op": "not_contains", "letter": "z"},
            {"op": "ends_with", "word": "home"},
        ]
    )
)


@pytest.mark.parametrize(
    "prefix,alive",
    [
        ("", True),
        ("The", True),
        ("The riv", True),  # the open word may still become 'river'
        ("The rov", False),  # it cannot
        ("The river", True),
        ("The rivers", False),  # 'rivers' is not 'river' and has 6 letters
        ("The river ran", True),
        ("The river ran h", True),
        ("The river ran home", True),
        ("The river ran home now", False),  # five words: too many already
        ("The river ran homeward", False),  # 8 letters
        ("The river ran z", False),  # forbidden letter
        ("Amazing", False),  # 7 letters and a 'z'
    ],
)
def test_potential_on_partial_strings(prefix, alive):
    assert P.potential(prefix, final=False) == (0.0 if alive else -math.inf)


def test_final_potential_is_exact():
    assert P.potential("The river ran home.", final=True) == 0.0
    assert P.potential("The river ran", final=True) == -math.inf  # alive as a prefix, not as a finished text
    assert P.potential("The river ran far", final=True) == -math.inf  # does not end with 'home'


def test_potential_is_sound_on_every_prefix_of_satisfying_texts():
    # Soundness, what SMC needs: a text satisfying the program is never killed on the way.
    rng = random.Random(2)
    for level in (1, 2, 3):
        for _ in range(150):
            problem, witness = make_problem(rng, level)
            text = random.Random(len(witness)).choice([witness, witness.capitalize() + ".", f"'{witness}'"])
            prog = program_for(problem)
            assert prog.potential(sentence_of(text), final=True) == 0.0
            assert all(prog.potential(text[:i]) == 0.0 for i in range(len(text) + 1)), (problem.meta, text)


def test_potential_and_check_agree_with_failures():
    rng = random.Random(3)
    words = ["the", "cat", "river", "home", "zebra", "a"]
    for _ in range(300):
        problem, _ = make_problem(rng, rng.choice((1, 2, 3)))
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 7)))
        prog = program_for(problem)
        assert (prog.potential(text, final=True) == 0.0) == (not prog.failures(text)) == TASK.check(problem, text)
        assert len(TASK.explain(problem, text)) == len(prog.failures(text))
        if prog.potential(text, final=True) == 0.0:
            assert all(prog.potential(text[:i]) == 0.0 for i in range(len(text)))


def test_every_prefix_of_a_dead_prefix_extension_stays_dead():
    # Once -inf, always -inf: appending never revives a violated check.
    rng = random.Random(4)
    for _ in range(200):
        problem, _ = make_problem(rng, 3)
        prog = program_for(problem)
        text = " ".join(rng.choice(["the", "cat", "rivers", "home", "zebra"]) for _ in range(8))
        dead = [prog.potential(text[:i]) == -math.inf for i in range(len(text) + 1)]
        assert dead == sorted(dead)  # False... then True...
        assert list(itertools.accumulate(dead, max)) == dead
