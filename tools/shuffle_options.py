"""Put the options of every multiple-choice concept question in a fixed, seeded order:
``python -m tools.shuffle_options [--check]``.

Why: written by hand, the right option tends to be (b) and to be the longest (issue #27 found 25 of 38 at (b)),
so a student could score by guessing the letter. The order of a question's options here is a function of the seed
and of the options' texts only (each option sorted by a keyed SHA-256 of its text), not of the order they were
written in: running the tool twice changes nothing, and a question added with its right answer at (b) gets a
seeded place like every other. Editing an option's wording can move that question's options; run the tool again.

What it rewrites, so that the course stays consistent:

- ``grpo_lab/course/questions/*.json``: the options relettered a, b, c, ... in the new order, ``answer`` and every
  letter reference such as "(a)" in ``why`` mapped to the new letters;
- ``solutions/*.ipynb``: the markdown that shows the questions (from the cell's first ``**q1.**`` to its end, the
  text ``grading.questions_markdown`` gives) and the letters of the solution's ``answers = {...}`` line. When a
  solution notebook was rendered from the code it holds, its render record (``code_sha256``) is carried over to
  the new code: only the answers cell changes, its stored output ("4/4 checks passed") is the same for any right
  letters, and the cells after it do not read ``answers``;
- ``exercises/`` by ``tools/build_exercises.py`` (as ``make exercises`` does).

``tests/test_answer_key.py`` checks the rules this gives (no letter right more than 35% of the time across the
course) and that the files are as this tool leaves them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from tools.build_exercises import build_exercises

ROOT = Path(__file__).resolve().parents[1]
# Chosen once (issue #27): with it no letter is right in more than 12 of the 38 multiple-choice questions; it
# is part of each option's sort key, so changing it reorders every question.
SEED = "grpo-lab-27"
LETTER_REF = re.compile(r"\(([a-z])\)")  # "(a)" in an explanation names option a
ANSWER_ITEM = re.compile(r'("(q\d+)"\s*:\s*)"([a-z])"')  # '"q2": "b"' in a solution's answers dict


def _dump(data: dict) -> str:
    # The format the question files and notebooks are stored in, so a rewrite shows only what changed.
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def option_order(exercise: str, key: str, options: dict[str, str], seed: str = SEED) -> list[str]:
    """The current letters of ``options`` in their seeded order: sorted by the SHA-256 of seed, exercise id,
    question key and option text. Depends on the texts, not on the letters, so it is the same whatever order
    the options are in now."""

    def rank(letter: str) -> str:
        return hashlib.sha256("\x1f".join((seed, exercise, key, options[letter])).encode("utf-8")).hexdigest()

    return sorted(options, key=rank)


def shuffle_question(exercise: str, question: dict, seed: str = SEED) -> dict:
    """``question`` (a dict of a questions file) with its options in seeded order and relettered from "a";
    ``answer`` and the "(x)" letter references of ``why`` follow their options. A numeric question (no
    ``options``) comes back unchanged. Raises ``ValueError`` when ``why`` names a letter that is not an option."""
    options = question.get("options")
    if not options:
        return dict(question)
    order = option_order(exercise, question["key"], options, seed)
    new_letter = {old: chr(ord("a") + i) for i, old in enumerate(order)}

    def relabel(match: re.Match) -> str:
        if match.group(1) not in new_letter:
            raise ValueError(f"{exercise} {question['key']}: 'why' names option ({match.group(1)}), which it lacks")
        return f"({new_letter[match.group(1)]})"

    out = dict(question)
    out["options"] = {new_letter[old]: options[old] for old in order}
    out["answer"] = new_letter[question["answer"]]
    out["why"] = LETTER_REF.sub(relabel, question["why"])  # one pass: "(a)" -> "(c)" is never mapped again
    return out


def shuffle_file(path: Path, seed: str = SEED) -> str:
    """The text ``path`` (a questions file) should hold: every question through ``shuffle_question``."""
    data = json.loads(path.read_text("utf-8"))
    data["questions"] = [shuffle_question(data["exercise"], q, seed) for q in data["questions"]]
    return _dump(data)


def _questions_markdown(data: dict) -> str:
    from grpo_lab.course.registry import Question

    return "\n\n".join(Question(**q).markdown() for q in data["questions"])


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _set_source(cell: dict, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True) if isinstance(cell["source"], list) else text


def sync_solution(nb: dict, data: dict) -> dict:
    """A copy of the solution notebook ``nb`` showing the questions of ``data`` (a questions file, parsed) and
    answering them with its letters. Raises ``ValueError`` when the notebook lacks the questions' markdown cell
    or the ``check("<id>", answers)`` cell."""
    from tools.render.run import code_sha256, render_info

    nb = json.loads(json.dumps(nb))
    was_fresh = (render_info(nb) or {}).get("code_sha256") == code_sha256(nb)
    exercise = data["exercise"]
    letters = {q["key"]: q["answer"] for q in data["questions"] if q.get("options")}
    shown = [c for c in nb["cells"] if c["cell_type"] == "markdown" and "**q1.**" in _source(c)]
    answered = [c for c in nb["cells"] if c["cell_type"] == "code" and f'check("{exercise}", answers)' in _source(c)]
    if len(shown) != 1 or len(answered) != 1:
        raise ValueError(
            f"{exercise}: expected one questions cell and one answers cell, found {len(shown)}, {len(answered)}"
        )
    text = _source(shown[0])
    _set_source(shown[0], text[: text.index("**q1.**")] + _questions_markdown(data))

    def answer(match: re.Match) -> str:
        key = match.group(2)
        return f'{match.group(1)}"{letters[key]}"' if key in letters else match.group(0)

    _set_source(answered[0], ANSWER_ITEM.sub(answer, _source(answered[0])))
    if was_fresh:
        nb["metadata"]["grpo_lab"]["code_sha256"] = code_sha256(nb)
    return nb


def _solution_of(root: Path, name: str) -> Path:
    # "04" must not pick 04a's notebook: the prefix is everything before the first underscore.
    return next(p for p in sorted((root / "solutions").glob(f"{name}_*.ipynb")) if p.name.split("_")[0] == name)


def shuffle_course(root: str | Path = ROOT, check_only: bool = False, seed: str = SEED) -> list[str]:
    """Shuffle every questions file under ``root`` and bring its solution notebook and ``exercises/`` in line;
    return the paths that differ (written unless ``check_only``; empty when everything is as the tool leaves it)."""
    root = Path(root)
    changed = []
    for path in sorted((root / "grpo_lab" / "course" / "questions").glob("*.json")):
        text = shuffle_file(path, seed)
        sol = _solution_of(root, path.stem)
        nb_text = _dump(sync_solution(json.loads(sol.read_text("utf-8")), json.loads(text)))
        for target, new in ((path, text), (sol, nb_text)):
            if target.read_text("utf-8") != new:
                changed.append(str(target))
                if not check_only:
                    target.write_text(new, "utf-8")
    return changed + build_exercises(root, check_only=check_only)


def main(argv: list[str] | None = None) -> int:
    """Command line: rewrite the course (or with ``--check`` only list what would change, exit 1 if anything)."""
    ap = argparse.ArgumentParser(prog="python -m tools.shuffle_options", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report what would change (exit 1 if anything)")
    ap.add_argument("--root", default=str(ROOT), help="project root (default: this checkout)")
    args = ap.parse_args(argv)
    changed = shuffle_course(args.root, check_only=args.check)
    for c in changed:
        print(("out of date: " if args.check else "wrote ") + c)
    if not changed:
        print("the concept questions are in their seeded order")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
