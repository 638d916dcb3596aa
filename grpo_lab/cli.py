"""``grpo-lab``: the command line of the course.

- ``grpo-lab demo``: the main job (SFT warm start then GRPO on 2-digit addition, on a CPU).
- ``grpo-lab eval --model {DIR | smollm2} --task {TASK | PRESET} --n 500 --seed 0 [--max-new-tokens K] [--base M]``:
  held-out greedy accuracy on different problems, in the training prompt format (chat models get their template);
  a LoRA run's adapter folder loads over its base model (``--base``: another copy of that base).
- ``grpo-lab train [--preset NAME] [--backend {grpo_lab,trl}] [--seed S] [--compute-dtype {fp32,bf16,fp16}]
  [--init DIR] [--steps N] [--eval-size N] [--out DIR] [--save-steps N] [--resume [DIR]] [--set KEY=VALUE ...]``:
  one job for every preset: evaluate, train, evaluate, ``report.json`` and ``final/`` (``jobs.run_train``).
  No ``--preset``: the one for this machine (``presets.choose_preset``). ``--set`` sets any ``GRPOConfig``
  field (``--set learning_rate=1e-5``) or machine setting (``--set runtime.eval_k=0``), checked by name.
  ``--resume DIR`` continues a run from its latest checkpoint (DIR: its ``--out`` or a ``checkpoint-N``
  folder; plain ``--resume``: the latest in ``--out``); checkpoints are written every ``--save-steps``.

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

# The libraries whose warnings (deprecations, "loading weights" notes) bury the lines a student needs to read.
# Filtered by the module that warns, so grpo-lab's own warnings (a GSPO setting with a token-summing loss, ...)
# still show.
QUIETED = ("transformers", "trl", "accelerate", "datasets", "torch", "huggingface_hub", "tokenizers", "peft")


def _quiet_libraries() -> None:
    import logging
    import warnings

    for name in QUIETED:
        warnings.filterwarnings("ignore", module=rf"{name}(\.|$)")
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

    rep = run_demo(args.out, args.preset, progress=not args.no_progress, grpo_steps=args.steps, seed=args.seed)
    print(f"accuracy_before: {rep['accuracy_before']:.3f}  accuracy_after: {rep['accuracy_after']:.3f}")
    return 0


def cmd_eval(args) -> int:
    from grpo_lab.env import set_threads
    from grpo_lab.evaluation import evaluate
    from grpo_lab.jobs import task_spec
    from grpo_lab.models import load_model
    from grpo_lab.tasks import get_task

    set_threads()
    name, task_args, budget = task_spec(args.task, args.model if os.path.isdir(args.model) else None)
    get_task(name, **task_args)  # an unknown name fails here, before the (slower) model load
    model, tok = load_model(args.model, device="cpu", base=args.base)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    task = get_task(
        name, tokenizer=tok, **task_args
    )  # a chat model gets the training prompt format (tasks.model_prompt)
    problems = task.heldout_distinct(args.n, seed=args.seed)
    res = evaluate(model, tok, task, problems, max_new_tokens=args.max_new_tokens or budget)
    print(
        f"task: {task.describe()}  prompt: {'chat template' if task.chat else 'plain'}  "
        f"max_new_tokens: {res.max_new_tokens}  mean length: {res.mean_length:.1f} tokens"
    )
    print(f"accuracy: {res.accuracy:.3f} +- {res.stderr:.3f} ({sum(res.correct)}/{res.n} different held-out problems)")
    return 0


def parse_settings(pairs) -> tuple[dict, dict]:
    """``--set KEY=VALUE`` pairs as ``(grpo, runtime)`` dicts: ``KEY`` a ``GRPOConfig`` field or
    ``runtime.FIELD``; ``VALUE`` a Python literal (``1e-5``, ``True``, ``None``) or else a string. An unknown
    name raises ``UnknownNameError`` listing the valid ones."""
    import ast

    from grpo_lab.presets import Runtime, check_grpo_names

    grpo, runtime = {}, {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {pair!r}: write KEY=VALUE, e.g. --set learning_rate=1e-5")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if key.startswith("runtime."):
            runtime[key.removeprefix("runtime.")] = value
        else:
            grpo[key] = value
    check_grpo_names(grpo)
    Runtime.check_names(runtime)
    return grpo, runtime


def _cpu_save_steps(preset, args) -> tuple[int | None, int | None]:
    """``(save_steps, keep)``: ``--save-steps`` if given; else the preset's own (the GPU presets save every 50
    steps); else, for a CPU preset, a checkpoint every fifth of the run, keeping only the newest (a SmolLM2
    checkpoint with its Adam moments is 1.6 GB)."""
    if args.save_steps is not None:
        return args.save_steps, None
    if preset.grpo.get("save_steps") or preset.hardware != "cpu":
        return None, None
    return max(1, preset.grpo["max_steps"] // 5), 1


def cmd_train(args) -> int:
    from grpo_lab.presets import PRESETS, choose_preset, get_preset

    if args.list_presets:
        print("\n".join(PRESETS))
        return 0
    from grpo_lab.jobs import previous_run, run_train

    grpo, runtime = parse_settings(args.set)
    prev = previous_run(args.resume) if args.preset is None else {}  # --resume DIR alone repeats DIR's run
    preset = (prev.get("preset") or get_preset(args.preset or choose_preset())).replace(grpo=grpo, runtime=runtime)
    if args.dry_run:
        from grpo_lab.plan import describe_plan

        print(describe_plan(preset, steps=args.steps))
        return 0
    save_steps, keep = _cpu_save_steps(preset, args)
    run_train(
        args.backend or prev.get("backend"),
        preset,
        init=args.init or prev.get("init"),
        steps=args.steps,
        out=args.out,
        progress=not args.no_progress,
        seed=args.seed,
        compute_dtype=args.compute_dtype,
        eval_size=args.eval_size or prev.get("eval_size"),
        save_steps=save_steps,
        keep_checkpoints=keep,
        resume=args.resume,
    )
    return 0


def _add_train_parser(sub) -> None:
    t = sub.add_parser("train", help="GRPO on a preset with either backend")
    t.add_argument("--backend", choices=["grpo_lab", "trl"], default=None, help="default: the preset's")
    t.add_argument("--preset", help="default: the preset for this machine (presets.choose_preset)")
    t.add_argument("--init", default=None, help="starting model folder (default: the preset's model)")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--seed", type=int, default=None, help="training seed (default: the preset's)")
    t.add_argument(
        "--compute-dtype",
        choices=["fp32", "bf16", "fp16"],
        default=None,
        help="autocast dtype of the forward passes (default: the preset's); weights stay fp32",
    )
    t.add_argument("--eval-size", type=int, default=None, help="held-out problems (default: the preset's)")
    t.add_argument("--out", default=None)
    t.add_argument(
        "--save-steps",
        type=int,
        default=None,
        help="a checkpoint every N steps in OUT/checkpoints (default: the preset's; CPU presets: every fifth of the run)",
    )
    t.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="DIR",
        help="continue from the latest checkpoint of DIR (a previous --out or a checkpoint-N folder); "
        "without DIR: of --out",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any GRPOConfig field (--set learning_rate=1e-5) or runtime.FIELD (--set runtime.eval_k=0); repeatable",
    )
    t.add_argument("--list-presets", action="store_true", help="print preset names, one a line")
    t.add_argument("--dry-run", action="store_true", help="print the plan and estimates; build and download nothing")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="grpo-lab", description="grpo-lab: GRPO, verifiers, ensembles and distillation on small models."
    )
    ap.add_argument(
        "--debug", action="store_true", help="show the full traceback of every error (also: GRPO_LAB_DEBUG=1)"
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="the main job: SFT warm start then GRPO on 2-digit addition (CPU, ~3 min)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--preset", default="cpu-addition")
    d.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the preset's)")
    d.add_argument(
        "--seed",
        type=int,
        default=None,
        help="training seed: initialisation, data order, sampling (default: the preset's)",
    )
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("eval", help="held-out greedy accuracy of a model on a task")
    e.add_argument(
        "--model",
        required=True,
        help="a save_pretrained folder (e.g. runs/demo/final; a LoRA run's adapter folder too), tiny:<size>, smollm2",
    )
    e.add_argument(
        "--base",
        default=None,
        help="for a LoRA adapter folder: the base model (a folder or hub name) instead of the one the adapter names",
    )
    e.add_argument(
        "--task",
        default=None,
        help="a task (addition, arithmetic, ...) or a preset whose task to use "
        "(cpu-smollm2); default: the task the model folder was trained on, else addition",
    )
    e.add_argument("--n", type=int, default=500, help="number of different held-out problems")
    e.add_argument("--seed", type=int, default=0, help="which held-out problems (a different seed, fresh problems)")
    e.add_argument(
        "--max-new-tokens", type=int, default=None, help="completion budget (default: the task's or preset's)"
    )
    e.set_defaults(func=cmd_eval)

    _add_train_parser(sub)
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
    from grpo_lab.env import reuse_freed_memory

    reuse_freed_memory()  # this process is ours: keep the memory it frees (grpo_lab.env; the library never does)
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
