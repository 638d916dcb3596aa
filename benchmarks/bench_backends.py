"""Benchmark: the from-scratch GRPO trainer against TRL 1.16's GRPOTrainer on the same run.

    .venv/bin/python -m benchmarks.bench_backends [--preset cpu-addition] [--steps 100] [--init runs/demo/sft]
    .venv/bin/python benchmarks/bench_backends.py --steps 50 --profile   # where the time goes, per backend

Both backends start from the same checkpoint (``--init``; default ``runs/demo/sft`` when ``make demo`` has
written it, else a quick SFT warm start with the preset's SFT settings, cached in ``runs/bench_backends/``),
use the same preset knobs, steps and seed, and run one after the other in this process (TRL imported
before any timing). Each is timed around its ``train`` call, which includes the periodic held-out
evaluation both backends do every ``eval_steps``; the table also gives the median time of steps without
an evaluation. Final accuracy: greedy, on ``preset.eval_size`` held-out problems (``jobs.HELDOUT_SEED``).

Prints a table (wall seconds, steps/s, median step, final held-out accuracy) and the speed ratio
(from-scratch steps/s over TRL steps/s); the from-scratch trainer aims at >= 1.4 with accuracy no lower. Writes the
numbers to ``--json`` if given. Timings on a shared 2-core machine are noisy: report the load with them.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from grpo_lab.evaluation import evaluate  # noqa: E402
from grpo_lab.jobs import HELDOUT_SEED, run_grpo  # noqa: E402
from grpo_lab.models import build_tiny_model, load_pretrained_dir  # noqa: E402
from grpo_lab.presets import get_preset  # noqa: E402
from grpo_lab.sft import sft_train  # noqa: E402
from grpo_lab.tasks import get_task  # noqa: E402


def starting_checkpoint(preset, init: str | None, workdir: Path) -> Path:
    """The folder both backends load: ``init``, else ``runs/demo/sft``, else a fresh SFT warm start."""
    if init:
        return Path(init)
    demo = Path("runs/demo/sft")
    if (demo / "config.json").exists():
        return demo
    path = workdir / f"sft-{preset.name}"
    if (path / "config.json").exists():  # a warm start this benchmark trained before
        return path
    print(f"no runs/demo/sft: training a quick SFT warm start into {path} (the preset's SFT settings)...", flush=True)
    model, tok = build_tiny_model(preset.model.split(":", 1)[1], seed=preset.grpo.get("seed", 0))
    sft_train(model, tok, get_task(preset.task), progress=False, **preset.sft)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def run_backend(name: str, init: Path, preset, out: Path, heldout, profile: bool) -> dict:
    """Load ``init`` fresh, train it with backend ``name``, return timings, accuracies and the history."""
    from grpo_lab.trl_backend import train_with_trl

    task = get_task(preset.task)
    model, tok = load_pretrained_dir(init, device="cpu")
    before = evaluate(model, tok, task, heldout).accuracy
    torch.manual_seed(preset.grpo.get("seed", 0))
    fn = run_grpo if name == "grpo_lab" else train_with_trl
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    summary, history = fn(model, tok, copy.deepcopy(preset), out / name, progress=False)
    if prof:
        prof.disable()
    wall = time.perf_counter() - t0
    after = evaluate(model, tok, task, heldout).accuracy
    plain = [r["step_time"] for r in history if "eval_accuracy" not in r]
    res = {
        "backend": name,
        "wall_s": wall,
        "steps": summary["steps"],
        "steps_per_s": summary["steps"] / wall,
        "median_step_s": statistics.median(plain) if plain else float("nan"),
        "accuracy_before": before,
        "accuracy_after": after,
        "history": history,
    }
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(35)
        res["profile"] = s.getvalue()
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="cpu-addition")
    ap.add_argument("--steps", type=int, default=100, help="GRPO steps per backend (default 100)")
    ap.add_argument("--init", default=None, help="starting checkpoint folder (default runs/demo/sft or a quick SFT)")
    ap.add_argument("--order", default="grpo_lab,trl", help="which backend runs first (comma-separated)")
    ap.add_argument("--profile", action="store_true", help="cProfile each run and print the top functions")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)

    from grpo_lab.env import set_threads

    set_threads()
    import trl  # noqa: F401  (import cost outside the timings)

    preset = get_preset(args.preset)
    preset.grpo["max_steps"] = args.steps
    task = get_task(preset.task)
    heldout = task.heldout(preset.eval_size, seed=HELDOUT_SEED)
    work = Path(tempfile.mkdtemp(prefix="bench_backends_"))
    init = starting_checkpoint(preset, args.init, Path("runs/bench_backends"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"preset {preset.name}: {args.steps} steps, G={preset.grpo['num_generations']}, "
        f"batch={preset.grpo['per_device_train_batch_size']} completions, eval every "
        f"{preset.grpo.get('eval_steps')} steps on {preset.grpo.get('eval_size')}; init {init}; "
        f"torch threads {torch.get_num_threads()}; load avg {load:.2f}",
        flush=True,
    )

    results = {}
    for name in args.order.split(","):
        print(f"running {name}...", flush=True)
        results[name] = run_backend(name, init, preset, work, heldout, args.profile)

    print()
    print(f"| backend | wall s | steps/s | median step s | held-out acc before -> after (n={len(heldout)}) |")
    print("| --- | ---: | ---: | ---: | --- |")
    for r in results.values():
        print(
            f"| {r['backend']} | {r['wall_s']:.1f} | {r['steps_per_s']:.2f} | {r['median_step_s']:.3f} | "
            f"{r['accuracy_before']:.3f} -> {r['accuracy_after']:.3f} |"
        )
    ratio = results["grpo_lab"]["steps_per_s"] / results["trl"]["steps_per_s"]
    step_ratio = results["trl"]["median_step_s"] / results["grpo_lab"]["median_step_s"]
    acc_ok = results["grpo_lab"]["accuracy_after"] >= results["trl"]["accuracy_after"]
    print(
        f"\nspeed ratio (from-scratch / TRL): {ratio:.2f}x wall, {step_ratio:.2f}x median step "
        f"(target >= 1.4x); accuracy no lower: {acc_ok}"
    )
    if args.profile:
        for r in results.values():
            print(f"\n=== profile: {r['backend']} (cumulative) ===\n{r['profile']}")
    summary = {
        "preset": preset.name,
        "steps": args.steps,
        "init": str(init),
        "load_avg": load,
        "threads": torch.get_num_threads(),
        "ratio_wall": ratio,
        "ratio_median_step": step_ratio,
        "accuracy_no_lower": acc_ok,
        "results": {k: {kk: vv for kk, vv in v.items() if kk != "profile"} for k, v in results.items()},
    }
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
