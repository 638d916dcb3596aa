"""Notebooks are stored executed (``make render``): fresh, small, free of machine paths and widget state.

The committed checks read the notebooks as they are; the pipeline checks execute a small synthetic notebook
for real (test mode, a few seconds) and look at what the render wrote.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from pathlib import Path

import pytest

from tools import render
from tools.build_exercises import build_exercises
from tools.render.snapshot import NOTE_CONTROLS, NOTE_LIVE, STATE_MIME, VIEW_MIME

ROOT = Path(__file__).resolve().parents[1]
# Every notebook of notebooks/ and solutions/ is stored rendered (`make render`): one without a full-mode render
# fails, and so does one whose code changed after its render. (A fork that drops rendering sets this to False:
# unrendered notebooks then pass, rendered ones must still be fresh.)
REQUIRE_RENDERED = True
RENDERED = [p for d in ("notebooks", "solutions") for p in sorted((ROOT / d).glob("*.ipynb"))]
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
NOTEBOOK_BUDGET_BYTES = 1_500_000
TOTAL_BUDGET_BYTES = 8_000_000
MACHINE_MARKERS = ("/root", "/home/", "/tmp/", "/work/", "site-packages", str(ROOT))
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex")


def _ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _output_texts(nb: dict):
    for k, cell in enumerate(nb["cells"]):
        for o in cell.get("outputs", []):
            if o["output_type"] == "stream":
                yield k, "".join(o["text"])
            elif o["output_type"] == "error":
                yield k, o["evalue"] + "\n" + "\n".join(o["traceback"])
            else:
                for mime in TEXT_MIMES:
                    if mime in o.get("data", {}):
                        yield k, "".join(o["data"][mime])


def leaks(nb: dict) -> list[str]:
    """What a committed notebook must not hold: machine paths in outputs, widget state, execution timing."""
    found = [f"cell {k} output names {m!r}" for k, text in _output_texts(nb) for m in MACHINE_MARKERS if m in text]
    if "widgets" in nb["metadata"] or STATE_MIME in json.dumps(nb):
        found.append("widget state stored")
    found += [
        f"cell {k} has a widget view"
        for k, c in enumerate(nb["cells"])
        for o in c.get("outputs", [])
        if VIEW_MIME in o.get("data", {})
    ]
    found += [f"cell {k} has execution timing" for k, c in enumerate(nb["cells"]) if "execution" in c["metadata"]]
    return found


# ---------------------------------------------------------------------------------------------------------
# The committed notebooks
# ---------------------------------------------------------------------------------------------------------


# Full tier: after a notebook edit `make test` stays green while the (possibly long) re-render is pending;
# CI's `make test-all` still refuses a stale stored notebook.
@pytest.mark.full
@pytest.mark.parametrize("path", RENDERED, ids=_ids(RENDERED))
def test_rendered_notebook_is_fresh(path: Path):
    nb = json.loads(path.read_text())
    info = render.render_info(nb)
    if info is None:
        assert not REQUIRE_RENDERED, f"notebook {path.name} was never rendered: run `make render NB={path.stem}`"
        return
    stale = render.stale_message(path)
    assert stale is None, stale
    if REQUIRE_RENDERED:
        assert not info.get("test_mode"), f"{path.name} was rendered in test mode: run `make render NB={path.stem}`"


@pytest.mark.parametrize("path", RENDERED, ids=_ids(RENDERED))
def test_rendered_notebook_is_small_and_clean(path: Path):
    size = path.stat().st_size
    assert size <= NOTEBOOK_BUDGET_BYTES, (
        f"{path.name} is {size / 1e6:.2f} MB (budget {NOTEBOOK_BUDGET_BYTES / 1e6} MB)"
    )
    problems = leaks(json.loads(path.read_text()))
    assert not problems, f"{path.name}: {problems}: run `make render NB={path.stem}`"


def test_all_rendered_notebooks_fit_the_total_budget():
    total = sum(p.stat().st_size for p in RENDERED)
    assert total <= TOTAL_BUDGET_BYTES, f"notebooks/ and solutions/ hold {total / 1e6:.1f} MB of notebooks"


@pytest.mark.parametrize("path", EXERCISES, ids=_ids(EXERCISES))
def test_exercises_have_no_outputs_and_no_render_record(path: Path):
    nb = json.loads(path.read_text())
    dirty = [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"{path} has outputs in cells {dirty}: run `make exercises`"
    assert "grpo_lab" not in nb["metadata"] and "widgets" not in nb["metadata"], f"{path}: run `make exercises`"


# ---------------------------------------------------------------------------------------------------------
# The pipeline, on a synthetic notebook executed for real
# ---------------------------------------------------------------------------------------------------------

WIDE_FIGURE = """import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(14, 4), dpi=100)
ax.plot([0, 1, 2], [1, 0, 1])
ax.set_title("wide figure")
plt.show()"""
WIDGET = """import ipywidgets as W
from IPython.display import display
out = W.Output()
with out:
    f2, a2 = plt.subplots(figsize=(4, 3), dpi=100)
    a2.bar([1, 2], [3, 4])
    display(f2)
    plt.close(f2)
