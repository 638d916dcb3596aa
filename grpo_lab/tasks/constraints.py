"""Constrained generation in the style of COLLIE (Yao et al., arXiv 2307.08689): write a sentence that meets
word-level constraints. No gold output exists; a verifier reads the constraints and the text.

- A problem states 1-3 constraints (its ``level``) drawn from: exact word count, word k is W, every word at most
  L letters, must / must not contain a letter or a word, ends with W. They are stored in ``meta["constraints"]``
  in the JSON form of ``constraint_programs`` (the same form a planner model writes, DisCIPL: Grand et al.,
  arXiv 2504.07081), so ``program_for(problem)`` is the correct, hand-written program and ``check`` is that
  program's exact final check. ``Problem.answer`` holds the program's JSON text, not a gold sentence.
- Every problem is satisfiable: ``make_problem`` first draws a witness sentence from a fixed vocabulary and
  reads each constraint off it (its word count, one of its words, a letter it lacks...). The witness is
  returned to the caller (the tests) and never stored in the problem.
- The checked sentence (``sentence_of``) is the completion's first non-empty line with surrounding quotes
  removed: chat models often add a second line of comment; the constraints apply to the sentence.
- The split is the usual hash of the plain prompt (``base.is_heldout_key``).
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Callable, Sequence

from grpo_lab.tasks.base import Problem, Task
from grpo_lab.tasks.constraint_programs import Check, Program, parse_program, words_of

__all__ = ["CONSTRAINT_KINDS", "CONSTRAINTS_SYSTEM", "MAX_SENTENCE_CHARS", "PLANNER_SYSTEM", "VOCAB", "ConstraintTask",
           "make_problem", "planner_messages", "program_for", "sentence_of", "sentence_potential"]  # fmt: skip

MAX_SENTENCE_CHARS = 500  # a longer "sentence" is refused unread: no constraint here needs one, and checks stay fast
CONSTRAINTS_SYSTEM = "Reply with the sentence only, on one line, with no explanation."

# Short, common words: a small model can use them, and they give enough letters to forbid one.
VOCAB = (
    "the a one old red big small cat dog bird fish sun moon tree river road house home boat town hill rain snow "
    "wind day night man girl boy king book song ship star sea lake farm door sky runs sat ran saw sings jumps "
    "walks sleeps looks flies swims goes came went is was and but to in on at by of with near under over from "
    "green blue cold warm quiet happy slow fast tall dark bright"
).split()
# The kinds a level draws from, without repeats within a problem (two word counts would be redundant).
CONSTRAINT_KINDS = ("word_count", "word_at", "max_word_len", "contains_letter", "contains_word",
                    "not_contains_letter", "not_contains_word", "ends_with")  # fmt: skip


def sentence_of(completion: str | None) -> str | None:
    """The sentence a completion states: its first non-empty line, stripped, surrounding quotes removed; None
    when there is none."""
    if not isinstance(completion, str):
        return None
    for line in completion.splitlines():
        line = line.strip().strip("\"'`").strip()
        if line:
            return line
    return None


def sentence_potential(program: Program) -> Callable[[str, bool], float]:
    """The potential of ``program`` on a completion's sentence, for SMC steering (Lew et al., arXiv 2306.03081):
    ``program.potential(sentence_of(text), final)``, where the sentence is also final once the completion holds
    a newline after it (``sentence_of`` reads the first non-empty line only, so nothing after it can change the
    verdict). With ``final`` it agrees with ``ConstraintTask.check``; a sentence over ``MAX_SENTENCE_CHARS``
    characters is refused (-inf), as ``check`` refuses it."""

    def potential(text: str, final: bool) -> float:
        sentence = sentence_of(text) or ""
        if len(sentence) > MAX_SENTENCE_CHARS:
            return -math.inf
        ended = final or "\n" in text.lstrip()  # a newline after the sentence has begun ends it
        return program.potential(sentence, ended)

    return potential


PLANNER_SYSTEM = (
    'You turn writing instructions into a JSON list of checks. Each check is an object with an "op" and its '
    "fields: word_count (n), word_at (k, word), max_word_len (n), contains (letter or word), not_contains "
    "(letter or word), ends_with (word). Reply with the JSON list only."
)


def planner_messages(question: str, shots: Sequence[Problem], system: str = PLANNER_SYSTEM) -> list[dict]:
    """The planner's few-shot chat: ``system``, then for each shot its question as a user turn and its program
    (``Problem.answer``, the JSON the task stores) as the assistant's reply, then ``question``. A small stand-in
    for DisCIPL's planner (Grand et al., arXiv 2504.07081), which writes a whole inference program: here the
    planner only writes the constraint list that ``parse_program`` compiles into potentials."""
    messages = [{"role": "system", "content": system}]
    for shot in shots:
        messages += [{"role": "user", "content": shot.question}, {"role": "assistant", "content": shot.answer}]
    return messages + [{"role": "user", "content": question}]


def _constraint(kind: str, witness: list[str], rng: random.Random) -> dict:
    """One constraint of ``kind`` that the ``witness`` words satisfy, in the program's JSON form."""
    letters = set("".join(witness))
    if kind == "word_count":
        return {"op": "word_count", "n": len(witness)}
    if kind == "word_at":
        k = rng.randrange(len(witness))
        return {"op": "word_at", "k": k + 1, "word": witness[k]}
    if kind == "max_word_len":
        return {"op": "max_word_len", "n": max(map(len, witness)) + rng.choice((0, 0, 1))}
    if kind == "contains_letter":
        return {"op": "contains", "letter": rng.choice(sorted(letters))}
    if kind == "contains_word":
        return {"op": "contains", "word": rng.choice(witness)}
    if kind == "not_contains_letter":
        absent = [c for c in "etaoinsrhldu" if c not in letters]  # common letters: a constraint that bites
        absent = absent or [c for c in string.ascii_lowercase if c not in letters]
        return {"op": "not_contains", "letter": rng.choice(absent)}
    if kind == "not_contains_word":
        return {"op": "not_contains", "word": rng.choice([w for w in VOCAB if w not in witness])}
    return {"op": "ends_with", "word": witness[-1]}


