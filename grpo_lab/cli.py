"""``grpo-lab``: the command line of the course.

- ``grpo-lab demo``: the main job (SFT warm start then GRPO on 2-digit addition, on a CPU).
- ``grpo-lab eval --model DIR --task addition --n 500 --seed 0``: held-out greedy accuracy.
- ``grpo-lab train --backend {grpo_lab,trl} --preset NAME [--init DIR] [--steps N] [--out DIR]``.

Expected failures (a missing folder, an unknown task, a hub model while offline, a bad config) print one
line that names the fix and exit with status 2; ``GRPO_LAB_DEBUG=1`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys


def _quiet_libraries() -> None:
    # Library warnings (deprecations, "loading weights" bars) bury the lines a student needs to read.
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "trl", "accelerate", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # transformers missing or older: nothing to quiet
        pass


def cmd_demo(args) -> int:
    from grpo_lab.jobs import run_demo

    rep = run_demo(args.out, args.preset, progress=not args.no_progress, grpo_steps=args.steps,
                   seed=args.seed)
    print(f"accuracy_before: {rep['accuracy_before']:.3f}  accuracy_after: {rep['accuracy_after']:.3f}")
    return 0


def cmd_eval(args) -> int:
    from grpo_lab.evaluation import evaluate
    from grpo_lab.jobs import _threads
    from grpo_lab.models import load_model
    from grpo_lab.tasks import get_task

    _threads()
    task = get_task(args.task)  # validate before the (slower) model load
    model, tok = load_model(args.model, device="cpu")
    res = evaluate(model, tok, task, task.heldout(args.n, seed=args.seed))
    print(f"accuracy: {res.accuracy:.3f}")
    return 0


def cmd_train(args) -> int:
    from grpo_lab.presets import PRESETS, get_preset

    if args.list_presets:
        print("\n".join(PRESETS))
        return 0
    if not args.preset:
        raise UsageError("grpo-lab train needs --preset NAME (see grpo-lab train --list-presets)")
    preset = get_preset(args.preset)
    if args.dry_run:
        from grpo_lab.plan import describe_plan

        print(describe_plan(preset, steps=args.steps))
        return 0
    from grpo_lab.jobs import run_train

    run_train(args.backend, args.preset, init=args.init, steps=args.steps, out=args.out, progress=not args.no_progress)
    return 0


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="grpo-lab", description="grpo-lab: GRPO, verifiers, ensembles and distillation on small models.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="the main job: SFT warm start then GRPO on 2-digit addition (CPU, ~3 min)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--preset", default="cpu-addition")
    d.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the preset's)")
    d.add_argument("--seed", type=int, default=None,
                   help="training seed: initialisation, data order, sampling (default: the preset's)")
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("eval", help="held-out greedy accuracy of a model on a task")
    e.add_argument("--model", required=True, help="a save_pretrained folder (e.g. runs/demo/final), tiny:<size>, smollm2")
    e.add_argument("--task", default="addition")
    e.add_argument("--n", type=int, default=500)
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=cmd_eval)

    t = sub.add_parser("train", help="GRPO on a preset with either backend")
    t.add_argument("--backend", choices=["grpo_lab", "trl"], default="grpo_lab")
    t.add_argument("--preset")
    t.add_argument("--init", default=None, help="starting model folder (default: the preset's model)")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--out", default=None)
    t.add_argument("--list-presets", action="store_true", help="print preset names, one a line")
    t.add_argument("--dry-run", action="store_true", help="print the plan and estimates; build and download nothing")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    if os.environ.get("GRPO_LAB_DEBUG"):
        return args.func(args)
    from grpo_lab.models import ModelLoadError
    from grpo_lab.tasks import DatasetFormatError

    try:
        return args.func(args)
    except (ModelLoadError, DatasetFormatError, UsageError, FileNotFoundError) as e:
        print(f"grpo-lab: error: {e}", file=sys.stderr)
    except (KeyError, ValueError) as e:  # unknown task/preset, bad config: our messages name the fix
        msg = e.args[0] if e.args else str(e)
        print(f"grpo-lab: error: {msg}", file=sys.stderr)
    except KeyboardInterrupt:
        print("grpo-lab: interrupted; whatever was written so far is kept", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
