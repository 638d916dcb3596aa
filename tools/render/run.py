"""Executing a notebook for the record: full mode, two threads, outputs tidied, the file replaced atomically."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grpo_lab.env import malloc_env
from tools.render.outputs import machine_paths, merge_streams, scrub_outputs, shrink_figures
from tools.render.snapshot import replace_widget_views

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("notebooks", "solutions")  # exercises/ are generated from solutions/ and stay without outputs
THREADS = 2  # the course's target machine: a laptop or a free runner with two cores
CELL_LIMIT_S = 3600  # a guard against a hung cell, far above any full-mode cell
TIME_START, TIME_END = "<!-- full-mode-time -->", "<!-- /full-mode-time -->"
TIME_LINE_RE = re.compile(re.escape(TIME_START) + ".*?" + re.escape(TIME_END), re.DOTALL)
# Kernel-side metadata that differs from run to run or machine to machine, never worth a diff. A list of what to
# drop, not nbconvert's ClearMetadataPreprocessor, which drops all of a code cell's metadata except a list to keep
# (a cell's tags, for instance, would go too).
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "papermill")


def _source(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def code_sha256(nb) -> str:
    """The SHA-256 of the notebook's code cells, in order: each source, then an ASCII record separator.

    Markdown is left out on purpose: prose (and the full-mode time line) can change without a new render.
    """
    h = hashlib.sha256()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            h.update(_source(cell).encode("utf-8") + b"\x1e")
    return h.hexdigest()


def render_info(nb) -> dict | None:
    """The ``metadata["grpo_lab"]`` a render stored in ``nb`` (a dict or an nbformat node), or ``None``."""
    return (nb.get("metadata") or {}).get("grpo_lab")


def stale_message(path: str | Path) -> str | None:
    """Why the notebook at ``path`` needs a new render, or ``None`` when it was never rendered or is fresh.

    A rendered notebook is fresh when the code hash stored by its render equals the hash of its code now.
    """
    path = Path(path)
    nb = json.loads(path.read_text())
    info = render_info(nb)
    if info is None or info.get("code_sha256") == code_sha256(nb):
        return None
    return f"notebook {path.name} changed after its last render: run `make render NB={path.stem}`"


def time_line(seconds: float) -> str:
    """The line the first markdown cell carries: the measured full-mode time, rounded for a reader."""
    minutes = seconds / 60
    said = "under a minute" if minutes < 1 else f"about {max(1, round(minutes))} min"
    return (
        f"{TIME_START}**Full mode:** {said} on {THREADS} CPU cores (measured by `make render`); "
        f"test mode (`GRPO_LAB_TEST_MODE=1`): a few minutes at most.{TIME_END}"
    )


def set_time_line(nb, seconds: float) -> None:
    """Write (or rewrite) ``time_line(seconds)`` in the first markdown cell of ``nb``, as its last line."""
    cell = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    if cell is None:
        return
    src, line = _source(cell), time_line(seconds)
    cell["source"] = TIME_LINE_RE.sub(line, src) if TIME_LINE_RE.search(src) else src.rstrip("\n") + "\n\n" + line


def kernel_env(test_mode: bool) -> dict[str, str]:
    """The environment of a rendering kernel: ours, minus anything that would change what a notebook does.

    Full mode unsets ``GRPO_LAB_TEST_MODE``; two threads; no network for the Hub; strict exercise checks, so a
    solution whose check fails stops its render; glibc's malloc thresholds of the training entry points.
    ``MPLBACKEND`` is removed so ipykernel picks the inline backend and figures are stored.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("GRPO_LAB_TEST_MODE", "MPLBACKEND")}
    env.update(
        OMP_NUM_THREADS=str(THREADS),
        GRPO_LAB_THREADS=str(THREADS),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        GRPO_LAB_STRICT_CHECKS="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        # glibc malloc keeps freed memory for reuse, so training inside a notebook runs at the speed
        # `grpo-lab train` does; importing the library never sets this policy, the launcher does.
        **malloc_env(),
    )
    if test_mode:
        env["GRPO_LAB_TEST_MODE"] = "1"
    return env


def tidy_notebook(nb, repo_root: str | Path = ROOT) -> int:
    """Turn an executed notebook into what is committed, in place; return the number of widget snapshots.

    Widget views become static snapshots and ``metadata.widgets`` goes; streams are merged with carriage
    returns resolved; figures are re-encoded PNG; machine paths are scrubbed from every output; per-cell
    timing and kernel metadata are dropped.
    """
    meta = nb["metadata"]
    snaps = replace_widget_views(nb["cells"], meta.get("widgets"))
    meta.pop("widgets", None)
    paths = machine_paths(repo_root)
    for cell in nb["cells"]:
        for key in VOLATILE_CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
        if cell["cell_type"] == "code":
            cell["outputs"] = scrub_outputs(shrink_figures(merge_streams(cell["outputs"])), paths)
    return snaps


@dataclass
class RenderResult:
    path: Path
    seconds: float
    ok: bool
    message: str = ""
    size_bytes: int = 0


class _Progress:
    """nbclient hooks: after each code cell, how far the notebook is and how long it has run; the cell that
    is running, so that a failure can name it (nbclient's error shows the source, not the position)."""

    def __init__(self, log: Callable[[str], None], t0: float, n_code: int):
        self.log, self.t0, self.n_code, self.done, self.running = log, t0, n_code, 0, None

    def start(self, cell, cell_index, **_):
        self.running = cell_index

    def executed(self, cell, cell_index, **_):
        if cell.get("cell_type") == "code":
            self.done += 1
            self.log(f"    cell {self.done}/{self.n_code} done, {time.perf_counter() - self.t0:.0f} s")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.render-tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a reader (or a crash) sees the old file or the new one, never half of one


