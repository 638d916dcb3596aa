"""Verifiable rewards: answer extraction and equivalence, TRL-compatible reward functions, code rewards.

RLVR (DeepSeekMath, arXiv 2402.03300; DAPO, arXiv 2503.14476) needs no reward model, only a checker, and
the checker *is* the reward model: a lenient one is reward-hacked, a strict one gives a small model nothing
to learn from. Design notes:

- ``extract_answer`` returns the raw final answer of a completion; ``answers_match`` decides equivalence.
  Keeping them apart lets a notebook show what was extracted and why it was (not) accepted.
- Equivalence has a fast numeric path (exact rational arithmetic on ``1,000`` / ``$5`` / ``50%`` / ``3/4``
  / ``\\frac{3}{4}`` / ``5 apples``) that settles nearly every GSM8K case in microseconds; only what it
  cannot read goes to math-verify (symbolic LaTeX: ``\\sqrt{4}``, ``\\pi``, intervals).
- math-verify bounds its own time with ``signal.alarm``, which raises outside the main thread. We switch
  that off and bound the time ourselves: an interval timer in the main thread (which hands over to, and
  restores, any timer already running, such as the exercise grader's), a trace-hook clock elsewhere.
- Hedged answers ("42 or 43", "between 3 and 5", "5 ± 1") never match a single gold answer: a verifier
  that accepts them teaches a policy to list candidates.
- Reward functions follow TRL's contract ``f(prompts, completions, **kwargs) -> list[float]`` (dataset
  columns arrive as keyword lists), accept plain strings and chat messages, never raise on a malformed
  completion (it scores 0) and keep the reason of every score in ``last_reasons``.
- Code rewards run untrusted code in a sandboxed child process: see ``grpo_lab.sandbox``.
"""

from __future__ import annotations

import collections
import functools
import logging
import re
import signal
import sys
import threading
import time
from fractions import Fraction
from typing import Callable, Sequence

from grpo_lab.sandbox import CodeResult, extract_code, run_tests  # noqa: F401  (public here, COURSE.md 4)

__all__ = [
    "extract_answer", "answers_match", "is_correct", "strict_is_correct", "completion_text", "RewardFunction",
    "correctness_reward", "make_correctness_reward", "format_reward_strict", "format_reward_soft",
    "make_overlong_penalty", "overlong_penalty_value", "combine_rewards", "code_reward", "make_code_reward",
    "run_tests", "CodeResult", "extract_code",
]

# --------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------

# A number as people write it: optional minus (not when it is a binary minus, "10-3"), thousands
# separators, decimals, and an optional "/denominator".
_NUMBER_RE = re.compile(r"(?:(?<![\w)\]])[-−])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|(?<![\w.])\.\d+")
_HASHES_RE = re.compile(r"####[ \t]*([^\n]*)")
_PHRASE_RE = re.compile(
    r"(?:\b[Tt]he\s+(?:final\s+)?answer\s+is\b\s*:?|\b(?:[Ff]inal\s+)?[Aa]nswer\s*\**\s*:|(?:(?<=\s)|^)A:)", re.M
)
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")
_TEX_TOKEN_RE = re.compile(r"[^\s$]+")
_VALUE_START_RE = re.compile(r"[\s*]*")
_PHRASE_WINDOW = 4096
_PHRASE_TRIES = 100


def _boxed_contents(text: str) -> list[str]:
    """Contents of every well-formed ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces balanced), in order.

    Linear time: every brace is matched once, by a stack, before the boxes are read. Scanning forward
    from each ``\\boxed{`` instead costs O(n^2) on a completion of unterminated boxes (20,000 of them took
    minutes), and a reward that hangs stops training.
    """
    closing: dict[int, int] = {}
    stack: list[int] = []
    for m in re.finditer(r"[{}]", text):
        if m.group(0) == "{":
            stack.append(m.start())
        elif stack:
            closing[stack.pop()] = m.start()
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*", text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            if i in closing:
                out.append(text[i + 1 : closing[i]].strip())
        elif i < len(text) and m.group(0).endswith(" "):
            # "\boxed 5": TeX's one-token argument
            tok = _TEX_TOKEN_RE.match(text, i)  # from i, not on a copy of the rest: no O(n^2) copying
            if tok:
                out.append(tok.group(0))
    return [c for c in out if c]


