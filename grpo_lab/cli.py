"""``grpo-lab``: the command line of the course.

- ``grpo-lab demo``: the main job (SFT warm start then GRPO on 2-digit addition, on a CPU).
- ``grpo-lab eval --model DIR --task addition --n 500 --seed 0``: held-out greedy accuracy.
- ``grpo-lab train --backend {grpo_lab,trl} --preset NAME [--init DIR] [--steps N] [--out DIR]``: one job for
  every preset (char-level tasks and GSM8K): evaluate, train, evaluate, ``report.json`` (``jobs.run_train``).

Expected failures (a missing folder, an unknown task, a hub model while offline, a bad config: the errors
grpo-lab raises on purpose, ``grpo_lab.errors.GrpoLabError``) print one line that names the fix and exit with
status 2; ``--debug`` (or ``GRPO_LAB_DEBUG=1``) shows their traceback too. Anything else is a bug and keeps
its traceback: turning every ``KeyError`` into one line would hide where it came from.
"""

from __future__ import annotations

import argparse
import os
import sys

from grpo_lab.errors import GrpoLabError, UsageError


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

    rep = run_demo(args.out, args.preset, progress=not args.no_progress, grpo_steps=args.steps)
    print(f"accuracy_before: {rep['accuracy_before']:.3f}  accuracy_after: {rep['accuracy_after']:.3f}")
    return 0


def cmd_eval(args) -> int:
    from grpo_lab.env import set_threads
    from grpo_lab.evaluation import evaluate
    from grpo_lab.models import load_model
    from grpo_lab.tasks import get_task

    set_threads()
    get_task(args.task)  # an unknown name fails here, before the (slower) model load
    model, tok = load_model(args.model, device="cpu")
    task = get_task(args.task, tokenizer=tok)  # GSM8K renders its prompts with the model's chat template
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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="grpo-lab", description="grpo-lab: GRPO, verifiers, ensembles and distillation on small models.")
    ap.add_argument("--debug", action="store_true", help="show the full traceback of every error (also: GRPO_LAB_DEBUG=1)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="the main job: SFT warm start then GRPO on 2-digit addition (CPU, ~3 min)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--preset", default="cpu-addition")
    d.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the preset's)")
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


def _expected(err: BaseException) -> bool:
    """True for the errors grpo-lab raises on purpose (``GrpoLabError``), whose message names the fix."""
    return isinstance(err, GrpoLabError)


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status: 0 done, 2 an expected error (one line on stderr), 130 interrupted.

    Any other exception propagates with its traceback (Python exits with status 1).
    """
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    debug = args.debug or os.environ.get("GRPO_LAB_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("grpo-lab: interrupted; whatever was written so far is kept", file=sys.stderr)
        return 130
    except Exception as err:
        if debug or not _expected(err):
            raise
        print(f"grpo-lab: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
