"""The code task's problem families: templates of small Python functions with their hidden tests.

A ``Family`` has pools of function and argument names, constants drawn from an rng, the specification in words,
and two implementations as source: the reference, and a deliberately wrong one (a plausible mistake: off by one,
``>=`` for ``>``...). The generator (``grpo_lab.tasks.code.make_problem``) runs both in its own process (they
are the course's own templates, never model output) to compute each assert's expected value and to make sure
at least one assert catches the mistake. ``TRAIN_FAMILIES`` (8 per level) are for training; ``UNSEEN_FAMILIES``
(levels 2-3) never are.
``grpo_lab.tasks.code`` (``CodeTask``) is the task built on them; its docstring has the rules.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Family", "TRAIN_FAMILIES", "UNSEEN_FAMILIES"]


class Family(NamedTuple):
    """A template of problems. ``funcs``: function-name templates; ``args``: argument-name choices (``{a}``,
    ``{b}`` in the other templates); ``spec``: what the function returns, in words; ``ref`` / ``wrong``: the
    bodies of the reference and of the plausible wrong implementation; ``params(rng)``: the constants;
    ``inputs(rng, params)``: argument tuples for the asserts, edge cases first."""

    name: str
    level: int
    funcs: tuple[str, ...]
    args: tuple[tuple[str, ...], ...]
    spec: str
    ref: str
    wrong: str
    params: Callable[[random.Random], dict]
    inputs: Callable[[random.Random, dict], list[tuple]]
    unseen: bool = False


_WORDS = (
    "apple banana cherry moon sun river tree open idea under echo sky rain oak ant bread stone cat dog "
    "orange umbrella table paper star sea road tiger eagle iron lamp map nest ice art salt"
).split()


def _ints(r: random.Random, n: int, lo: int, hi: int) -> list[int]:
    return [r.randint(lo, hi) for _ in range(n)]


def _word(r: random.Random) -> str:
    return r.choice(_WORDS) if r.random() < 0.6 else "".join(r.choice("abenorstai") for _ in range(r.randint(2, 8)))


def _words(r: random.Random, lo: int = 2, hi: int = 6) -> list[str]:
    return [_word(r) for _ in range(r.randint(lo, hi))]


def _sentence(r: random.Random) -> str:
    return " ".join(_words(r))


def _initials(r: random.Random) -> dict:
    """The letters words may start with: the vowels, or three consonants."""
    if r.random() < 0.3:
        return {"tag": "vowel", "what": "a vowel (a, e, i, o or u)", "letters": "aeiou"}
    c = sorted(r.sample("bcdfghlmnprst", 3))
    return {"tag": "".join(c), "what": f"one of the letters {c[0]}, {c[1]} or {c[2]}", "letters": "".join(c)}


def _lists(r: random.Random, n: int, lo: int, hi: int, length: tuple[int, int] = (3, 8)) -> list[tuple]:
    return [(_ints(r, r.randint(*length), lo, hi),) for _ in range(n)]


NUM1 = (("x",), ("n",), ("value",))
PAIRS = (("x", "y"), ("a", "b"), ("first", "second"), ("left", "right"))
STRS = (("s",), ("text",), ("word",))
SENTS = (("sentence",), ("text",), ("s",))
NUMS = (("nums",), ("values",), ("numbers",))
WLIST = (("words",), ("strings",), ("items",))
_EXTREMES = ({"which": "larger", "op": ">=", "bad": "<="}, {"which": "smaller", "op": "<=", "bad": ">="})
_LETTERS = "aeiorstn"

TRAIN_FAMILIES: tuple[Family, ...] = (
    # Level 1: one line of arithmetic or comparison on numbers.
    Family(
        "scale",
        1,
        ("times_{k}", "multiply_by_{k}", "scale"),
        NUM1,
        "returns {a} multiplied by {k}",
        "return {a} * {k}",
        "return {a} + {k}",
        lambda r: {"k": r.randint(2, 12)},
        lambda r, p: [(0,)] + [(v,) for v in _ints(r, 4, -40, 40)],
    ),
    Family(
        "extreme",
        1,
        ("{which}", "{which}_of", "pick_{which}"),
        PAIRS,
        "returns the {which} of {a} and {b}",
        "if {a} {op} {b}:\n    return {a}\nreturn {b}",
        "if {a} {bad} {b}:\n    return {a}\nreturn {b}",
        lambda r: dict(r.choice(_EXTREMES)),
        lambda r, p: [(3, 3)] + [tuple(_ints(r, 2, -20, 20)) for _ in range(4)],
    ),
    Family(
        "divisible",
        1,
        ("is_divisible_by_{k}", "divisible_by_{k}", "is_multiple_of_{k}"),
        NUM1,
        "returns True if {a} is divisible by {k} and False otherwise",
        "return {a} % {k} == 0",
        "return {k} % {a} == 0",
        lambda r: {"k": r.randint(2, 12)},
        lambda r, p: [(0,), (p["k"] * r.randint(2, 9),)] + [(v,) for v in _ints(r, 3, 1, 100)],
    ),
    Family(
        "between",
        1,
        ("in_range", "is_between", "within_bounds"),
        NUM1,
        "returns True if {a} is between {lo} and {hi}, both included, and False otherwise",
        "return {lo} <= {a} <= {hi}",
        "return {lo} < {a} < {hi}",
        lambda r: (lambda lo: {"lo": lo, "hi": lo + r.randint(3, 30)})(r.randint(0, 20)),
        lambda r, p: [(p["lo"],), (p["hi"],)] + [(v,) for v in _ints(r, 3, p["lo"] - 10, p["hi"] + 10)],
    ),
    Family(
        "abs_diff",
        1,
        ("distance", "abs_diff", "gap"),
        PAIRS,
        "returns the absolute difference between {a} and {b}",
        "return abs({a} - {b})",
        "return {a} - {b}",
        lambda r: {},
        lambda r, p: [(0, 0)] + [tuple(_ints(r, 2, -30, 30)) for _ in range(4)],
    ),
    Family(
        "linear",
        1,
        ("linear", "affine", "transform"),
        NUM1,
        "returns {k} times {a} plus {m}",
        "return {k} * {a} + {m}",
        "return {k} * ({a} + {m})",
        lambda r: {"k": r.randint(2, 9), "m": r.randint(1, 9)},
        lambda r, p: [(0,)] + [(v,) for v in _ints(r, 4, -20, 20)],
    ),
    Family(
        "at_least",
        1,
        ("at_least_{k}", "is_at_least_{k}", "reaches_{k}"),
        NUM1,
        "returns True if {a} is at least {k} and False otherwise",
        "return {a} >= {k}",
        "return {a} > {k}",
        lambda r: {"k": r.randint(0, 30)},
        lambda r, p: [(p["k"],), (0,)] + [(v,) for v in _ints(r, 3, -10, 40)],
    ),
    Family(
        "round_down",
        1,
        ("round_down_to_{k}", "floor_multiple_of_{k}", "down_to_multiple"),
        NUM1,
        "returns the largest multiple of {k} that is not greater than the non-negative integer {a}",
        "return {a} - {a} % {k}",
        "return {a} // {k}",
        lambda r: {"k": r.randint(2, 12)},
        lambda r, p: [(0,), (3 * p["k"],)] + [(v,) for v in _ints(r, 3, 1, 200)],
    ),
    # Level 2: string and list manipulation.
    Family(
        "count_letter",
        2,
        ("count_{c}", "count_letter", "occurrences_of_{c}"),
        STRS,
        "returns how many times the letter '{c}' occurs in the string {a}",
        "return {a}.count('{c}')",
        "return {a}[1:].count('{c}')",
        lambda r: {"c": r.choice(_LETTERS)},
        lambda r, p: [("",), (p["c"] + _word(r),)] + [(_word(r) + p["c"] + _word(r),) for _ in range(3)],
    ),
    Family(
        "reverse_words",
        2,
        ("reverse_words", "flip_words", "words_backwards"),
        SENTS,
        "returns the words of the string {a} (separated by single spaces) in reverse order, joined by single spaces",
        "return ' '.join({a}.split(' ')[::-1])",
        "return {a}[::-1]",
        lambda r: {},
        lambda r, p: [("",), (_word(r),)] + [(_sentence(r),) for _ in range(3)],
    ),
    Family(
        "sum_above",
        2,
        ("sum_above_{k}", "sum_greater_than_{k}", "total_above_{k}"),
        NUMS,
        "returns the sum of the elements of the list {a} that are greater than {k}",
        "return sum(v for v in {a} if v > {k})",
        "return sum(v for v in {a} if v >= {k})",
        lambda r: {"k": r.randint(1, 20)},
        lambda r, p: [([],), ([p["k"], p["k"] + 1, p["k"] - 1],)] + _lists(r, 3, 0, 30),
    ),
    Family(
        "longer_than",
        2,
        ("longer_than_{k}", "keep_long", "long_words"),
        WLIST,
        "returns the list of the strings in {a} that are longer than {k} characters, in their original order",
        "return [w for w in {a} if len(w) > {k}]",
        "return [w for w in {a} if len(w) >= {k}]",
        lambda r: {"k": r.randint(2, 7)},
        lambda r, p: [([],)] + [(_words(r, 3, 6),) for _ in range(4)],
    ),
    Family(
        "replace_char",
        2,
        ("replace_{x}", "swap_{x}_for_{y}", "substitute"),
        STRS,
        "returns the string {a} with every '{x}' replaced by '{y}'",
        "return {a}.replace('{x}', '{y}')",
        "return {a}.replace('{x}', '{y}', 1)",
        lambda r: dict(zip("xy", r.sample(_LETTERS, 2))),
        lambda r, p: [("",), (p["x"] + _word(r) + p["x"],)] + [(_sentence(r),) for _ in range(3)],
    ),
    Family(
        "scale_list",
        2,
        ("times_{k}_each", "scale_all", "multiply_all_by_{k}"),
        NUMS,
        "returns a new list with every element of the list {a} multiplied by {k}",
        "return [v * {k} for v in {a}]",
        "return [{a}[i] * {k} for i in range(1, len({a}))]",
        lambda r: {"k": r.randint(2, 9)},
        lambda r, p: [([],)] + _lists(r, 4, -9, 20),
    ),
    Family(
        "initials",
        2,
        ("initials", "acronym", "first_letters"),
        SENTS,
        "returns the first letters of the words of the string {a}, joined into one string{case}",
        "return ''.join(w[0] for w in {a}.split()){up}",
        "return ''.join(w[-1] for w in {a}.split()){up}",
        lambda r: r.choice([{"case": "", "up": ""}, {"case": " in upper case", "up": ".upper()"}]),
        lambda r, p: [("",)] + [(_sentence(r),) for _ in range(4)],
    ),
    Family(
        "starting_with",
        2,
        ("starting_with_{c}", "select_{c}_words", "filter_by_initial"),
        WLIST,
        "returns the list of the strings in {a} that start with the letter '{c}', in their original order",
        "return [w for w in {a} if w.startswith('{c}')]",
        "return [w for w in {a} if '{c}' in w]",
        lambda r: {"c": r.choice(_LETTERS)},
        lambda r, p: [([],)] + [(_words(r, 2, 4) + [p["c"] + _word(r), _word(r) + p["c"]],) for _ in range(4)],
    ),
    # Level 3: loops, conditionals and small algorithms.
    Family(
        "digit_sum",
        3,
        ("digit_sum", "sum_of_digits", "digit_sum_base_{k}"),
        NUM1,
        "returns the sum of the digits of the non-negative integer {a} written in base {k}",
        "total = 0\nwhile {a} > 0:\n    total += {a} % {k}\n    {a} //= {k}\nreturn total",
        "total = 0\nwhile {a} >= {k}:\n    total += {a} % {k}\n    {a} //= {k}\nreturn total",
        lambda r: {"k": r.choice([10, 10, 2, 3, 4, 5, 6, 7, 8, 9])},
        lambda r, p: [(0,), (r.randint(1, p["k"] - 1),)] + [(v,) for v in _ints(r, 3, 10, 99999)],
    ),
    Family(
        "is_prime",
        3,
        ("is_prime", "prime", "check_prime"),
        NUM1,
        "returns True if the non-negative integer {a} is a prime number and False otherwise",
        "if {a} < 2:\n    return False\nd = 2\nwhile d * d <= {a}:\n    if {a} % d == 0:\n        return False\n"
        "    d += 1\nreturn True",
        "if {a} < 2:\n    return False\nd = 2\nwhile d * d < {a}:\n    if {a} % d == 0:\n        return False\n"
        "    d += 1\nreturn True",
        lambda r: {},
        lambda r, p: [(0,), (1,), (r.choice([4, 9, 25, 49]),)] + [(v,) for v in _ints(r, 3, 2, 120)],
    ),
    Family(
        "sequence_term",
        3,
        ("sequence_term", "fib_like", "nth_term"),
        (("n",), ("k",), ("index",)),
        "returns term number {a} (counting from 0) of the sequence that starts {p}, {q} and in which every "
        "later term is the sum of the two terms before it",
        "x, y = {p}, {q}\nfor _ in range({a}):\n    x, y = y, x + y\nreturn x",
        "x, y = {p}, {q}\nfor _ in range({a} - 1):\n    x, y = y, x + y\nreturn x",
        lambda r: {"p": r.randint(0, 5), "q": r.randint(1, 6)},
        lambda r, p: [(0,), (1,)] + [(v,) for v in _ints(r, 3, 2, 20)],
    ),
    Family(
        "longest_run",
        3,
        ("longest_run", "max_streak", "longest_streak"),
        NUMS,
        "returns the length of the longest run of equal adjacent elements in the list {a} (0 for an empty list)",
        "best = run = 0\nfor i, v in enumerate({a}):\n    run = run + 1 if i > 0 and v == {a}[i - 1] else 1\n"
        "    best = max(best, run)\nreturn best",
        "best = run = 0\nfor i, v in enumerate({a}):\n    if i > 0 and v == {a}[i - 1]:\n        run += 1\n"
        "    else:\n        best = max(best, run)\n        run = 1\nreturn best",
        lambda r: {},
        lambda r, p: [([],), ([r.randint(0, 9)],)] + _lists(r, 3, 0, 2, (5, 10)),
    ),
    Family(
        "second_largest",
        3,
        ("second_{which}", "runner_up", "second_{short}"),
        NUMS,
        "returns the second {which} distinct value in the list {a}, or None if it has fewer than two distinct values",
        "values = sorted(set({a}), reverse={rev})\nreturn values[1] if len(values) >= 2 else None",
        "values = sorted({a}, reverse={rev})\nreturn values[1] if len(values) >= 2 else None",
        lambda r: r.choice(
            [{"which": "largest", "short": "max", "rev": True}, {"which": "smallest", "short": "min", "rev": False}]
        ),
        lambda r, p: [([],), ([4, 4],), ([1, 7, 7, 3, 1],)] + _lists(r, 2, -9, 9),
    ),
    Family(
        "vowel_words",
        3,
        ("count_{tag}_words", "{tag}_starts", "count_starting_words"),
        SENTS,
        "returns how many words of the string {a} start with {what}",
        "return sum(1 for w in {a}.split() if w[0] in '{letters}')",
        "return sum(1 for ch in {a} if ch in '{letters}')",
        lambda r: _initials(r),
        lambda r, p: [("",)] + [(_sentence(r),) for _ in range(4)],
    ),
    Family(
        "running_max",
        3,
        ("running_{fn}", "prefix_{fn}ima", "best_so_far"),
        NUMS,
        "returns the list of running {fn}ima of the list {a}: element i is the {which} of the first i + 1 elements",
        "result = []\nfor v in {a}:\n    result.append(v if not result or v {op} result[-1] else result[-1])\n"
        "return result",
        "result = []\nbest = 0\nfor v in {a}:\n    best = {fn}(best, v)\n    result.append(best)\nreturn result",
        lambda r: r.choice(
            [{"fn": "max", "which": "largest", "op": ">"}, {"fn": "min", "which": "smallest", "op": "<"}]
        ),
        lambda r, p: [([],), ([-5, -3, -8],), ([5, 3, 8],)] + _lists(r, 2, -20, 20),
    ),
    Family(
        "gcd",
        3,
        ("gcd", "greatest_common_divisor", "common_divisor"),
        (("a", "b"), ("x", "y"), ("m", "n")),
        "returns the greatest common divisor of the positive integers {a} and {b}",
        "while {b}:\n    {a}, {b} = {b}, {a} % {b}\nreturn {a}",
        "for d in range(min({a}, {b}) - 1, 0, -1):\n    if {a} % d == 0 and {b} % d == 0:\n        return d\nreturn 1",
        lambda r: {},
        lambda r, p: [(6, 6), (4, 12)] + [tuple(_ints(r, 2, 1, 60)) for _ in range(3)],
    ),
)

UNSEEN_FAMILIES: tuple[Family, ...] = (
    Family(
        "palindrome",
        2,
        ("is_palindrome", "palindrome", "reads_same"),
        STRS,
        "returns True if the string {a} reads the same forwards and backwards and False otherwise",
        "return {a} == {a}[::-1]",
        "return {a}[0] == {a}[-1]",
        lambda r: {},
        lambda r, p: [("",), ("abca",), ("level",)] + [(w + w[::-1][r.randint(0, 1) :],) for w in _words(r, 2, 2)],
        True,
    ),
    Family(
        "dedupe",
        2,
        ("dedupe", "unique_in_order", "remove_repeats"),
        NUMS,
        "returns the list {a} without repeated values, keeping the first occurrence of each value, in order",
        "seen = []\nfor v in {a}:\n    if v not in seen:\n        seen.append(v)\nreturn seen",
        "return sorted(set({a}))",
        lambda r: {},
        lambda r, p: [([],), ([3, 1, 3, 2, 1],)] + _lists(r, 3, 0, 6),
        True,
    ),
    Family(
        "first_above",
        2,
        ("first_above_{k}", "index_above_{k}", "find_first_over"),
        NUMS,
        "returns the index of the first element of the list {a} that is greater than {k}, or -1 if there is none",
        "for i, v in enumerate({a}):\n    if v > {k}:\n        return i\nreturn -1",
        "for i, v in enumerate({a}):\n    if v >= {k}:\n        return i\nreturn -1",
        lambda r: {"k": r.randint(0, 20)},
        lambda r, p: [([],), ([p["k"], p["k"] + 1],)] + _lists(r, 3, 0, 30),
        True,
    ),
    Family(
        "run_length",
        3,
        ("run_length", "rle", "encode_runs"),
        STRS,
        "returns the run-length encoding of the string {a}: a list of [character, count] pairs, one per run of "
        "equal adjacent characters",
        "out = []\nfor ch in {a}:\n    if out and out[-1][0] == ch:\n        out[-1][1] += 1\n    else:\n"
        "        out.append([ch, 1])\nreturn out",
        "return [[ch, {a}.count(ch)] for ch in sorted(set({a}))]",
        lambda r: {},
        lambda r, p: (
            [("",), ("aabaa",)] + [("".join(r.choice("ab") * r.randint(1, 3) for _ in range(4)),) for _ in range(3)]
        ),
        True,
    ),
    Family(
        "sum_multiples",
        3,
        ("sum_multiples_of_{k}", "multiples_below", "total_of_multiples"),
        NUM1,
        "returns the sum of all positive multiples of {k} that are less than {a}",
        "total = 0\nfor v in range(1, {a}):\n    if v % {k} == 0:\n        total += v\nreturn total",
        "total = 0\nfor v in range(1, {a} + 1):\n    if v % {k} == 0:\n        total += v\nreturn total",
        lambda r: {"k": r.randint(2, 9)},
        lambda r, p: [(0,), (4 * p["k"],)] + [(v,) for v in _ints(r, 3, 1, 80)],
        True,
    ),
    Family(
        "balanced",
        3,
        ("balanced", "is_balanced", "parens_match"),
        STRS,
        "returns True if the parentheses in the string {a} are balanced (every ')' closes an earlier '(') "
        "and False otherwise",
        "depth = 0\nfor ch in {a}:\n    if ch == '(':\n        depth += 1\n    elif ch == ')':\n        depth -= 1\n"
        "        if depth < 0:\n            return False\nreturn depth == 0",
        "return {a}.count('(') == {a}.count(')')",
        lambda r: {},
        lambda r, p: (
            [("",), (")(",), ("(a)(b)",)] + [("".join(r.choice("(()x") for _ in range(6)),) for _ in range(2)]
        ),
        True,
    ),
)
