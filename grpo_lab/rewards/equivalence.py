"""Equivalence: does a predicted answer mean the same number (or expression) as the gold answer?

- A fast numeric path (exact rational arithmetic on ``1,000`` / ``$5`` / ``50%`` / ``3/4`` /
  ``\\frac{3}{4}`` / ``5 apples``) settles nearly every GSM8K case in microseconds; only what it cannot read
  goes to math-verify (Hugging Face's ``math_verify.parse`` / ``verify``: symbolic LaTeX such as
  ``\\sqrt{4}``, ``\\pi``, intervals).
- math-verify bounds its own time with ``signal.alarm``, which raises outside the main thread. We switch
  that off and bound the time with ``grpo_lab.deadline.Deadline`` (an interval timer in the main thread that
  honours a timer already running, such as the exercise grader's; a call-tracing clock elsewhere).
- Hedged answers ("42 or 43", "between 3 and 5", "5 ± 1") never match a single gold answer: a verifier
  that accepts them teaches a policy to list candidates.
"""

from __future__ import annotations

import functools
import logging
import re
from fractions import Fraction

from grpo_lab.deadline import Deadline
from grpo_lab.rewards.extraction import _NUMBER_RE, extract_answer

MAX_ANSWER_CHARS = 2000  # longer "answers" are not answers; refusing them also bounds the work
_SCALE_WORDS = {"thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_HEDGE_WORDS = re.compile(
    r"\b(or|either|maybe|perhaps|possibly|between|and|to|probably|roughly)\b|±|\\pm|\+/-|\+-", re.I
)
_LATEX_NOISE = [r"\!", r"\,", r"\;", r"\:", r"\ ", "~", r"\left", r"\right", r"\displaystyle"]
_SIMPLE_RE = re.compile(
    r"^(?P<num>(?:[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[-+]?\.\d+)(?:[eE][-+]?\d{1,3})?)"
    r"(?:\s*/\s*(?P<den>\d+))?"
    r"\s*(?P<pct>%|percent\b)?"
    r"\s*(?P<scale>thousand|million|billion|trillion)?"
    r"(?P<unit>\s*[A-Za-z][A-Za-z\s'\-/.²³]*)?$",
    re.I,
)
_FRAC_RE = re.compile(r"^(?P<sign>[-+]?)\\[dt]?frac\s*\{\s*(?P<a>-?\d+)\s*\}\s*\{\s*(?P<b>\d+)\s*\}$")


def _clean(s: str) -> str:
    """Strip the presentation around an answer: $, \\$, \\text{}, markdown bold, delimiters, final period."""
    s = s.strip().replace("−", "-").replace("\u2009", "").replace("\u00a0", " ")
    for noise in _LATEX_NOISE:
        s = s.replace(noise, "")
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox|mathbf)\s*\{([^{}]*)\}", r" \1 ", s)
    s = s.replace("\\%", "%").replace("\\$", "").replace("$", "").replace("**", "")
    s = s.replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^(?:[A-Za-z]\w{0,15}|[Tt]otal|[Aa]nswer)\s*=\s*", "", s)  # "x = 5" -> "5"
    s = re.sub(r"^(?:USD|US\$|Rs\.?|€|£|¥)\s*", "", s)
    return s.strip().rstrip(".,;:!").strip()


def _simple_number(s: str) -> Fraction | None:
    """The exact value of a plain numeric answer (``1,000``, ``$5``, ``50%``, ``3/4``, ``\\frac{3}{4}``,
    ``12 apples``, ``1.5 million``), or None if ``s`` is anything else. Percent: ``50%`` is 50 (GSM8K's
    gold for "what percent" questions is the bare number)."""
    s = _clean(s)
    m = _FRAC_RE.match(s)
    if m:
        b = int(m.group("b"))
        if b == 0:
            return None
        v = Fraction(int(m.group("a")), b)
        return -v if m.group("sign") == "-" else v
    m = _SIMPLE_RE.match(s)
    if not m:
        return None
    unit = (m.group("unit") or "").strip()
    if unit and (_HEDGE_WORDS.search(unit) or re.search(r"\d", unit)):
        return None
    num = m.group("num").replace(",", "")
    if num.endswith("."):
        num = num[:-1]
    try:
        v = Fraction(num)
    except (ValueError, ZeroDivisionError):
        return None
    if m.group("den"):
        den = int(m.group("den"))
        if den == 0:
            return None
        v /= den
    if m.group("scale"):
        v *= _SCALE_WORDS[m.group("scale").lower()]
    return v


def _is_hedged(s: str) -> bool:
    """Two or more numbers joined by a hedge ("42 or 43", "between 3 and 5", "5 ± 1")."""
    c = _clean(s)
    nums = _NUMBER_RE.findall(c)
    if len(nums) < 2 and not re.search(r"±|\\pm|\+/-", c):
        return False
    return bool(_HEDGE_WORDS.search(c))


class _VerifyTimeout(Exception):
    pass


