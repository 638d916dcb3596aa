"""Notebook 10's stored run: the stack's verifier read no gold field, and its table holds every stage and baseline.

The notebook builds every stage through a ``LabelFreeVerifier`` on sealed problems (any read of a stored
solution raises ``GoldLabelRead``, which ``test_label_free.py`` shows on a peeking checker). Here the stored
outputs are read back: a render that had used gold, or that dropped a baseline, fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "10_the_new_stack.ipynb"
STACK = ["warm-start", "teacher-1", "teacher-2", "teacher-3", "ensemble", "ensemble-verified", "student",
         "vote-unverified", "round-2"]  # fmt: skip
ROW = re.compile(
    r"^(?P<stage>[a-z0-9-]+)\s+(?P<acc>[01]\.\d{3})\s+(?P<se>0\.\d{3})\s+(?P<params>[\d,]+)\s+(?P<cost>[\d.e+]+)"
    r"\s+(?P<x>[\d.]+)\s+(?P<gold>[\d,]+)\s+(?P<calls>[\d,]+)\s+(?P<per>[\d.]+)$"
)


def _cells():
    nb = json.loads(NB.read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        text = "".join(
            "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
            for o in cell.get("outputs", [])
        )
        yield cell["cell_type"], src, text


def _table() -> dict[str, dict]:
    for kind, src, text in _cells():
        if kind == "code" and "stages.json" in src:
            rows = {}
            for line in text.splitlines():
                m = ROW.match(line.strip())
                if m:
                    rows[m["stage"]] = m.groupdict()
            return rows
    raise AssertionError("notebook 10 has no cell that writes stages.json")


def test_the_stack_is_built_on_sealed_problems_with_a_label_free_verifier():
    code = "\n".join(src for kind, src, _ in _cells() if kind == "code")
    assert "verifier = LabelFreeVerifier(task)" in code
    assert "pool = [seal(p, task.statement_fields) for p in pool]" in code
    assert "reward_funcs=[verifier.reward()]" in code and "verifier=verifier" in code
    assert "gold_dataset" not in code and ".answer" not in code.replace("answer_cost", "")


def test_the_stored_run_read_no_gold_label_and_holds_every_stage():
    rows = _table()
    assert set(STACK + ["solver-sft"]) <= set(rows), sorted(rows)
    for stage in STACK:
        assert rows[stage]["gold"] == "0", (stage, rows[stage])
    assert int(rows["solver-sft"]["gold"].replace(",", "")) > 0  # the baseline's labels are counted, not hidden
    student = int(rows["student"]["params"].replace(",", ""))
    assert all(student < int(rows[f"teacher-{k}"]["params"].replace(",", "")) for k in (1, 2, 3))
    assert float(rows["student"]["cost"]) < min(float(rows[f"teacher-{k}"]["cost"]) for k in (1, 2, 3))
    outputs = "\n".join(text for _, _, text in _cells())
    assert "gold fields read by the stack's verifier: none" in outputs
    assert outputs.count("GoldLabelRead:") == 2  # the two refusals the notebook demonstrates, nothing else
    assert "mode: full" in outputs
