"""What a student reads speaks to a student: no course-internal paths, issue numbers or build-system talk.

Student-facing text is every cell of the notebooks in notebooks/, exercises/ and solutions/ (markdown and code),
the top-level README.md, and the docstrings of the grpo_lab modules (what ``help()`` shows). None of it may mention
the course's private design folder (a ``shared`` folder beside the clone) or ``COURSE.md`` (files a student does not have), an issue number ("issue 7", or "#7" used as an issue
reference), or "CI" as a word: sources are papers and code, cited, and the test suite is "the tests".
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each rule: (what it catches, pattern). "#<digits>" is only an issue reference outside code: in code it could be
# a colour ("#937860"), so code is checked for it in comments only.
RULES = [
    ("a path to the design folder beside the clone", re.compile(r"\.\.[/]" + "shared")),
    ("COURSE.md", re.compile(r"COURSE\.md")),
    ("an issue number", re.compile(r"\bissues?\s+#?\d+", re.IGNORECASE)),
    ("'CI'", re.compile(r"\bCI\b")),
]
ISSUE_REF = ("an issue reference", re.compile(r"(?<![\w#&/])#\d+(?![\w-])"))


def offences(text: str, *, prose: bool = True) -> list[tuple[int, str, str]]:
    """``(line number, rule, line)`` for every rule a text breaks; ``prose=False`` skips the ``#<digits>`` rule."""
    rules = RULES + ([ISSUE_REF] if prose else [])
    return [
        (n, what, line.strip()) for n, line in enumerate(text.splitlines(), 1) for what, rx in rules if rx.search(line)
    ]


def _comments(source: str) -> str:
    """The comments of a code cell, one per line at its own line number (IPython magics are tolerated)."""
    lines = [""] * (source.count("\n") + 1)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                lines[tok.start[0] - 1] = tok.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        lines = [line[line.index("#") :] if "#" in line else "" for line in source.splitlines()]
    return "\n".join(lines)


def notebook_offences(path: Path) -> list[str]:
    found = []
    for k, cell in enumerate(json.loads(path.read_text())["cells"]):
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        hits = offences(src, prose=cell["cell_type"] == "markdown")
        if cell["cell_type"] == "code":
            hits += [h for h in offences(_comments(src)) if h[1] == ISSUE_REF[0]]
        found += [
            f"{path.relative_to(ROOT)} cell {k} ({cell.get('id')}) line {n}: {what}: {line}"
            for n, what, line in sorted(hits)
        ]
    return found


def docstring_offences(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text())
    for node in [tree, *ast.walk(tree)]:
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if not doc:
                continue
            first = node.body[0].lineno  # the docstring's own first line
            found += [f"{path.relative_to(ROOT)}:{first + n - 1}: {what}: {line}" for n, what, line in offences(doc)]
    return sorted(set(found))


NOTEBOOKS = sorted(p for d in ("notebooks", "exercises", "solutions") for p in (ROOT / d).glob("*.ipynb"))
MODULES = sorted((ROOT / "grpo_lab").rglob("*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_notebook_text_speaks_to_a_student(path):
    found = notebook_offences(path)
    assert not found, "student-facing text mentions course internals:\n" + "\n".join(found)


def test_readme_speaks_to_a_student():
    text = (ROOT / "README.md").read_text()
    found = [f"README.md:{n}: {what}: {line}" for n, what, line in offences(text)]
    assert not found, "student-facing text mentions course internals:\n" + "\n".join(found)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_docstrings_speak_to_a_student(path):
    found = docstring_offences(path)
    assert not found, "docstrings mention course internals:\n" + "\n".join(found)


def test_the_rules_catch_what_they_should_and_nothing_else():
    bad = [
        "see .." + "/shared/data",
        "as COURSE.md says",
        "fixed in issue 12",
        "Issues #3",
        "(#42)",
        "the CI runs it",
        "test mode (CI)",
    ]
    for text in bad:
        assert offences(text), text
    good = [
        "#### 72",
        "## 1. The formula",
        "[loop](#3-the-loop)",
        "CIFAR-10 and Circuits",
        "color #4c72b0",
        "&#123;",
        "a/b#5x",
        "the tests run it",
        "issue-free code",
        "#### 1,250",
    ]
    for text in good:
        assert not offences(text), (text, offences(text))
    # In code only comments can hold an issue reference; a colour string is not one.
    assert not [h for h in offences(_comments('c = "#937860"  # a brown')) if h[1] == ISSUE_REF[0]]
    assert offences(_comments("x = 1  # see #12"))
