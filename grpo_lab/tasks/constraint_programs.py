"""Constraint programs: a small JSON form for COLLIE-style constraints, compiled into checks and potentials.

A program is a JSON list of checks, each an object with an ``op`` and its fields (COLLIE, Yao et al., arXiv
2307.08689, builds its tasks from the same kinds of word-level constraint):

====================  ==========================================  ==========================================
``op``                fields                                      holds when
====================  ==========================================  ==========================================
``word_count``        ``n`` (int >= 1)                            the text has exactly ``n`` words
``word_at``           ``k`` (int >= 1, 1-based), ``word`` (str)   word ``k`` is ``word``
``max_word_len``      ``n`` (int >= 1)                            every word has at most ``n`` letters
``contains``          exactly one of ``letter`` / ``word`` /      the letter occurs / the word is one of the
                      ``text``                                    words / the text occurs (a substring)
``not_contains``      as ``contains``                             the same does not hold
``ends_with``         ``word`` (str)                              the last word is ``word``
====================  ==========================================  ==========================================

Example: ``[{"op": "word_count", "n": 7}, {"op": "not_contains", "letter": "e"}]``.

Words (``words_of``) are maximal runs of letters and digits, an inner apostrophe kept (``don't`` is one word);
everything else separates words. Every comparison is case-insensitive; a word's length counts its letters and
digits. A planner model writes programs in this form (DisCIPL, Grand et al., arXiv 2504.07081, has a planner
write the inference program); ``parse_program`` validates them and never raises anything but ``ProgramError``.

``Program.potential(prefix, final)`` is the log-potential that sequential Monte Carlo steering (Lew et al.,
arXiv 2306.03081) multiplies into a particle's weight: 0.0 while the partial text can still satisfy every
check, ``-inf`` once it violates one. It is checked per constraint, so it is sound (a prefix of a satisfying
text is never ``-inf``) but not complete (a prefix that no text satisfies may still score 0.0, e.g. when two
checks conflict); with ``final=True`` it is exact: 0.0 iff every check holds.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from grpo_lab.errors import GrpoLabError

__all__ = ["OPS", "Check", "Program", "ProgramError", "parse_program", "same_program", "words_of"]

_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z0-9]+)*")
_WORD_CHAR_RE = re.compile(r"[A-Za-z0-9']$")  # a prefix ending so may still be inside its last word
MAX_CHECKS = 20  # a planner's program longer than this is rejected, not run
MAX_INT = 1000
MAX_STR = 100

# op -> the fields it takes: for contains / not_contains, exactly one of the three (``_TARGETS``).
_TARGETS = ("letter", "word", "text")
OPS: dict[str, tuple[str, ...]] = {
    "word_count": ("n",),
    "word_at": ("k", "word"),
    "max_word_len": ("n",),
    "contains": _TARGETS,
    "not_contains": _TARGETS,
    "ends_with": ("word",),
}


class ProgramError(GrpoLabError, ValueError):
    """A constraint program that cannot run (malformed JSON, unknown op, missing or wrongly typed field); the
    message names the check and the fix."""


def words_of(text: str) -> list[str]:
    """The words of ``text``, lower-cased: maximal runs of letters and digits with inner apostrophes."""
    return [w.lower() for w in _WORD_RE.findall(text)]


def _letters(word: str) -> int:
    return sum(c.isalnum() for c in word)


@dataclass(frozen=True)
class Check:
    """One constraint: ``op`` (a key of ``OPS``) and its fields (``n``, ``k``, ``word``, ``letter``, ``text``),
    strings lower-cased by ``parse_program``."""

    op: str
    n: int | None = None
    k: int | None = None
    word: str | None = None
    letter: str | None = None
    text: str | None = None

    def to_json(self) -> dict:
        """The check in the program's JSON form (only the fields it uses)."""
        return {"op": self.op, **{f: getattr(self, f) for f in OPS[self.op] if getattr(self, f) is not None}}

    def describe(self) -> str:
        """The check in words, as a prompt states it (``has exactly 7 words``)."""
        target = f"the letter '{self.letter}'" if self.letter else f"the word '{self.word}'" if self.word else None
        target = target or f"the text '{self.text}'"
        return {
            "word_count": lambda: f"has exactly {self.n} words",
            "word_at": lambda: f"has '{self.word}' as word number {self.k}",
            "max_word_len": lambda: f"uses only words of at most {self.n} letters",
            "contains": lambda: f"contains {target}",
            "not_contains": lambda: f"does not contain {target}",
            "ends_with": lambda: f"ends with the word '{self.word}'",
        }[self.op]()

    def _contains(self, text: str, words: list[str]) -> bool:
        if self.letter is not None or self.text is not None:
            return (self.letter or self.text) in text.lower()
        return self.word in words

    def holds(self, text: str) -> bool:
        """Whether ``text`` (a finished output) satisfies the check exactly."""
        words = words_of(text)
        if self.op == "word_count":
            return len(words) == self.n
        if self.op == "word_at":
            return len(words) >= self.k and words[self.k - 1] == self.word
        if self.op == "max_word_len":
            return all(_letters(w) <= self.n for w in words)
        if self.op == "ends_with":
            return bool(words) and words[-1] == self.word
        return self._contains(text, words) == (self.op == "contains")

    def possible(self, prefix: str) -> bool:
        """Whether some continuation of ``prefix`` can still satisfy the check (per check, so sound: False
        only when every continuation fails). The last word counts as unfinished when the prefix ends inside
        it: appending can lengthen it but never shorten or split it."""
        words = words_of(prefix)
        open_word = bool(words) and bool(_WORD_CHAR_RE.search(prefix))
        done = words[:-1] if open_word else words
        if self.op == "word_count":
            return len(words) <= self.n  # words are never removed by appending
        if self.op == "word_at":
            if len(done) >= self.k:
                return done[self.k - 1] == self.word
            # the open word may be word k: the target must still start with it
            return not (open_word and len(words) == self.k and not self.word.startswith(words[-1]))
        if self.op == "max_word_len":
            return all(_letters(w) <= self.n for w in words)  # an open word only grows
        if self.op == "not_contains":
            if self.word is not None:
                return self.word not in done
            return (self.letter or self.text) not in prefix.lower()
        return True  # contains and ends_with: any prefix can still be continued to satisfy them