def make_problem(rng: random.Random, level: int) -> tuple[Problem, str]:
    """A problem with ``level`` constraints (1-3) and the witness sentence that satisfies them.

    The witness is 4-9 words from ``VOCAB``; each constraint kind is drawn without repeats from
    ``CONSTRAINT_KINDS`` and read off the witness (``_constraint``), so the conjunction is satisfiable.
    """
    if level not in (1, 2, 3):
        raise ValueError(f"level must be 1, 2 or 3, not {level!r}")
    witness = [rng.choice(VOCAB) for _ in range(rng.randint(4, 9))]
    checks = [_constraint(kind, witness, rng) for kind in rng.sample(CONSTRAINT_KINDS, level)]
    program = parse_program(checks)
    rules = "; ".join(program.describe())
    question = f"Write one English sentence that {rules}."
    prompt = f"Constraints: {rules}.\nSentence:"
    meta = {"constraints": [c.to_json() for c in program.checks], "level": level}
    return Problem(prompt, question, program.to_json(), meta), " ".join(witness)


def program_for(problem: Problem) -> Program:
    """The correct constraint program of ``problem`` (hand-written from its ``meta["constraints"]``): the upper
    bound a planner's program is compared with (DisCIPL, Grand et al., arXiv 2504.07081)."""
    return parse_program(problem.meta["constraints"])


class ConstraintTask(Task):
    """Write a sentence meeting 1-3 COLLIE-style constraints (Yao et al., arXiv 2307.08689); ``check`` reads
    ``meta["constraints"]`` only.

    ``levels``: the numbers of constraints to draw from (uniformly). ``heldout_buckets``: fifths of the problem
    space held out (``base.is_heldout_key`` on the plain prompt).
    """

    name = "constraints"
    system = CONSTRAINTS_SYSTEM
    answer_tokens = 64  # a sentence of up to ~10 short words, even one character per token

    def __init__(self, levels: tuple[int, ...] | list[int] = (1, 2, 3), heldout_buckets: int = 1):
        self.levels = tuple(sorted(set(levels)))
        if not self.levels or any(lv not in (1, 2, 3) for lv in self.levels):
            raise ValueError(f"levels must be drawn from 1, 2, 3, not {levels!r}")
        if not 1 <= heldout_buckets <= 4:
            raise ValueError(f"heldout_buckets={heldout_buckets}: hold out 1 to 4 of the 5 buckets")
        self.heldout_buckets = heldout_buckets

    def describe(self) -> str:
        """``constraints(levels=1-2-3, heldout_buckets=1)``."""
        return f"constraints(levels={'-'.join(map(str, self.levels))}, heldout_buckets={self.heldout_buckets})"

    def _random_problem(self, rng: random.Random) -> Problem:
        return make_problem(rng, rng.choice(self.levels))[0]

    def check(self, problem: Problem, answer: str | None) -> bool:
        """True iff the completion's sentence (``sentence_of``, at most ``MAX_SENTENCE_CHARS`` characters)
        satisfies every constraint of ``meta["constraints"]`` exactly (the program's final potential is 0)."""
        sentence = sentence_of(answer)
        if sentence is None or len(sentence) > MAX_SENTENCE_CHARS:
            return False
        return program_for(problem).potential(sentence, final=True) == 0.0

    def explain(self, problem: Problem, answer: str | None) -> list[str]:
        """The constraints the completion's sentence fails, in words (``does not contain the letter 'e'``), each
        with what the sentence has instead; empty when ``check`` passes."""
        sentence = sentence_of(answer)
        if sentence is None:
            return ["no sentence (the completion is empty)"]
        if len(sentence) > MAX_SENTENCE_CHARS:
            return [f"the sentence is longer than {MAX_SENTENCE_CHARS} characters"]
        words = words_of(sentence)
        return [f"{c.describe()} (got: {_found(c, words)})" for c in program_for(problem).failures(sentence)]

    def extract(self, completion: str) -> str | None:
        """The sentence, normalised for voting: its words lower-cased, joined by single spaces (None without
        one), so case and punctuation do not split votes."""
        words = words_of(sentence_of(completion) or "")
        return " ".join(words) if words else None


def _found(check: Check, words: list[str]) -> str:
    """What a failing sentence has where ``check`` looked, for ``explain``."""
    if check.op == "word_count":
        return f"{len(words)} words"
    if check.op == "word_at":
        return f"word {check.k} is '{words[check.k - 1]}'" if len(words) >= check.k else f"only {len(words)} words"
    if check.op == "max_word_len":
        lengths = {w: sum(ch.isalnum() for ch in w) for w in words}  # letters, as the check counts them
        return ", ".join(f"'{w}' has {n}" for w, n in lengths.items() if n > check.n)
    if check.op == "ends_with":
        return f"ends with '{words[-1]}'" if words else "no words"
    return "it does" if check.op == "not_contains" else "it does not"