class _QuietMathVerify(logging.Filter):
    """math-verify warns once that its own timeout is off (we bound time ourselves) and on every timeout."""

    def filter(self, record):
        msg = record.getMessage()
        return not ("Timeout is disabled" in msg or "Timeout during" in msg or "timed out" in msg.lower())


@functools.lru_cache(maxsize=1)
def _math_verify():
    import math_verify
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    for name in ("math_verify", "math_verify.parser", "math_verify.grader", "math_verify.utils"):
        logging.getLogger(name).addFilter(_QuietMathVerify())
    config = [LatexExtractionConfig(), ExprExtractionConfig()]

    def parse(s: str):
        # "$...$" first: without delimiters the LaTeX extractor ignores "\frac{3}{4}"; plain text second.
        out = math_verify.parse(f"${s}$", extraction_config=config, parsing_timeout=None)
        return out or math_verify.parse(s, extraction_config=config, parsing_timeout=None)

    def verify(gold, pred) -> bool:
        return bool(math_verify.verify(gold, pred, timeout_seconds=None))

    return parse, verify


def _symbolic_match(pred: str, gold: str) -> bool:
    parse, verify = _math_verify()
    g, p = parse(gold), parse(pred)
    if not g or not p:
        return False
    return verify(g, p)


_POWER_RE = re.compile(r"(?:\^|\*\*)\s*\{?\s*\(?\s*(\d+)")


def _explosive(s: str) -> bool:
    """Powers and factorials whose value sympy would compute in C, where no timer can stop it:
    nested exponents, exponents over 3 digits, factorials of numbers over 3 digits."""
    if s.count("^") + s.count("**") > 4 or re.search(r"(?:\^|\*\*)\s*\{[^}]*(?:\^|\*\*)", s):
        return True
    if any(len(d) > 3 for d in _POWER_RE.findall(s)) or re.search(r"\d{4,}\s*!", s):
        return True
    return bool(re.search(r"(?:\^|\*\*)\(?\d+(?:\^|\*\*)", s.replace(" ", "")))  # 2^2^2^100


@functools.lru_cache(maxsize=65536)
def _match_cached(pred: str, gold: str, timeout_s: float) -> bool:
    a, b = _simple_number(pred), _simple_number(gold)
    if a is not None and b is not None:
        return a == b
    norm = lambda s: re.sub(r"\s+", "", _clean(s)).lower()  # noqa: E731
    if norm(pred) and norm(pred) == norm(gold):
        return True
    if len(pred) > 300 or len(gold) > 300 or _explosive(pred) or _explosive(gold):
        return False  # beyond any GSM8K/MATH answer; keeps big-number C code (uninterruptible) out of sympy
    _math_verify()  # import sympy and math-verify (seconds on a busy machine) outside the time budget
    # Call tracing off the main thread: line tracing made math-verify ~5x slower, and a 2 s budget then
    # rejected true LaTeX equivalences on a busy machine.
    budget = Deadline(timeout_s, error=_VerifyTimeout, trace="call")
    try:
        with budget:
            return _symbolic_match(pred, gold)
    except _VerifyTimeout:
        # Not cached (lru_cache does not store exceptions): on a busy machine a retry may well finish.
        raise
    except Exception:
        if budget.outer_fired:
            raise
        return False


def answers_match(pred: str | None, gold: str, *, timeout_s: float = 2.0) -> bool:
    """Mathematical equivalence of a predicted and a gold answer.

    - None (no answer) never matches; neither does a non-string, an empty string, or a hedged answer
      ("42 or 43", "between 3 and 5", "5 ± 1") unless the gold answer is hedged the same way.
    - Fast path, exact rational arithmetic: thousands separators (``1,000``), currency (``$5``, ``\\$5``),
      percent (``50%`` = ``50``), unit words (``12 apples``), scale words (``1.5 million``), trailing
      periods, ``42.0`` = ``42``, negatives, ``3/4`` = ``0.75`` and ``\\frac{3}{4}`` / ``\\dfrac``.
    - Otherwise: whitespace- and case-insensitive string equality, then math-verify (symbolic LaTeX and
      expressions; its ``verify(gold, pred)``), bounded by ``timeout_s`` seconds in any thread.
    - Never raises on any string. (The one exception: a time limit set by the *caller*, such as the
      exercise grader's, that expires during the call is propagated, not swallowed.)
    """
    if not isinstance(pred, str) or not isinstance(gold, (str, int, float, Fraction)):
        return False
    gold = str(gold)
    if not pred.strip() or not gold.strip() or len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return False
    try:
        if _is_hedged(pred) and not _is_hedged(gold):
            return False
        return _match_cached(pred, gold, float(timeout_s))
    except (_VerifyTimeout, RecursionError, MemoryError, ValueError, TypeError, ArithmeticError, AttributeError):
        return False


def is_correct(completion: str, gold: str) -> bool:
    """``answers_match(extract_answer(completion), gold)``: the verifiable reward of one completion."""
    return answers_match(extract_answer(completion), gold)