@dataclass(frozen=True)
class Program:
    """A conjunction of ``checks``; the potentials of SMC steering (Lew et al., arXiv 2306.03081)."""

    checks: tuple[Check, ...]

    def potential(self, prefix: str, final: bool = False) -> float:
        """Log-potential of ``prefix``: 0.0 when every check is still possible (``final=False``) or holds
        exactly (``final=True``), else ``-inf``. Sound but not complete while unfinished (module docstring)."""
        test = Check.holds if final else Check.possible
        return 0.0 if all(test(c, prefix) for c in self.checks) else -math.inf

    def failures(self, text: str) -> list[Check]:
        """The checks a finished ``text`` violates, in program order (empty when it satisfies the program)."""
        return [c for c in self.checks if not c.holds(text)]

    def to_json(self) -> str:
        """The program as the JSON text ``parse_program`` reads back."""
        return json.dumps([c.to_json() for c in self.checks])

    def describe(self) -> list[str]:
        """Each check in words."""
        return [c.describe() for c in self.checks]


def _field(i: int, item: dict, name: str, kind: type):
    """``item[name]`` checked to be a ``kind`` (an int in 1..MAX_INT, a non-empty string of at most MAX_STR
    characters), or a ``ProgramError`` naming check ``i``."""
    if name not in item:
        raise ProgramError(f"check {i} ({item.get('op')}): missing field {name!r}; it needs {list(OPS[item['op']])}")
    value = item[name]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
            raise ProgramError(f"check {i}: field {name!r} must be an integer from 1 to {MAX_INT}, not {value!r}")
        return value
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_STR:
        raise ProgramError(f"check {i}: field {name!r} must be a non-empty string, not {value!r}")
    value = value.strip().lower()
    if name == "letter" and len(value) != 1:
        raise ProgramError(f"check {i}: 'letter' must be one character, not {value!r} (use 'word' or 'text')")
    if name == "word" and words_of(value) != [value]:
        raise ProgramError(f"check {i}: 'word' must be a single word, not {value!r} (use 'text' for a phrase)")
    return value


