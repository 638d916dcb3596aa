"""How robust is ``grpo-lab demo``? Run the whole recipe (SFT warm start, GRPO, evaluation) over training seeds.

Each seed runs ``grpo_lab.jobs.run_demo(seed=S)`` in its own process, so a seed's result does not depend on
what ran before it in the same interpreter. Prints one row per seed (SFT accuracy, GRPO accuracy on the 500
held-out problems the demo reports and on every held-out problem, seconds per phase) and the distribution
(min, median, max), with the processor, thread count and torch version: results are deterministic on one
machine but differ across processors, so compare recipes over seeds, never over one run.

    python benchmarks/demo_robustness.py                    # 8 seeds, 2 processes x 1 thread
    python benchmarks/demo_robustness.py --jobs 1 --threads 2   # sequential, 2 threads (the demo's own setting)
    python benchmarks/demo_robustness.py --seeds 0 1 2 --sft '{"max_steps": 300}' --grpo '{"learning_rate": 3e-5}'

Timings with ``--jobs 2`` on a 2-core machine are conservative (each process has one core); note the load
(``uptime``) next to them on a shared machine. ``--sft``/``--grpo`` override preset knobs for exploration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COLUMNS = [
    ("seed", "seed", "{:>6}"),
    ("accuracy_before", "SFT acc", "{:>8.3f}"),
    ("accuracy_after", "GRPO n=500", "{:>10.3f}"),
    ("accuracy_after_all_heldout", "GRPO all", "{:>8.3f}"),
    ("seconds_sft", "SFT s", "{:>7.1f}"),
    ("seconds_train", "GRPO s", "{:>7.1f}"),
    ("seconds_total", "total s", "{:>8.1f}"),
]


def processor_name() -> str:
    """The CPU model as every grpo-lab report names it (``jobs.report.machine_info``)."""
    from grpo_lab.jobs.report import machine_info

    return machine_info()["cpu"]


def run_one(seed: int, out: Path, preset: str, sft: dict, grpo: dict) -> dict:
    """In this process: run the demo for ``seed`` on a copy of the preset with the overrides; return its report."""
    from grpo_lab import presets
    from grpo_lab.jobs import run_demo

    return dict(run_demo(out, presets.get_preset(preset).replace(sft=sft, grpo=grpo), progress=False, seed=seed))


def launch(seed: int, args, root: Path) -> dict:
    """Run one seed in a child process with ``args.threads`` threads; return its report (plus wall time)."""
    out = root / f"seed{seed}"
    env = {**os.environ, "GRPO_LAB_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    cmd = [
        sys.executable,
        __file__,
        "--one",
        str(seed),
        "--out",
        str(out),
        "--preset",
        args.preset,
        "--sft",
        args.sft,
        "--grpo",
        args.grpo,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"seed {seed} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return {"seed": seed, "failed": True}
    rep = json.loads((out / "report.json").read_text())
    rep["wall_s"] = wall
    rep.pop("history", None)
    print(
        f"  seed {seed}: SFT {rep['accuracy_before']:.3f} -> GRPO {rep['accuracy_after']:.3f} "
        f"(all held-out {rep['accuracy_after_all_heldout']:.3f}) in {rep['seconds_total']:.0f} s",
        flush=True,
    )
    return rep


def table(rows: list[dict]) -> str:
    """The per-seed table and min / median / max of every numeric column."""
    ok = [r for r in rows if not r.get("failed")]
    lines = [" ".join(f"{h:>{len(fmt.format(0))}}" for k, h, fmt in COLUMNS)]
    for r in ok:
        lines.append(" ".join(fmt.format(r[k]) for k, _, fmt in COLUMNS))
    for name, f in (("min", min), ("median", statistics.median), ("max", max)):
        if ok:
            lines.append(f"{name:>6} " + " ".join(fmt.format(f([r[k] for r in ok])) for k, _, fmt in COLUMNS[1:]))
    failed = [r["seed"] for r in rows if r.get("failed")]
    if failed:
        lines.append(f"failed seeds: {failed}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=None, help="explicit seeds (default: 0..n-1)")
    ap.add_argument("-n", type=int, default=8, help="number of seeds when --seeds is not given")
    ap.add_argument("--jobs", type=int, default=2, help="processes in parallel")
    ap.add_argument("--threads", type=int, default=None, help="threads per process (default: 2 // jobs, at least 1)")
    ap.add_argument("--preset", default="cpu-addition")
    ap.add_argument("--sft", default="{}", help="JSON overrides of the preset's SFT knobs")
    ap.add_argument("--grpo", default="{}", help="JSON overrides of the preset's GRPO knobs")
    ap.add_argument("--out", default=None, help="where runs and results.json go (default: a temporary folder)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.one is not None:  # child process: one seed
        run_one(args.one, Path(args.out), args.preset, json.loads(args.sft), json.loads(args.grpo))
        return 0

    import torch

    args.threads = args.threads or max(1, 2 // args.jobs)
    seeds = args.seeds if args.seeds else list(range(args.n))
    root = Path(args.out or tempfile.mkdtemp(prefix="demo_robustness_"))
    root.mkdir(parents=True, exist_ok=True)
    machine = {
        "processor": processor_name(),
        "cores": os.cpu_count(),
        "jobs": args.jobs,
        "threads": args.threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    print(
        f"{machine['processor']}, {machine['cores']} cores; {args.jobs} process(es) x {args.threads} thread(s); "
        f"torch {machine['torch']}; load {machine['load_at_start']}; preset {args.preset}, sft {args.sft}, "
        f"grpo {args.grpo}; seeds {seeds}",
        flush=True,
    )
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda s: launch(s, args, root), seeds))
    machine["load_at_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    print(table(rows))
    print(f"load average at start {machine['load_at_start']}, at end {machine['load_at_end']}")
    (root / "results.json").write_text(
        json.dumps(
            {"machine": machine, "sft": json.loads(args.sft), "grpo": json.loads(args.grpo), "rows": rows}, indent=1
        )
    )
    print(f"wrote {root / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
