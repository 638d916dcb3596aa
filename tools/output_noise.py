"""Noise in stored notebook outputs: library chatter a student should not have to read past (issue #27).

``NOISE_PATTERNS`` is the one list of what counts as noise, each pattern with what produces it;
``noise_in(path)`` lists where a stored notebook's outputs match one. ``tests/test_clean_outputs.py`` runs it on
every notebook of ``notebooks/`` and ``solutions/`` (``exercises/`` store no outputs). The cure for a match is at
its cause (silence the library, or surface the message on purpose in the notebook's own words) and a new render,
not an edit of the stored output.

Only the standard library is imported, so the check is cheap wherever it runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NoisePattern:
    """A kind of noise: ``name`` (what a report and an allow-list call it), ``regex`` searched in each output text,
    and ``source``: what prints it, which is where the fix belongs."""

    name: str
    regex: re.Pattern
    source: str


NOISE_PATTERNS = (
    NoisePattern(
        "loading weights",
        re.compile(r"Loading weights"),
        "transformers' progress bar while from_pretrained reads a checkpoint",
    ),
    NoisePattern(
        "writing shards",
        re.compile(r"Writing model shards"),
        "transformers' progress bar while save_pretrained writes a checkpoint",
    ),
    NoisePattern(
        "trl rank warning",
        re.compile(r"\[RANK \d+\]"),
        "TRL's logger.warning lines (one per process rank), e.g. about importance_sampling_level and loss_type",
    ),
    NoisePattern(
        "trl training-loss table",
        re.compile(r"<th>Training Loss</th>"),
        "the HTML table of transformers' NotebookProgressCallback, which TRL's trainer adds in a notebook",
    ),
    NoisePattern(
        "notebook progress bar",
        re.compile(r"<progress\b"),
        "the HTML <progress> element of the same callback (the text bar of tqdm is kept, at its final state)",
    ),
    NoisePattern(
        "style element",
        re.compile(r"<style\b"),
        "a <style> block in HTML output (pandas' <style scoped>, a widget's table CSS): GitHub strips the tag "
        "and shows the CSS as text",
    ),
    NoisePattern(
        "css as text",
        re.compile(r"[\w.#-]+\s*\{[a-z-]+:[^{}\n]*\}"),
        "the same CSS in a text/plain fallback (the HTML with its tags removed), read by a plain-text viewer",
    ),
    NoisePattern(
        "nan memory",
        re.compile(r"\bnan GiB\b|peak GPU memory nan"),
        "a memory report made on a machine without a GPU: the number is not available, not a measurement",
    ),
    NoisePattern(
        "carriage return",
        re.compile(r"\r"),
        "tqdm and other progress lines redrawn in place: the render keeps each line's final state, so a carriage "
        "return left in a stored output is an unresolved redraw",
    ),
    NoisePattern(
        "machine path",
        re.compile(r"/home/|/work/|/tmp/"),
        "an absolute path of the machine that rendered (a cache, a checkout, a temporary folder)",
    ),
    NoisePattern(
        "python warning",
        re.compile(r"\b(?:UserWarning|FutureWarning|DeprecationWarning)\b"),
        "warnings.warn from a library (torch, transformers, TRL, pandas) printed to stderr",
    ),
)
# The text of an output as a reader sees it: stream text, an error's message and traceback, and the text-like
# representations of a rich output (GitHub shows text/html, a terminal or Colab's fallback text/plain).
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")


def _joined(value) -> str:
    if isinstance(value, list):
        return "".join(value)
    return value if isinstance(value, str) else json.dumps(value)


def output_texts(nb: dict, mimes: tuple[str, ...] = TEXT_MIMES, errors: bool = True):
    """Yield ``(cell_index, text)`` for each text of each stored output of ``nb`` (parsed notebook JSON): stream
    text, an error's message and traceback (unless ``errors`` is false), and each rich output's representations
    among ``mimes``."""
    for k, cell in enumerate(nb.get("cells", [])):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                yield k, _joined(o.get("text", ""))
            elif o.get("output_type") == "error":
                if not errors:
                    continue
                yield k, o.get("evalue", "") + "\n" + "\n".join(o.get("traceback", []))
            else:
                for mime in mimes:
                    if mime in o.get("data", {}):
                        yield k, _joined(o["data"][mime])


def noise_in(notebook_path: str | Path, patterns=NOISE_PATTERNS) -> list[tuple[int, str]]:
    """Where the stored outputs of the notebook at ``notebook_path`` hold noise: sorted, distinct
    ``(cell_index, pattern_name)`` pairs (0-based index into ``cells``), empty for a clean notebook."""
    nb = json.loads(Path(notebook_path).read_text("utf-8"))
    found = {(k, p.name) for k, text in output_texts(nb) for p in patterns if p.regex.search(text)}
    return sorted(found)
