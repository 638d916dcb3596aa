"""Prose that cannot drift (issue #27): every number a markdown cell marks with ``<!-- out -->`` or
``<!-- out: label -->`` (``tools/prose_drift.py``) occurs, written the same way, in its notebook's stored
outputs, on a line holding the label when there is one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import prose_drift
from tools.prose_drift import Drift, drifted_numbers, marked_numbers, number_in_outputs

ROOT = Path(__file__).resolve().parents[1]
STORED = [p for d in ("notebooks", "solutions") for p in sorted((ROOT / d).glob("*.ipynb"))]


@pytest.mark.parametrize("path", STORED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_marked_number_is_in_the_stored_outputs(path: Path):
    drifts = drifted_numbers(path)
    assert not drifts, "\n".join(f"{path.name} cell {d.cell_index}: {d.reason}" for d in drifts)


def _notebook(tmp_path: Path, prose: str, printed: str, html: str = "") -> Path:
    outputs = [{"output_type": "stream", "name": "stdout", "text": printed}]
    if html:
        outputs.append({"output_type": "display_data", "metadata": {}, "data": {"text/html": html}})
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": "run()", "outputs": outputs, "execution_count": 1},
            {"cell_type": "markdown", "metadata": {}, "source": prose},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "99_planted.ipynb"
    path.write_text(json.dumps(nb), "utf-8")
    return path


REPORT = "accuracy_before 0.500\naccuracy_after 0.810\nheld-out problems: 1,200\n"


def test_a_marked_number_that_differs_from_its_output_fails(tmp_path: Path):
    path = _notebook(tmp_path, "Training lifts accuracy to <!-- out: accuracy_after -->0.830.", REPORT)
    assert drifted_numbers(path) == [
        Drift(1, "accuracy_after", "0.830", "0.830 does not occur on an output line containing 'accuracy_after'")
    ]


def test_a_marked_number_that_matches_its_output_passes(tmp_path: Path):
    prose = "From <!-- out: accuracy_before -->0.500 to <!-- out:ACCURACY_AFTER -->0.810 on <!-- out -->1,200."
    assert drifted_numbers(_notebook(tmp_path, prose, REPORT)) == []


def test_the_label_ties_the_number_to_its_line(tmp_path: Path):
    # 0.500 is printed, but on the line of accuracy_before: quoted as the after-training accuracy it drifted.
    path = _notebook(tmp_path, "After training: <!-- out: accuracy_after -->0.500.", REPORT)
    assert [d.number for d in drifted_numbers(path)] == ["0.500"]
    assert drifted_numbers(_notebook(tmp_path, "Printed: <!-- out -->0.500.", REPORT)) == []


def test_unmarked_numbers_are_not_checked_and_a_marker_without_a_number_is_reported(tmp_path: Path):
    assert drifted_numbers(_notebook(tmp_path, "About 0.9 in 12 minutes; 3 seeds.", REPORT)) == []
    path = _notebook(tmp_path, "Accuracy <!-- out: accuracy_after --> about 0.81.", REPORT)
    assert drifted_numbers(path) == [Drift(1, "accuracy_after", "", "marker not followed by a number")]


@pytest.mark.parametrize(
    "number, printed, found",
    [
        ("0.810", "accuracy 0.810", True),
        ("0.81", "accuracy 0.810", False),  # formatted differently: a rounding in the prose is a drift too
        ("0.81", "loss 10.812", False),  # a piece of a longer number
        ("81%", "share 81%", True),
        ("81%", "share 81.0%", False),
        ("0.08", "advantage -0.08", False),  # the sign is part of what the output says
        ("-0.08", "advantage -0.08", True),
        ("+0.310", "paired +0.310 +- 0.035", True),
        ("1,200", "1,200 problems", True),
        ("1200", "1,200 problems", False),
        ("3", "groups of 3.", True),  # a sentence's full stop is not a decimal point
    ],
)
def test_numbers_match_only_as_written(number, printed, found):
    assert number_in_outputs(number, "", [printed]) is found


def test_only_printed_text_counts_not_html(tmp_path: Path):
    # text/html is what GitHub shows of a table, but its markup holds numbers a reader never sees (widths, ids).
    path = _notebook(tmp_path, "Width <!-- out -->300.", "nothing here\n", html="<div style='width:300px'>")
    assert [d.number for d in drifted_numbers(path)] == ["300"]


def test_markers_are_read_with_their_labels_and_other_comments_are_not():
    text = "<!-- SOLUTION ONLY --> a <!-- out -->1 b <!--out: held-out accuracy-->+0.5% c <!-- outline -->7"
    assert marked_numbers(text) == [("", "1"), ("held-out accuracy", "+0.5%")]


def test_a_real_stored_notebook_with_a_planted_drift_fails(tmp_path: Path):
    # 06a's stored run prints "trained         0.810 ± 0.023": quoted right it passes, one digit off it fails.
    source = ROOT / "notebooks" / "06a_code_rlvr.ipynb"
    nb = json.loads(source.read_text("utf-8"))
    for quoted, drifts in (("0.810", 0), ("0.820", 1)):
        nb["cells"].append(
            {"cell_type": "markdown", "metadata": {}, "source": f"Reaches <!-- out: trained -->{quoted}."}
        )
        path = tmp_path / f"{quoted}.ipynb"
        path.write_text(json.dumps(nb), "utf-8")
        assert len(drifted_numbers(path)) == drifts, quoted
        nb["cells"].pop()


QUESTIONS = ROOT / "grpo_lab" / "course" / "questions"


def _notebook_of(questions: Path) -> Path:
    return next((ROOT / "notebooks").glob(f"{questions.stem}_*.ipynb"))


@pytest.mark.parametrize("path", sorted(QUESTIONS.glob("*.json")), ids=lambda p: p.name)
def test_concept_questions_quote_what_their_notebook_printed(path: Path):
    drifts = prose_drift.drifted_quotes(path, _notebook_of(path))
    assert not drifts, "\n".join(d.reason for d in drifts)


def test_a_stale_quote_in_a_question_fails(tmp_path: Path):
    """A question quoting 0.503 where the notebook now prints 0.540 (notebook 06 after a re-render) is caught."""
    nb = tmp_path / "06_x.ipynb"
    nb.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "source": "",
                        "outputs": [
                            {
                                "output_type": "stream",
                                "name": "stdout",
                                "text": "with a generous budget: 0.540 +- 0.029\n",
                            }
                        ],
                    }
                ]
            }
        )
    )
    q = {
        "questions": [
            {
                "key": "q1",
                "text": "The untrained model scores 0.503.",
                "why": "",
                "answer": 0.0,
                "quotes": [["generous budget", "0.503"]],
            }
        ]
    }
    (tmp_path / "06.json").write_text(json.dumps(q))
    assert [d.number for d in prose_drift.drifted_quotes(tmp_path / "06.json", nb)] == ["0.503"]
    q["questions"][0]["quotes"] = [["generous budget", "0.540"]]
    (tmp_path / "06.json").write_text(json.dumps(q))
    assert "never uses it" in prose_drift.drifted_quotes(tmp_path / "06.json", nb)[0].reason
    q["questions"][0]["text"] = "The untrained model scores 0.540."
    (tmp_path / "06.json").write_text(json.dumps(q))
    assert prose_drift.drifted_quotes(tmp_path / "06.json", nb) == []
