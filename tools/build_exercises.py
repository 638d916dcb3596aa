"""exercises/ generated from solutions/: ``python tools/build_exercises.py [--check]`` (``make exercises``).

Each exercise is written once, in a notebook under ``solutions/``. Solution code sits between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines (nbgrader's markers); this tool writes ``exercises/`` with
every marked region replaced by ``raise NotImplementedError(...)`` at the same indentation, so the student's
notebook runs up to the first call of an unfinished function. Markdown cells marked ``<!-- SOLUTION ONLY -->``
are replaced by a pointer to the solutions notebook. The grader the exercises call is ``grpo_lab.course.grading``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB_MESSAGE = "not implemented yet: replace this line with your solution"


def strip_solution(source: str) -> str:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region by a ``NotImplementedError`` stub.

    The stub keeps the indentation of the ``BEGIN`` marker. Unbalanced markers raise ``ValueError``.
    """
    out, inside = [], False
    for line in source.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError("nested ### BEGIN SOLUTION")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("{STUB_MESSAGE}")\n')
        elif stripped == END:
            if not inside:
                raise ValueError("### END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("### BEGIN SOLUTION without END")
    return "".join(out).rstrip("\n")


def _exercise_notebook(nb: dict) -> dict:
    nb = copy.deepcopy(nb)
    # A rendered solution records its render (code hash, time): an exercise is never rendered, and its code
    # differs from the solution's, so that record would be wrong there.
    nb.get("metadata", {}).pop("grpo_lab", None)
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell.get("metadata", {}).pop("execution", None)
        if cell["cell_type"] == "code":
            src = strip_solution(src)
            cell["outputs"], cell["execution_count"] = [], None
        elif cell["cell_type"] == "markdown" and "<!-- SOLUTION ONLY -->" in src:
            src = "*(The discussion of the solution is in the solutions notebook.)*"
        cell["source"] = src
    return nb


def build_exercises(root: str | Path, check_only: bool = False) -> list[str]:
    """Write ``exercises/<name>.ipynb`` for each ``solutions/<name>.ipynb``; return the paths that differ.

    With ``check_only`` nothing is written: the returned list is what a build would change (empty when the
    committed exercises are up to date). Exercise notebooks without a solution are reported too. Exercises
    carry no outputs, execution counts or render record (``metadata["grpo_lab"]``), even when the solutions
    are stored rendered, so rendering a solution changes its exercise only where its markdown changed.
    """
    root = Path(root)
    sol_dir, ex_dir = root / "solutions", root / "exercises"
    ex_dir.mkdir(exist_ok=True)
    changed = []
    expected = set()
    for sol in sorted(sol_dir.glob("*.ipynb")):
        nb = json.loads(sol.read_text())
        text = json.dumps(_exercise_notebook(nb), indent=1, ensure_ascii=False) + "\n"
        target = ex_dir / sol.name
        expected.add(target.name)
        if not target.exists() or target.read_text() != text:
            changed.append(str(target))
            if not check_only:
                target.write_text(text)
    for stray in ex_dir.glob("*.ipynb"):
        if stray.name not in expected:
            changed.append(f"{stray} (no solution notebook)")
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python tools/build_exercises.py", description="Generate exercises/ from solutions/."
    )
    ap.add_argument("--check", action="store_true", help="only report what would change (exit 1 if anything)")
    ap.add_argument("--root", default=".", help="project root (default: .)")
    args = ap.parse_args(argv)
    changed = build_exercises(args.root, check_only=args.check)
    for c in changed:
        print(("out of date: " if args.check else "wrote ") + c)
    if not changed:
        print("exercises/ is up to date with solutions/")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
