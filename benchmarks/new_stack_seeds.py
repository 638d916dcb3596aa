"""Notebook 10's stack over several training seeds: one run is an anecdote.

Executes a copy of ``notebooks/10_the_new_stack.ipynb`` in full mode once per seed, with the teachers' seed
(warm start, GRPO, prompt order) set to ``K`` and the student-sized warm start's to ``K + 1`` (the stored notebook
is seed 0); the held-out problems and the unlabelled pool are the same for every seed. Prints each run's stage
table and, per stage, the mean accuracy over seeds with the standard error over seeds.

    python -m benchmarks.new_stack_seeds --seeds 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "10_the_new_stack.ipynb"
TEACHERS = "seed=0, verifier=verifier)"
STUDENT = 'format_warm_start(task, "micro", steps=WARM_STEPS, seed=1, tokenizer=tok)'
ROW = re.compile(r"^([a-z0-9-]+)\s+([01]\.\d{3})\s+(0\.\d{3})\s")


def run(seed: int) -> dict[str, float]:
    """Execute notebook 10 with ``seed``; returns {stage: accuracy} read from its printed table."""
    import nbformat
    from nbclient import NotebookClient

    from tools.render.run import kernel_env

    nb = nbformat.read(NB, as_version=4)
    hits = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            for old, new in (
                (TEACHERS, f"seed={seed}, verifier=verifier)"),
                (STUDENT, STUDENT.replace("seed=1", f"seed={seed + 1}")),
            ):
                if old in cell.source:
                    cell.source = cell.source.replace(old, new)
                    hits += 1
            cell.outputs = []
    if hits != 2:
        raise SystemExit("notebook 10 changed: the seed lines this script rewrites were not found")

    env_backup = dict(os.environ)
    os.environ.update(kernel_env(test_mode=False))
    try:
        NotebookClient(nb, timeout=3600, resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    table: dict[str, float] = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and "stages.json" in cell.source:
            for out in cell.outputs:
                for line in out.get("text", "").splitlines():
                    m = ROW.match(line.strip())
                    if m:
                        table[m[1]] = float(m[2])
                        print(line)
    return table


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--with-stored", action="store_true", help="add the stored run (seed 0) read from the notebook")
    args = ap.parse_args(argv)
    runs = {}
    for s in args.seeds:
        t0 = time.perf_counter()
        print(f"--- seed {s}")
        runs[s] = run(s)
        print(f"({time.perf_counter() - t0:.0f} s)")
    if args.with_stored:
        nb = json.loads(NB.read_text())
        runs[0] = {}
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and "stages.json" in "".join(cell["source"]):
                for out in cell.get("outputs", []):
                    for line in "".join(out.get("text", "")).splitlines():
                        m = ROW.match(line.strip())
                        if m:
                            runs[0][m[1]] = float(m[2])
    stages = list(next(iter(runs.values())))
    print(f"\n{'stage':<18}" + "".join(f"{'seed ' + str(s):>9}" for s in runs) + f"{'mean':>8}{'s.e.':>7}")
    for st in stages:
        xs = [runs[s][st] for s in runs if st in runs[s]]
        mean = sum(xs) / len(xs)
        se = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) / len(xs)) if len(xs) > 1 else float("nan")
        print(
            f"{st:<18}" + "".join(f"{runs[s].get(st, float('nan')):>9.3f}" for s in runs) + f"{mean:>8.3f}{se:>7.3f}"
        )


if __name__ == "__main__":
    main()