def _phrase_answer(text: str) -> str | None:
    """The value after the last answer phrase that has one ("the answer is x", "Answer: x", "A: x").

    The value starts at the first character after the phrase that is not whitespace or ``*`` ("Answer:\\n42":
    it may sit on a later line) and ends at its line's end or sentence's end. At most ``_PHRASE_WINDOW``
    characters are read per phrase, and only the last ``_PHRASE_TRIES`` phrases are tried, so the work is
    linear in the text: splitting the whole rest of the text for each phrase took 10 s on a completion of
    20,000 empty "The answer is ." lines. A longer value is no answer anyway (``answers_match`` refuses one
    over ``MAX_ANSWER_CHARS``), and a text whose last 100 answer phrases are all empty states none.
    """
    for m in reversed(collections.deque(_PHRASE_RE.finditer(text), maxlen=_PHRASE_TRIES)):
        start = _VALUE_START_RE.match(text, m.end()).end()
        stop = min(len(text), start + _PHRASE_WINDOW)
        eol = text.find("\n", start, stop)
        value = text[start : eol if eol >= 0 else stop].strip().strip("* ").strip()
        end = _SENTENCE_END_RE.search(value)
        if end:
            value = value[: end.start()]
        value = value.strip().rstrip(",;:")
        if value:
            return value
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a completion as a raw (un-normalized) string, or None if there is none.

    Looks, in this order (COURSE.md section 4), for: the last well-formed ``\\boxed{...}`` (nested braces
    balanced; an unterminated one, as in a truncated completion, is skipped), the last non-empty ``#### x``
    line (GSM8K's convention, Cobbe et al., arXiv 2110.14168), the last "the answer is x" / "Answer: x" /
    "A: x" (x up to the end of its sentence), and finally the last number in the text. Never raises: a
    non-string gives None.
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        boxed = _boxed_contents(text)
        if boxed:
            return boxed[-1]
        hashes = [h.strip() for h in _HASHES_RE.findall(text) if h.strip()]
        if hashes:
            return hashes[-1]
        phrase = _phrase_answer(text)
        if phrase:
            return phrase
        nums = _NUMBER_RE.findall(text)
        return nums[-1] if nums else None
    except RecursionError:  # pragma: no cover - regexes here do not recurse; belt and braces
        return None


# --------------------------------------------------------------------------------------------------
# Equivalence
# --------------------------------------------------------------------------------------------------

MAX_ANSWER_CHARS = 2000  # longer "answers" are not answers; refusing them also bounds the work
_SCALE_WORDS = {"thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_HEDGE_WORDS = re.compile(r"\b(or|either|maybe|perhaps|possibly|between|and|to|probably|roughly)\b|±|\\pm|\+/-|\+-", re.I)
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


class _TimeBudget:
    """Raise ``_VerifyTimeout`` in the current thread after ``seconds``.

    Main thread (POSIX): ``ITIMER_REAL``. A timer that was already running (the exercise grader's, a
    caller's ``alarm``) is honoured: if it is due first, its own handler runs at its own time; when we are
    done it is re-armed with whatever remained. Other threads: a trace hook reads the clock at every
    Python function call (sympy is pure Python and calls functions constantly, so it is interrupted; the
    input-size caps of ``answers_match`` keep C-level big-number work small). Tracing calls rather than
    lines keeps the overhead low: line tracing made math-verify ~5x slower, and a 2 s budget then
    rejected true LaTeX equivalences on a busy machine.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.outer_fired = False

    def __enter__(self):
        now = time.monotonic()
        self._end = now + self.seconds
        self._signal = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
        if self._signal:
            try:
                self._old_handler = signal.getsignal(signal.SIGALRM)
                old_delay, _ = signal.getitimer(signal.ITIMER_REAL)
                self._outer_end = now + old_delay if old_delay > 0 else None
                signal.signal(signal.SIGALRM, self._on_alarm)
                due = self.seconds if self._outer_end is None else min(self.seconds, old_delay)
                signal.setitimer(signal.ITIMER_REAL, max(due, 1e-4))
            except (ValueError, OSError):  # e.g. a sub-interpreter: fall back to tracing
                self._signal = False
        if not self._signal:
            self._old_trace = sys.gettrace()
            sys.settrace(self._trace)
        return self

    def _on_alarm(self, signum, frame):
        if self._outer_end is not None and time.monotonic() >= self._outer_end - 1e-3:
            self.outer_fired = True
            old = self._old_handler
            signal.signal(signal.SIGALRM, old)
            self._outer_end = None
            if callable(old):
                old(signum, frame)
            return
        if time.monotonic() >= self._end - 1e-3:
            raise _VerifyTimeout()
        signal.setitimer(signal.ITIMER_REAL, max(self._end - time.monotonic(), 1e-4))

    def _trace(self, frame, event, arg):
        if time.monotonic() > self._end:
            raise _VerifyTimeout()
        return None  # no line events inside the frame: the next call checks the clock again

    def __exit__(self, *exc):
        if self._signal:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old_handler)
            if self._outer_end is not None:
                signal.setitimer(signal.ITIMER_REAL, max(self._outer_end - time.monotonic(), 1e-4))
        else:
            sys.settrace(self._old_trace)
        return False


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
    budget = _TimeBudget(timeout_s)
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
    """Mathematical equivalence of a predicted and a gold answer (COURSE.md section 4).

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


def strict_is_correct(completion: str, gold: str) -> bool:
    """The strict grader of notebook 01: the completion must pass ``format_reward_strict`` (reasoning, then
    exactly one final ``#### x`` / ``\\boxed{x}`` on the last line) and ``x`` must equal ``gold``
    character for character. The opposite end of the scale from ``is_correct``."""
    text = completion_text(completion)
    if text is None or _strict_format(text, 0, {})[0] != 1.0:
        return False
    pred = extract_answer(text)
    return pred is not None and pred.strip() == str(gold).strip()


# --------------------------------------------------------------------------------------------------
# TRL-compatible reward functions
# --------------------------------------------------------------------------------------------------


def completion_text(completion) -> str | None:
    """The text of a completion: a plain string, or the assistant content of a chat-message list
    (``[{"role": "assistant", "content": ...}]``; content may also be a list of ``{"type": "text"}`` parts,
    several assistant messages are joined). None when it is neither (a malformed completion)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        parts = []
        for msg in completion:
            if not isinstance(msg, dict):
                return None
            if msg.get("role", "assistant") != "assistant":
                continue
            content = msg.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text", ""), str))
            elif content is not None:
                return None
        return "\n".join(parts) if parts else ("" if completion else None)
    return None


class RewardFunction:
    """A TRL reward function ``f(prompts, completions, **kwargs) -> list[float]`` with a readable trail.

    ``score(text, i, kwargs) -> (reward, reason)`` scores one completion (``i`` indexes the dataset
    columns in ``kwargs``). ``__call__`` extracts each completion's text, never lets one malformed
    completion raise (it scores 0, the reason says why), and keeps ``last_reasons`` (one string per
    completion) and ``last_rewards`` for inspection. ``__name__`` is what TRL logs (``rewards/<name>``).
    """

    def __init__(self, name: str, score: Callable, doc: str = ""):
        self.__name__ = name
        self.__qualname__ = name
        self.__doc__ = doc or getattr(score, "__doc__", "")
        self._score = score
        self.last_reasons: list[str] = []
        self.last_rewards: list[float] = []

    def __call__(self, prompts=None, completions=None, **kwargs) -> list[float]:
        completions = list(completions or [])
        rewards, reasons = [], []
        for i, c in enumerate(completions):
            text = completion_text(c)
            if text is None:
                rewards.append(0.0)
                reasons.append(f"malformed completion ({type(c).__name__}): scored 0")
                continue
            try:
                r, why = self._score(text, i, kwargs)
                r = float(r)
            except KeyError:
                raise  # a missing dataset column is a configuration bug, not a bad completion
            except Exception as e:
                r, why = 0.0, f"error while scoring ({type(e).__name__}: {e}): scored 0"
            rewards.append(r)
            reasons.append(why)
        self.last_rewards, self.last_reasons = rewards, reasons
        return rewards

    def __repr__(self):
        return f"<reward {self.__name__}>"


def _column(kwargs: dict, column: str, i: int):
    if column not in kwargs:
        raise KeyError(f"reward needs the dataset column {column!r}; got columns {sorted(k for k in kwargs if k not in ('completion_ids', 'trainer_state', 'log_extra', 'log_metric'))}")
    return kwargs[column][i]


def _gold_of(value) -> str:
    """A gold answer from a dataset cell: a GSM8K solution "... #### 72" gives "72"."""
    s = str(value)
    if "####" in s:
        return s.rsplit("####", 1)[1].strip()
    return s.strip()


def make_correctness_reward(column: str = "answer", correct: float = 1.0, wrong: float = 0.0) -> RewardFunction:
    """Correctness against a dataset column: ``correct`` if ``is_correct(completion, gold)`` else ``wrong``.

    The verifiable reward of RLVR (DeepSeekMath, arXiv 2402.03300; DAPO, arXiv 2503.14476). A cell holding a
    whole GSM8K solution ("... #### 72") is reduced to its gold answer.
    """

    def score(text, i, kwargs):
        gold = _gold_of(_column(kwargs, column, i))
        pred = extract_answer(text)
        if pred is None:
            return wrong, "no answer found"
        if answers_match(pred, gold):
            return correct, f"correct: {pred!r} = {gold!r}"
        return wrong, f"wrong: extracted {pred!r}, gold {gold!r}"

    return RewardFunction("correctness" if column == "answer" else f"correctness_{column}", score,
                          make_correctness_reward.__doc__)


correctness_reward = make_correctness_reward("answer")

_STRICT_BOXED_TAIL_RE = re.compile(r"\}\s*(?:(?:\$\$?|\\\]|\\\))\s*)?\.?$")
_STRICT_HASH_RE = re.compile(r"^####[ \t]*-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?[ \t]*$")


def _strict_format(text, i, kwargs):
    """1.0 iff reasoning is followed by exactly one final answer, on the last line, and nothing after it:
    a ``#### <number>`` line, or a line ending in ``\\boxed{...}`` (optionally closed by ``$``/``\\]``/``.``)."""
    lines = [ln.rstrip() for ln in text.strip().split("\n") if ln.strip()]
    if not lines:
        return 0.0, "empty completion"
    n_markers = text.count("####") + len(re.findall(r"\\boxed", text))
    last = lines[-1].strip()
    hash_ok = bool(_STRICT_HASH_RE.match(last))
    # "\boxed{x}" then optional "$", "$$", "\]" or "\)" and "." at the end of the line. Read from the final
    # "}" backwards rather than with one regex "\\boxed\{.+\}...$", which backtracks in O(n^2) on a line of
    # unterminated boxes (1 s for 20,000 of them).
    tail = _STRICT_BOXED_TAIL_RE.search(last)
    first = last.find("\\boxed{")
    boxed_ok = tail is not None and 0 <= first and first + len("\\boxed{") < tail.start() and bool(_boxed_contents(last))
    if not (hash_ok or boxed_ok):
        if "####" in text or "\\boxed" in text:
            return 0.0, "the final answer is not on the last line (or is not a number after ####)"
        return 0.0, "no '#### <number>' or '\\boxed{}' final line"
    if n_markers != 1:
        return 0.0, f"{n_markers} final-answer markers: exactly one is allowed"
    reasoning = lines[:-1] if hash_ok else lines[:-1] + [last.split("\\boxed")[0]]
    if not any(re.search(r"[A-Za-z0-9]", ln) for ln in reasoning):
        return 0.0, "no reasoning before the final answer"
    return 1.0, "strict format ok"


def _soft_format(text, i, kwargs):
    """1.0 if a ``#### x`` line or a ``\\boxed{x}`` appears anywhere, 0.5 for only an answer phrase
    ("the answer is x", "Answer: x"), else 0."""
    if any(h.strip() for h in _HASHES_RE.findall(text)) or _boxed_contents(text):
        return 1.0, "has a final-answer marker"
    if _phrase_answer(text):
        return 0.5, "only an answer phrase, no #### or \\boxed"
    return 0.0, "no final-answer marker"


format_reward_strict = RewardFunction("format_strict", _strict_format)
format_reward_soft = RewardFunction("format_soft", _soft_format)


def overlong_penalty_value(length: int, max_length: int, cache_length: int) -> float:
    """DAPO's soft overlong punishment (arXiv 2503.14476, eq. 13), with L_max = ``max_length`` and
    L_cache = ``cache_length``::

        R(y) = 0                                 if |y| <= L_max - L_cache
             = ((L_max - L_cache) - |y|) / L_cache   if L_max - L_cache < |y| <= L_max
             = -1                                if |y| > L_max

    A penalty ramping linearly from 0 to -1 over the last ``cache_length`` tokens, added to the
    correctness reward, so that truncation is discouraged without the noise of a hard cliff.
    """
    if cache_length <= 0 or cache_length > max_length:
        raise ValueError(f"need 0 < cache_length <= max_length, got cache_length={cache_length}, max_length={max_length}")
    expected = max_length - cache_length
    if length <= expected:
        return 0.0
    if length <= max_length:
        return (expected - length) / cache_length
    return -1.0


def make_overlong_penalty(max_length: int, cache_length: int, tokenizer=None) -> RewardFunction:
    """A TRL reward applying ``overlong_penalty_value`` to each completion's length in tokens.

    The length is, in order of preference: ``len(completion_ids[i])`` (TRL passes ``completion_ids``),
    the length of ``tokenizer(text)["input_ids"]``, else the number of characters (then give
    ``max_length``/``cache_length`` in characters). TRL truncates at ``max_completion_length``, so set
    ``max_length`` at or below it (DAPO used L_max = 16,384 with a 4,096-token cache, generating up to 20,480).
    """
    overlong_penalty_value(0, max_length, cache_length)  # validate now, not on the first batch

    def score(text, i, kwargs):
        ids = kwargs.get("completion_ids")
        if ids is not None and i < len(ids):
            n, unit = len(ids[i]), "tokens"
        elif tokenizer is not None:
            n, unit = len(tokenizer(text, add_special_tokens=False)["input_ids"]), "tokens"
        else:
            n, unit = len(text), "chars"
        r = overlong_penalty_value(n, max_length, cache_length)
        return r, f"{n} {unit}: penalty {r:+.3f}"

    return RewardFunction("overlong_penalty", score, make_overlong_penalty.__doc__)


class CombinedReward(RewardFunction):
    """``sum_k w_k * f_k(prompts, completions, **kwargs)``; see ``combine_rewards``."""

    def __init__(self, funcs, weights, name):
        self.funcs, self.weights = funcs, weights
        self.names = [getattr(f, "__name__", f"reward{k}") for k, f in enumerate(funcs)]
        super().__init__(name or "+".join(f"{w:g}*{n}" for w, n in zip(weights, self.names)), None,
                         combine_rewards.__doc__)

    def __call__(self, prompts=None, completions=None, **kwargs) -> list[float]:
        completions = list(completions or [])
        total = [0.0] * len(completions)
        notes: list[list[str]] = [[] for _ in completions]
        for f, w, n in zip(self.funcs, self.weights, self.names):
            out = f(prompts=prompts, completions=completions, **kwargs)
            why = getattr(f, "last_reasons", None) or [""] * len(completions)
            for i, r in enumerate(out):
                r = 0.0 if r is None else float(r)
                total[i] += w * r
                notes[i].append(f"{n}={r:g}" + (f" ({why[i]})" if i < len(why) and why[i] else ""))
        self.last_rewards, self.last_reasons = total, ["; ".join(x) for x in notes]
        return total


def combine_rewards(funcs: Sequence[Callable], weights: Sequence[float] | None = None, name: str | None = None) -> RewardFunction:
    """One reward: ``sum_k w_k * f_k(prompts, completions, **kwargs)`` (default weights 1).

    TRL can also weight several functions itself (``GRPOConfig.reward_weights``) and then logs each one;
    a combined function is for code that wants a single number (the from-scratch trainer, the notebooks).
    ``last_reasons`` lists every component's score and reason. A component returning None (TRL's "does not
    apply") counts 0. The default name spells the sum, e.g. ``1*correctness+0.2*format_strict``.
    """
    funcs = list(funcs)
    weights = [1.0] * len(funcs) if weights is None else [float(w) for w in weights]
    if len(weights) != len(funcs) or not funcs:
        raise ValueError(f"need one weight per reward function: {len(funcs)} functions, {len(weights)} weights")
    return CombinedReward(funcs, weights, name)


# --------------------------------------------------------------------------------------------------
# Code rewards
# --------------------------------------------------------------------------------------------------


def make_code_reward(column: str = "tests", timeout_s: float = 5.0) -> RewardFunction:
    """Code correctness: the last fenced python block of the completion (``extract_code``) is run with the
    assert-based tests of a dataset column by ``run_tests`` in the sandbox; 1.0 iff ``CodeResult.passed``.

    The reason records the sandbox status and its isolation mode. Completions run one after another (each in
    its own sandboxed process); see ``grpo_lab.sandbox`` for what the sandbox does and does not stop.
    """

    def score(text, i, kwargs):
        tests = _column(kwargs, column, i)
        if isinstance(tests, (list, tuple)):
            tests = "\n".join(map(str, tests))
        code = extract_code(text)
        if code is None:
            return 0.0, "no ```python block found"
        res = run_tests(code, str(tests), timeout_s=timeout_s)
        return (1.0 if res.passed else 0.0), f"{res.status} [{res.isolation}]" + (f": {res.reason}" if res.reason else "")

    return RewardFunction("code" if column == "tests" else f"code_{column}", score, make_code_reward.__doc__)


code_reward = make_code_reward("tests")
