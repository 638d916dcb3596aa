"""Extraction: the final answer of a completion, as the raw string the model wrote.

``extract_answer`` only finds the answer; deciding whether it equals the gold answer is the job of
``grpo_lab.rewards.equivalence``. Keeping the two apart lets a notebook show what was extracted and why it
was (not) accepted.
"""

from __future__ import annotations

import re

# A number as people write it: optional minus (not when it is a binary minus, "10-3"), thousands
# separators, decimals, and an optional "/denominator".
_NUMBER_RE = re.compile(r"(?:(?<![\w)\]])[-−])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|(?<![\w.])\.\d+")
_HASHES_RE = re.compile(r"####[ \t]*([^\n]*)")
_PHRASE_RE = re.compile(
    r"(?:\b[Tt]he\s+(?:final\s+)?answer\s+is\b\s*:?|\b(?:[Ff]inal\s+)?[Aa]nswer\s*\**\s*:|(?:(?<=\s)|^)A:)", re.M
)
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")


def _boxed_contents(text: str) -> list[str]:
    """Contents of every well-formed ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces balanced), in order."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*", text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if depth == 0 and j < len(text):
                out.append(text[i + 1 : j].strip())
        elif i < len(text) and m.group(0).endswith(" "):
            # "\boxed 5": TeX's one-token argument
            tok = re.match(r"[^\s$]+", text[i:])
            if tok:
                out.append(tok.group(0))
    return [c for c in out if c]


def _phrase_answer(text: str) -> str | None:
    matches = list(_PHRASE_RE.finditer(text))
    for m in reversed(matches):
        rest = text[m.end():]
        lines = [ln.strip() for ln in rest.split("\n")]
        # "Answer:\n42": the value may sit on the next non-empty line.
        value = next((ln for ln in lines if ln.strip("* ")), "")
        value = value.strip("* ").strip()
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

