"""Prose that cannot drift (issue #27): a number that a markdown cell quotes from a computed output carries a
marker, and ``drifted_numbers(path)`` reports each marked number that the notebook's stored outputs do not show.

The marker is an HTML comment right before the number::

    The trained model reaches <!-- out: accuracy_after -->0.810 on the held-out problems.
    Before training it solved <!-- out -->150 of them.

- ``<!-- out -->`` says "this number is printed by a cell of this notebook": it must occur in the notebook's
  stored ``text/plain`` or stream outputs, written the same way (same digits, decimals, thousands commas, sign
  and ``%`` if the prose writes them). ``0.81`` does not match an output of ``0.810``, nor ``0.81`` inside
  ``10.812``; an unsigned ``0.08`` does not match ``-0.08``.
- ``<!-- out: label -->`` also says where: the number must occur on an output line that contains ``label``
  (case-insensitive), e.g. the key of a printed report (``accuracy_after``) or a word of the printed sentence.
  Prefer it: a bare number such as ``3`` is likely to occur somewhere by chance.
- The number is what follows the comment (spaces allowed): optional sign, digits, optional thousands commas,
  optional decimals, optional ``%``. Put a sign or a unit that the output does not print before the comment
  (``+<!-- out -->0.310``). A marker followed by no number is reported too, so a typo cannot switch a check off.
  Numbers without a marker are not checked.

Why an HTML comment before the number: GitHub, Jupyter and Colab hide HTML comments, so the sentence reads as
plain prose everywhere, and a single comment (no closing tag) keeps the marker short enough to put on every
quoted number. It cannot go inside ``$...$`` (MathJax would show it): write a quoted number as text.

Only the standard library is imported (and ``tools.output_noise``'s output reader), so the check is cheap.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tools.output_noise import output_texts

MARKER = re.compile(r"<!--\s*out\b(?:\s*:\s*(?P<label>[^>]*?))?\s*-->\s*(?P<number>[-+]?\d+(?:,\d{3})*(?:\.\d+)?%?)?")
# What a quoted number is compared with: the text a cell printed or returned, not its HTML or images.
OUTPUT_MIMES = ("text/plain",)


@dataclass(frozen=True)
class Drift:
    """A marked number that the stored outputs do not back: the markdown cell's 0-based index, the marker's label
    (``""`` for a bare ``<!-- out -->``), the number as the prose writes it (``""`` when the marker has none) and
    why it failed."""

    cell_index: int
    label: str
    number: str
    reason: str


def marked_numbers(markdown: str) -> list[tuple[str, str]]:
    """The ``(label, number)`` of each marker in ``markdown``, in order; ``number`` is ``""`` for a marker that
    no number follows."""
    return [((m.group("label") or "").strip(), m.group("number") or "") for m in MARKER.finditer(markdown)]


def _occurs(number: str, text: str) -> bool:
    # A whole number: not a piece of a longer one (digits or a decimal point on either side), and an unsigned
    # number not the tail of a signed one.
    before = r"(?<![\w.])" if number[0] in "+-" else r"(?<![\w.+-])"
    return re.search(before + re.escape(number) + r"(?!\d)(?!\.\d)", text) is not None


def number_in_outputs(number: str, label: str, outputs: list[str]) -> bool:
    """Whether ``number`` occurs, written the same way, in one of ``outputs`` (texts), on a line that contains
    ``label`` (case-insensitive) when ``label`` is not empty."""
    lines = [line for text in outputs for line in text.splitlines()]
    wanted = label.lower()
    return any(_occurs(number, line) for line in lines if wanted in line.lower())


def drifted_numbers(notebook_path: str | Path) -> list[Drift]:
    """Each marked number in the markdown cells of the notebook at ``notebook_path`` that its stored text/plain or
    stream outputs do not show (see the module docstring); empty when every marked number is backed. A notebook
    without markers gives an empty list whatever its prose says."""
    nb = json.loads(Path(notebook_path).read_text("utf-8"))
    outputs = [text for _, text in output_texts(nb, OUTPUT_MIMES, errors=False)]
    drifts = []
    for k, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for label, number in marked_numbers(source):
            if not number:
                drifts.append(Drift(k, label, number, "marker not followed by a number"))
            elif not number_in_outputs(number, label, outputs):
                where = f"on an output line containing {label!r}" if label else "in any stored output"
                drifts.append(Drift(k, label, number, f"{number} does not occur {where}"))
    return drifts


def drifted_quotes(questions_path: str | Path, notebook_path: str | Path) -> list[Drift]:
    """Concept questions that quote a run: each ``[label, number]`` of a question's ``quotes`` in the questions
    file at ``questions_path`` must occur in the stored outputs of the notebook at ``notebook_path`` (the rule of a
    ``<!-- out: label -->`` marker), and in the question's own text, options or explanation, so the list cannot
    name a number the question does not use. ``cell_index`` is the question's position in the file."""
    data = json.loads(Path(questions_path).read_text("utf-8"))
    nb = json.loads(Path(notebook_path).read_text("utf-8"))
    outputs = [text for _, text in output_texts(nb, OUTPUT_MIMES, errors=False)]
    drifts = []
    for k, q in enumerate(data["questions"]):
        words = " ".join([q["text"], q["why"], *q.get("options", {}).values()])
        for label, number in q.get("quotes", []):
            if not number_in_outputs(number, label, outputs):
                drifts.append(Drift(k, label, number, f"{q['key']}: {number} is not on an output line with {label!r}"))
            elif not _occurs(number, words):
                drifts.append(Drift(k, label, number, f"{q['key']}: quotes {number} but never uses it"))
    return drifts