def render_notebook(
    path: str | Path,
    *,
    test_mode: bool = False,
    log: Callable[[str], None] = print,
    cell_limit_s: int = CELL_LIMIT_S,
    repo_root: str | Path = ROOT,
) -> RenderResult:
    """Execute ``path`` top to bottom in its own folder with nbclient and write it back with its outputs.

    Full mode unless ``test_mode`` (see ``kernel_env``). On success the file gets tidy outputs
    (``tidy_notebook``), ``metadata["grpo_lab"]`` (code hash, library version, wall seconds, threads) and, in
    full mode, the time line of its first markdown cell; the write is atomic. A cell that raises (or runs
    past ``cell_limit_s``) stops the notebook: the result says which cell and why, and the file on disk is
    left exactly as it was. Other notebook metadata is kept as committed (the kernel's version details are not).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from grpo_lab import __version__

    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    committed_meta = json.loads(json.dumps(nb.metadata))
    committed_meta.pop("grpo_lab", None)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    t0 = time.perf_counter()
    progress = _Progress(log, t0, n_code)
    client = NotebookClient(
        nb,
        timeout=cell_limit_s,
        kernel_name="python3",
        allow_errors=False,
        record_timing=False,
        store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=progress.start,
        on_cell_executed=progress.executed,
    )
    try:
        client.execute(env=kernel_env(test_mode))
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        seconds = time.perf_counter() - t0
        lines = str(e).strip().splitlines()
        why = next((line for line in reversed(lines) if line.strip()), type(e).__name__)
        return RenderResult(
            path,
            seconds,
            False,
            f"cell index {progress.running} (from 0, markdown counted) failed "
            f"after {seconds:.0f} s ({why}); "
            f"{path.name} on disk is unchanged\n{e}",
        )
    seconds = time.perf_counter() - t0
    widgets = nb.metadata.get("widgets")
    nb.metadata = nbformat.from_dict(committed_meta)
    nb.metadata["widgets"] = widgets
    tidy_notebook(nb, repo_root)
    info = {"code_sha256": code_sha256(nb), "grpo_lab_version": __version__, "threads": THREADS}
    if test_mode:
        info.update(test_mode=True, test_mode_seconds=round(seconds, 1))
    else:
        info["full_mode_seconds"] = round(seconds, 1)
        set_time_line(nb, seconds)
    nb.metadata["grpo_lab"] = info
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    _write_atomically(path, text)
    return RenderResult(path, seconds, True, size_bytes=len(text.encode("utf-8")))


def notebooks_to_render(root: str | Path = ROOT, only: str | None = None) -> list[Path]:
    """The notebooks of ``notebooks/`` and ``solutions/`` under ``root`` whose file name contains ``only``."""
    found = [p for d in FOLDERS for p in sorted((Path(root) / d).glob("*.ipynb"))]
    return [p for p in found if not only or only in p.name]


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.render [--only SUBSTR] [--test-mode]``: render one notebook after the other.

    Prints each notebook, its progress and its time; a failing notebook is reported and the others still run.
    Exercises are regenerated afterwards when a solution was rendered (the time line is in their first cell).
    Exit status 1 when any notebook failed or none matched.
    """
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m tools.render",
        description="Execute the notebooks and store their outputs (full mode, 2 threads).",
    )
    ap.add_argument("--only", help="render only notebooks whose file name contains this text (e.g. 04a)")
    ap.add_argument("--test-mode", action="store_true", help="tiny models, few steps: to try the pipeline")
    ap.add_argument("--root", default=str(ROOT), help="project root (default: this checkout)")
    args = ap.parse_args(argv)
    todo = notebooks_to_render(args.root, args.only)
    if not todo:
        print(f"no notebook in {', '.join(FOLDERS)} matches {args.only!r}", file=sys.stderr)
        return 1
    results, start = [], time.perf_counter()
    for i, path in enumerate(todo, 1):
        rel = path.relative_to(Path(args.root).resolve()) if path.is_relative_to(Path(args.root).resolve()) else path
        print(f"[{i}/{len(todo)}] {rel} ({'test' if args.test_mode else 'full'} mode) ...", flush=True)
        r = render_notebook(path, test_mode=args.test_mode, repo_root=args.root, log=lambda s: print(s, flush=True))
        results.append(r)
        status = f"{r.seconds:.0f} s, {r.size_bytes / 1e6:.2f} MB" if r.ok else f"FAILED: {r.message}"
        print(f"[{i}/{len(todo)}] {rel}: {status} (total {time.perf_counter() - start:.0f} s)", flush=True)
    if any(r.ok and r.path.parent.name == "solutions" for r in results):
        from tools.build_exercises import build_exercises

        for changed in build_exercises(args.root):
            print(f"regenerated {changed}")
    failed = [r for r in results if not r.ok]
    print(
        f"rendered {len(results) - len(failed)} of {len(results)} notebooks in {time.perf_counter() - start:.0f} s"
        + (f"; failed: {', '.join(r.path.name for r in failed)}" if failed else "")
    )
    return 1 if failed else 0
