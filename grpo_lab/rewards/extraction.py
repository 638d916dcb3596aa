"""Extraction: the final answer of a completion, as the raw string the model wrote.

``extract_answer`` only finds the answer; deciding whether it equals the gold answer is the job of
``grpo_lab.rewards.equivalence``. Keeping the two apart lets a notebook show what was extracted and why it
was (not) accepted.
"""

from __future__ import annotations

import collections
import re

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

    Looks, in this order, for: the last well-formed ``\\boxed{...}`` (nested braces
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