def _check(i: int, item) -> Check:
    """Check ``i`` of a program validated into a ``Check`` (every failure a ``ProgramError``)."""
    if not isinstance(item, dict):
        raise ProgramError(f'check {i} must be an object like {{"op": "word_count", "n": 7}}, not {item!r}')
    op = item.get("op")
    if not isinstance(op, str) or op not in OPS:  # a list or dict op would be unhashable
        raise ProgramError(f"check {i}: unknown op {op!r}; choose one of {', '.join(OPS)}")
    extra = sorted(set(item) - {"op", *OPS[op]})
    if extra:
        raise ProgramError(f"check {i} ({op}): unknown fields {extra}; it takes {list(OPS[op])}")
    if op in ("contains", "not_contains"):
        given = [f for f in _TARGETS if f in item]
        if len(given) != 1:
            raise ProgramError(f"check {i} ({op}): give exactly one of 'letter', 'word', 'text', not {given}")
        return Check(op, **{given[0]: _field(i, item, given[0], str)})
    kinds = {"n": int, "k": int, "word": str}
    return Check(op, **{f: _field(i, item, f, kinds[f]) for f in OPS[op]})


def parse_program(source: str | list) -> Program:
    """A ``Program`` from its JSON text (or the already-decoded list), validated field by field.

    A Markdown code fence around the JSON (```` ```json ... ``` ````, as chat models write it) is removed
    first. Raises ``ProgramError`` with a message naming the problem for malformed JSON, a top level that is not
    a non-empty list of at most ``MAX_CHECKS`` checks, an unknown op, a missing, unknown or wrongly typed
    field; nothing else escapes, whatever the input (the planner's output is untrusted text).
    """
    if isinstance(source, str):
        text = source.strip()
        fenced = re.fullmatch(r"```[A-Za-z]*\s*\n?(.*?)```", text, re.S)
        text = fenced.group(1) if fenced else text
        try:
            source = json.loads(text)
        except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
            raise ProgramError(f"the program is not valid JSON ({err}); write a list like {EXAMPLE}") from None
    if not isinstance(source, list) or not source:
        raise ProgramError(
            f"a program is a non-empty JSON list of checks, like {EXAMPLE}; got {type(source).__name__}"
        )
    if len(source) > MAX_CHECKS:
        raise ProgramError(f"a program has at most {MAX_CHECKS} checks, not {len(source)}")
    return Program(tuple(_check(i, item) for i, item in enumerate(source)))


EXAMPLE = '[{"op": "word_count", "n": 7}, {"op": "not_contains", "letter": "e"}]'


def _canonical(check: Check) -> Check:
    """``check`` with a one-character ``text`` read as the ``letter`` it is (the two test the same substring)."""
    if check.text is not None and len(check.text) == 1:
        return Check(check.op, letter=check.text)
    return check


def same_program(a: Program, b: Program) -> bool:
    """Whether two programs hold the same checks, up to order, repeats and a one-character ``text`` written for
    a ``letter``: then they accept exactly the same texts. This is how a planner's program is judged against the
    hand-written one (DisCIPL, Grand et al., arXiv 2504.07081, has a planner write the program). It is
    sufficient, not necessary: two different lists can still mean the same (``word_at`` k=1 and a count of one
    word...), so a rare program judged wrong here may be right; never the reverse."""
    return {_canonical(c) for c in a.checks} == {_canonical(c) for c in b.checks}