box = W.VBox([W.FloatSlider(value=0.25, description="epsilon"), W.HTML("<b>status: 42 groups</b>"), out])
display(box)"""
# The training dashboard's way: an Output displayed on its own, redrawn in place a few times.
DASHBOARD = """live = W.Output()
display(live)
for step in range(3):
    f3, a3 = plt.subplots(figsize=(5, 2), dpi=100)
    a3.plot(range(step + 2))
    with live:
        live.clear_output(wait=True)
        display(f3)
    plt.close(f3)"""
TQDM = """from tqdm.auto import tqdm
for _ in tqdm(range(40), desc="steps"):
    pass"""
PATHS = """import os, sys
print({tmp!r})
print(os.getcwd())
print(sys.prefix)
for i in range(5):
    print(f"\\rprogress {{i}}", end="")
print()"""


def _notebook(tmp_path: Path, cells: list[str]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A synthetic notebook\n\nIt draws, shows widgets, prints.")]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    path = tmp_path / "99_synthetic.ipynb"
    nbformat.write(nb, path)
    return path


def _pngs(nb: dict) -> list:
    from PIL import Image

    return [
        Image.open(io.BytesIO(base64.b64decode(o["data"]["image/png"])))
        for c in nb["cells"]
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]


def test_render_stores_small_figures_snapshots_and_no_machine_paths(tmp_path: Path):
    path = _notebook(tmp_path, [WIDE_FIGURE, WIDGET, TQDM, PATHS.format(tmp=str(tmp_path)), DASHBOARD])
    result = render.render_notebook(path, test_mode=True, repo_root=ROOT, log=lambda s: None, cell_limit_s=120)
    assert result.ok, result.message
    nb = json.loads(path.read_text())
    assert leaks(nb) == []
    widths = sorted(img.width for img in _pngs(nb))
    assert len(widths) == 3 and widths[-1] == render.outputs.MAX_WIDTH_PX, widths  # 1400 px capped
    assert all("Software" not in img.info for img in _pngs(nb)), "figures were not re-encoded"
    assert "image/svg+xml" not in json.dumps(nb)
    widget_outs = nb["cells"][2]["outputs"]
    htmls = " ".join(o["data"].get("text/html", "") for o in widget_outs if o["output_type"] == "display_data")
    assert NOTE_CONTROLS in htmls and "Controls: epsilon = 0.25" in htmls
    assert "<b>status: 42 groups</b>" in htmls
    assert any("image/png" in o.get("data", {}) for o in widget_outs), "the figure inside the Output is lost"
    tqdm_outs = nb["cells"][3]["outputs"]
    assert [o["output_type"] for o in tqdm_outs] == ["stream"], tqdm_outs
    assert tqdm_outs[0]["text"].count("\n") == 1 and tqdm_outs[0]["text"].startswith("steps: 100% 40/40 [")
    printed = "".join("".join(o["text"]) for o in nb["cells"][4]["outputs"])
    assert str(tmp_path) not in printed and sys.prefix not in printed and "<tmp>" in printed and "<python>" in printed
    assert printed.rstrip().endswith("progress 4") and "progress 3" not in printed
    live = nb["cells"][5]["outputs"]
    assert [o["data"]["text/plain"] for o in live] == [NOTE_LIVE, "<figure>"], "one note, then the last redraw only"
    info = nb["metadata"]["grpo_lab"]
    assert info["code_sha256"] == render.code_sha256(nb) and info["threads"] == 2 and info["test_mode"]
    assert render.stale_message(path) is None
    nb["cells"][1]["source"] = WIDE_FIGURE.replace("wide figure", "a new title")
    path.write_text(json.dumps(nb))
    stale = render.stale_message(path)
    assert stale and "changed after its last render" in stale and "make render NB=99_synthetic" in stale


def test_a_failing_cell_leaves_the_file_untouched(tmp_path: Path):
    path = _notebook(tmp_path, ["x = 1", "raise ValueError('broken on purpose')"])
    before = path.read_bytes()
    result = render.render_notebook(path, test_mode=True, repo_root=ROOT, log=lambda s: None, cell_limit_s=120)
    assert not result.ok and "broken on purpose" in result.message and "unchanged" in result.message
    assert result.message.startswith("cell index 2 "), result.message  # the markdown title is cell 0
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "a temporary file was left behind"


# ---------------------------------------------------------------------------------------------------------
# The pieces, without a kernel
# ---------------------------------------------------------------------------------------------------------


def test_snapshot_of_a_tqdm_bar_is_one_line_and_unknown_models_give_a_note():
    states = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
        "l": {"model_name": "HTMLModel", "state": {"value": "GRPO: 100%"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 30, "max": 30}},
        "r": {"model_name": "HTMLModel", "state": {"value": " 30/30 [00:04&lt;00:00, 7.1it/s]"}},
    }
    assert render.snapshot_outputs({"model_id": "box"}, states) == [
        {"output_type": "stream", "name": "stdout", "text": "GRPO: 100% 30/30 [00:04<00:00, 7.1it/s]\n"}
    ]
    lone = render.snapshot_outputs({"model_id": "gone"}, states)
    assert len(lone) == 1 and "Static snapshot" in lone[0]["data"]["text/plain"]
    states["h"] = {"model_name": "HTMLModel", "state": {"value": "group 1: mean 0.25<br>group 2: mean 0.5"}}
    assert (
        render.snapshot_outputs({"model_id": "h"}, states)[1]["data"]["text/plain"]
        == "group 1: mean 0.25\ngroup 2: mean 0.5"
    )


def test_streams_merge_and_keep_the_final_state_of_each_line():
    outs = [
        {"output_type": "stream", "name": "stderr", "text": "10%\r"},
        {"output_type": "stream", "name": "stderr", "text": "50%\r100%\ndone\n"},
        {"output_type": "stream", "name": "stdout", "text": "a\r\nb\n"},
    ]
    assert render.merge_streams(outs) == [
        {"output_type": "stream", "name": "stderr", "text": "100%\ndone\n"},
        {"output_type": "stream", "name": "stdout", "text": "a\nb\n"},
    ]
    assert render.final_line_state("step 3\r") == "step 3"


def test_scrub_replaces_paths_only_where_they_start():
    paths = render.machine_paths("/srv/x/grpo-lab", extra={"/tmp": "<tmp>"})
    text = "/srv/x/grpo-lab/runs/a and /tmp/b, not /tmpfile or /data/tmp/c"
    assert render.scrub(text, paths) == "<grpo-lab>/runs/a and <tmp>/b, not /tmpfile or /data/tmp/c"


def test_time_line_is_written_once_and_updated(tmp_path: Path):
    nb = {"cells": [{"cell_type": "code", "source": "1"}, {"cell_type": "markdown", "source": "# Title\n"}]}
    render.set_time_line(nb, 150)
    render.set_time_line(nb, 700)
    src = nb["cells"][1]["source"]
    assert src.count("full-mode-time -->") == 2 and "about 12 min on 2 CPU cores" in src and "about 2 min" not in src


def test_exercises_drop_the_render_record_and_check_mode_ignores_outputs(tmp_path: Path):
    import nbformat

    (tmp_path / "solutions").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# T"),
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
    ]
    sol = tmp_path / "solutions" / "00_x.ipynb"
    nbformat.write(nb, sol)
    assert build_exercises(tmp_path) == [str(tmp_path / "exercises" / "00_x.ipynb")]
    # The same solution, rendered: outputs, a count, timing metadata and a render record.
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nb.cells[1].execution_count = 1
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    nb.metadata["grpo_lab"] = {"code_sha256": render.code_sha256(nb)}
    nbformat.write(nb, sol)
    assert build_exercises(tmp_path, check_only=True) == []
    ex = json.loads((tmp_path / "exercises" / "00_x.ipynb").read_text())
    assert "grpo_lab" not in ex["metadata"] and ex["cells"][1]["outputs"] == []
    assert "NotImplementedError" in ex["cells"][1]["source"]


def test_render_selects_notebooks_by_name():
    picked = render.notebooks_to_render(ROOT, "04a")
    assert {p.parent.name for p in picked} == {"notebooks", "solutions"} and all("04a" in p.name for p in picked)
    assert os.path.basename(str(render.notebooks_to_render(ROOT)[0].parent)) == "notebooks"
