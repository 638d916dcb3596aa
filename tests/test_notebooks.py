"""Execute every notebook in test mode (tiny models, few steps) with nbclient, as a student would top to bottom.

- notebooks/ and solutions/: no cell may raise; exercise checks run strict (a failing check raises).
- exercises/: the stubs raise NotImplementedError, so errors are allowed, but only that one, and a check
  output (or, where the notebook holds only concept questions, the stub itself) must say "not implemented yet".

Each run executes an in-memory copy and never writes the file: notebooks/ and solutions/ are stored with their
full-mode outputs (``make render``; tests/test_render.py checks them, and that exercises/ have none).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# `make test` executes these few (one per kind: a lesson, a solution, an exercise with its stubs); `make test-all`
# executes every notebook. A hang is stopped by pytest-timeout (pyproject.toml); no assertion on the time.
FAST_TIER = {
    "notebooks/02_group_relative_advantages.ipynb",
    "solutions/03_grpo_objective.ipynb",
    "exercises/01_verifiable_rewards.ipynb",
}


def _notebooks(folder: str) -> list[Path]:
    return sorted((ROOT / folder).glob("*.ipynb"))


ALL = [p for d in ("notebooks", "solutions", "exercises") for p in _notebooks(d)]


def _execute(path: Path, allow_errors: bool):
    import nbformat
    from nbclient import NotebookClient

    # Read from bytes and never written back: notebooks/ and solutions/ are stored rendered in full mode
    # (tests/test_render.py), and a test-mode run must not replace those outputs.
    nb = nbformat.reads(path.read_bytes().decode("utf-8"), as_version=4)
    env_backup = dict(os.environ)
    os.environ.update(
        GRPO_LAB_TEST_MODE="1",
        MPLBACKEND="Agg",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        GRPO_LAB_STRICT_CHECKS="0" if allow_errors else "1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        # one thread per kernel: tests run two at a time on two cores (see grpo_lab.env.set_threads)
        OMP_NUM_THREADS="1",
        GRPO_LAB_THREADS="1",
    )
    try:
        client = NotebookClient(
            nb,
            timeout=None,
            kernel_name="python3",
            allow_errors=allow_errors,
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    return nb


def _outputs(nb) -> tuple[list[dict], str]:
    errors, text = [], []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(out)
            text.append(out.get("text", "") or json.dumps(out.get("data", {})))
    return errors, "\n".join(text)


def _tier(path: Path) -> list:
    return [] if f"{path.parent.name}/{path.name}" in FAST_TIER else [pytest.mark.full]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", [pytest.param(p, marks=_tier(p), id=f"{p.parent.name}/{p.name}") for p in ALL])
def test_notebook_executes_in_test_mode(path: Path):
    is_exercise = path.parent.name == "exercises"
    before = path.read_bytes()
    nb = _execute(path, allow_errors=is_exercise)
    assert path.read_bytes() == before, f"{path.name}: the test-mode run changed the file on disk"
    errors, text = _outputs(nb)
    if is_exercise:
        others = [e for e in errors if e.get("ename") != "NotImplementedError"]
        assert not others, f"{path.name}: unexpected errors {[(e['ename'], e['evalue']) for e in others]}"
        # A notebook with only concept questions stops at the stub of its answers, before its check runs.
        stubs = [e for e in errors if "not implemented yet" in e.get("evalue", "")]
        assert "not implemented yet" in text or stubs, f"{path.name}: no check reported 'not implemented yet'"
    else:
        assert not errors
        if path.parent.name == "solutions":
            assert "checks passed. Well done!" in text, f"{path.name}: no exercise check passed"


def test_every_notebook_folder_has_content():
    assert _notebooks("notebooks"), "no notebooks found"
    assert _notebooks("solutions"), "no solution notebooks found"
    assert {p.name for p in _notebooks("solutions")} == {p.name for p in _notebooks("exercises")}


def test_every_notebook_is_colab_ready():
    """A badge that opens this very notebook in Colab, and an install cell that only runs inside Colab."""
    import re

    for path in ALL:
        nb = json.loads(path.read_text())
        cells = nb["cells"]
        head = "".join("".join(c["source"]) for c in cells[:2])
        m = re.search(r"colab\.research\.google\.com/github/[^/]+/[^/]+/blob/main/([\w/.\-]+\.ipynb)", head)
        assert m, f"{path}: no Open-in-Colab badge in the first cells"
        want = (
            f"exercises/{path.name}"
            if path.parent.name in ("solutions", "exercises")
            else f"{path.parent.name}/{path.name}"
        )
        assert m.group(1) == want, f"{path}: badge opens {m.group(1)}, expected {want}"
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        install = next((c for c in code[:2] if "pip" in c), None)
        assert install and 'if "google.colab" in sys.modules' in install, (
            f"{path}: the first code cells must install only in Colab"
        )
