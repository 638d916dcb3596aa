"""The end-to-end jobs behind the CLI and the notebooks: the main demo (SFT warm start then GRPO) and one
training job for every preset, with either backend.

- ``run_demo``: build a tiny model, SFT it to a partial accuracy, GRPO it (``grpo-lab demo``).
- ``run_grpo``: the from-scratch trainer on a preset, with the data seeds every course run uses.
- ``train_preset``: GRPO with the chosen backend (``grpo_lab`` or ``trl``) on a task the caller built.
- ``run_train``: load the preset's model, build its task with the tokenizer (chat prompts for chat models),
  evaluate (with an honest, generous-budget baseline), train, evaluate, write ``report.json`` and ``final/``
  (``grpo-lab train``, notebook 06).

Every job writes as it goes: a partial ``report.json`` is on disk before training starts, so a crash or
Ctrl-C loses at most the phase in progress.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from grpo_lab.evaluation import EvalResult, evaluate
from grpo_lab.models import build_tiny_model, load_for_preset
from grpo_lab.presets import Preset, choose_preset, get_preset
from grpo_lab.sft import sft_train
from grpo_lab.tasks import Task, get_task

HELDOUT_SEED = 12345
TASK_FILE = "grpo_lab_task.json"  # next to a trained model: its task and settings, so `grpo-lab eval` can rebuild it


def task_spec(name: str, model_dir: str | Path | None = None) -> tuple[str, dict, int | None]:
    """``(task name, task kwargs, evaluation budget or None)`` for ``grpo-lab eval``.

    ``name``: a task (``arithmetic``: its defaults) or a preset (``cpu-smollm2``: that preset's task with its
    settings and system prompt, and its evaluation budget). ``name`` None with ``model_dir`` holding the
    ``TASK_FILE`` a training run wrote: the task that model was trained on. Else ``addition``.
    """
    from grpo_lab.presets import PRESETS

    if name is None and model_dir is not None and (Path(model_dir) / TASK_FILE).exists():
        spec = json.loads((Path(model_dir) / TASK_FILE).read_text())
        return spec["task"], dict(spec.get("task_args") or {}), spec.get("eval_max_new_tokens")
    if name in PRESETS:
        p = PRESETS[name]
        return p.task, dict(p.task_args), p.runtime.get("eval_max_new_tokens")
    return name or "addition", {}, None


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON atomically (a temporary file, then a rename): a reader never sees half a report."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def plot_history(history: list[dict], path: Path, title: str = "GRPO", start_accuracy: float | None = None) -> Path:
    """A PNG with the mean reward per step and the held-out greedy accuracy at each evaluation
    (from ``start_accuracy`` at step 0 when given)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    trained = [r for r in history if "reward" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        [r["step"] for r in trained],
        [r["reward"] for r in trained],
        lw=1,
        alpha=0.6,
        label="mean reward (train samples, T>0)",
    )
    ev = [(r["step"], r["eval_accuracy"]) for r in history if "eval_accuracy" in r]
    if start_accuracy is not None:
        ev.insert(0, (0, start_accuracy))
    if ev:
        ax.plot(*zip(*ev), "o-", lw=2, label="held-out greedy accuracy")
    ax.set_xlabel("GRPO step")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_grpo(
    model,
    tokenizer,
    preset: Preset,
    out: Path | None,
    progress: bool = True,
    callbacks=(),
    *,
    task: Task | None = None,
    reward_funcs: Sequence[Callable] | None = None,
) -> tuple[dict, list[dict]]:
    """GRPO with the from-scratch trainer on ``preset``; returns (summary, history).

    The data are the ones every course run uses (training prompts from seed ``seed + 1``, evaluation
    problems from seed ``seed + 2``), so the demo, notebook 04, the benchmark and the TRL backend are
    comparable. ``task`` defaults to ``get_task(preset.task)``; ``reward_funcs`` to
    ``[trainer.task_reward(task)]`` (1 when ``task.check`` accepts the completion). Mixed precision is the
    preset's ``runtime["compute_dtype"]`` (default fp32), which the trainer applies around each forward pass.
    Saves ``out/final`` (and checkpoints when ``save_steps``) unless ``out`` is None.
    """
    from grpo_lab.trainer import GRPOConfig, GRPOTrainer, task_reward

    task = task or get_task(preset.task)
    cfg = GRPOConfig.from_dict(
        {
            "compute_dtype": preset.runtime.get("compute_dtype") or "fp32",
            **preset.grpo,
            "output_dir": None if out is None else str(Path(out) / "checkpoints"),
        }
    )
    train = task.train(20000, seed=cfg.seed + 1)
    evalp = task.heldout(cfg.eval_size, seed=cfg.seed + 2) if cfg.eval_steps else None
    funcs = list(reward_funcs) if reward_funcs is not None else [task_reward(task)]
    trainer = GRPOTrainer(
        model,
        funcs,
        args=cfg,
        train_dataset=train,
        eval_dataset=evalp,
        processing_class=tokenizer,
        callbacks=callbacks,
        task=task,
    )
    res = trainer.train(progress=progress)
    if out is not None:
        save_model(model, tokenizer, Path(out) / "final")
    return {"seconds": res.seconds, "steps": res.steps, "eval_at_start": trainer.eval_at_start}, res.history


def save_model(model, tokenizer, folder: Path) -> None:
    """``save_pretrained`` of model and tokenizer into ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def train_preset(
    model,
    tokenizer,
    preset: Preset,
    out: str | Path,
    *,
    task: Task | None = None,
    backend: str = "grpo_lab",
    progress: bool = True,
    callbacks: Sequence[Callable] = (),
    reward_funcs: Sequence[Callable] | None = None,
) -> tuple[dict, list[dict]]:
    """GRPO on ``task`` (default ``get_task(preset.task)``) with ``backend``; returns ``(summary, history)``
    and leaves the trained model in ``out/final``.

    ``backend="grpo_lab"``: ``run_grpo`` (the from-scratch trainer); ``backend="trl"``:
    ``trl_backend.train_with_trl`` (TRL 1.16's ``GRPOTrainer``). Both read the same preset, draw the same
    problems and record histories with the same keys. ``callbacks`` get each history record (the
    dashboard's ``update``); ``reward_funcs`` replace the task's correctness reward.
    """
    task = task or get_task(preset.task)
    if backend == "grpo_lab":
        return run_grpo(
            model,
            tokenizer,
            preset,
            Path(out),
            progress=progress,
            callbacks=callbacks,
            task=task,
            reward_funcs=reward_funcs,
        )
    if backend == "trl":
        from grpo_lab.trl_backend import train_with_trl

        return train_with_trl(
            model,
            tokenizer,
            preset,
            Path(out),
            progress=progress,
            callbacks=callbacks,
            task=task,
            reward_funcs=reward_funcs,
        )
    raise ValueError(f"unknown backend {backend!r}: use 'grpo_lab' or 'trl'")


def run_demo(
    out: str | Path = "runs/demo",
    preset_name: str = "cpu-addition",
    progress: bool = True,
    grpo_steps: int | None = None,
    seed: int | None = None,
) -> dict:
    """The main job: build a tiny model, SFT it to a partial accuracy, then GRPO it; write everything under ``out``.

    ``seed`` is the training seed of the whole recipe: it sets the model's initialisation, the SFT data
    order and teacher noise, and GRPO's prompt order and sampling (``None``: the preset's ``grpo["seed"]``).
    The held-out problems never depend on it, so runs with different seeds are scored on the same problems.
    Writes ``out/sft/`` and ``out/final/`` (``save_pretrained`` model + tokenizer), ``out/grpo.png`` and
    ``out/report.json`` with ``accuracy_before``, ``accuracy_after`` (held-out greedy accuracy on problems
    never trained on), ``seconds_sft``, ``seconds_grpo`` and the per-step diagnostics.
    """
    from grpo_lab.env import set_threads

    set_threads()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preset = get_preset(preset_name)
    if grpo_steps is not None:
        preset.grpo["max_steps"] = grpo_steps
    seed = preset.grpo.get("seed", 0) if seed is None else int(seed)
    preset.grpo["seed"] = seed
    preset.sft["seed"] = seed
    t_start = time.perf_counter()
    task = get_task(preset.task)
    heldout = task.heldout_distinct(preset.eval_size, seed=HELDOUT_SEED)
    model, tok = build_tiny_model(preset.model.split(":", 1)[1], seed=seed)

    sk = preset.sft
    print(
        f"[1/2] SFT warm start: {preset.model} on {preset.task}, {sk['max_steps']} steps of {sk['batch_size']} from a "
        f"sloppy teacher (forgets the final carry {sk.get('teacher_drop', 0):.0%} of the time), seed {seed}"
    )
    sft = sft_train(model, tok, task, progress=progress, **preset.sft)
    model.save_pretrained(out / "sft")
    tok.save_pretrained(out / "sft")
    before = evaluate(model, tok, task, heldout)
    report = {
        "preset": preset.name,
        "seed": seed,
        "task": preset.task,
        "model": preset.model,
        "heldout_n": len(heldout),
        "heldout_seed": HELDOUT_SEED,
        "machine": machine_info(),
        "accuracy_before": before.accuracy,
        "seconds_sft": round(sft.seconds, 2),
        "sft_steps": sft.steps,
        "status": "sft-done",
    }
    write_json(out / "report.json", report)
    print(f"      held-out greedy accuracy after SFT: {before.accuracy:.3f}  ({sft.seconds:.0f} s, {sft.steps} steps)")

    print(
        f"[2/2] GRPO: {preset.grpo['max_steps']} steps, G={preset.grpo['num_generations']}, "
        f"lr={preset.grpo['learning_rate']}, loss_type={preset.grpo['loss_type']}"
    )
    summary, history = run_grpo(model, tok, preset, out, progress=progress, task=task)
    after = evaluate(model, tok, task, heldout)
    # Every held-out problem too (1,694 for 2-digit addition): the sample of 500 has a standard error of ~1.3 points.
    every = evaluate(model, tok, task, task.all_problems("test")).accuracy if hasattr(task, "all_problems") else None
    report.update(
        {
            "accuracy_after": after.accuracy,
            "accuracy_after_all_heldout": every,
            "seconds_grpo": round(summary["seconds"], 2),
            "grpo_steps": summary["steps"],
            "grpo_config": preset.grpo,
            "history": history,
            "status": "done",
            "seconds_total": round(time.perf_counter() - t_start, 2),
        }
    )
    write_json(out / "report.json", report)
    plot_history(
        history,
        out / "grpo.png",
        title=f"GRPO on {preset.task} ({preset.name})",
        start_accuracy=summary.get("eval_at_start"),
    )
    print(
        f"      held-out greedy accuracy after GRPO: {after.accuracy:.3f}  ({summary['seconds']:.0f} s)"
        + (f"; on all {len(task.all_problems('test'))} held-out problems: {every:.3f}" if every is not None else "")
    )
    print(f"Wrote {out}/sft, {out}/final, {out}/grpo.png, {out}/report.json")
    return report


def evaluate_preset(
    model, tokenizer, preset: Preset, task: Task, problems, k: int | None = None, max_new_tokens: int | None = None
) -> EvalResult:
    """``evaluation.evaluate`` with the preset's evaluation settings: ``max_new_tokens`` (default
    ``runtime["eval_max_new_tokens"]``, else the task's default budget) and ``k`` samples (default
    ``runtime["eval_k"]``, 0 for the char presets)."""
    rt = preset.runtime
    k = rt.get("eval_k", 0) if k is None else k
    return evaluate(
        model, tokenizer, task, problems, max_new_tokens=max_new_tokens or rt.get("eval_max_new_tokens"), k=k
    )


def _before_after(before: EvalResult, after: EvalResult, n: int, baseline: EvalResult | None = None) -> list[dict]:
    rows = [
        {
            "question": b["question"],
            "gold": b["gold"],
            "before": b["completion"],
            "after": a["completion"],
            "before_correct": b["correct"],
            "after_correct": a["correct"],
        }
        for b, a in zip(before.rows[:n], after.rows[:n])
    ]
    if baseline is not None and baseline is not before:
        for r, g in zip(rows, baseline.rows):
            r.update(before_generous=g["completion"], before_generous_correct=g["correct"])
    return rows


def machine_info(device=None) -> dict:
    """Where a run ran: the processor (or GPU) name, torch's thread count, the torch version and the 1-minute
    load average (other work on the machine slows a run; ``grpo-lab`` records it so timings can be read)."""
    import os
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if device is not None and str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class ProgressBar:
    """A training callback: a tqdm bar whose postfix shows the mean reward, the mean completion length (tokens)
    and the share of zero-variance groups of the latest step, and, every ``every`` steps, one plain line a
    student can read in a log (``step 5/20  reward 0.62  length 18.4 tokens  ...``)."""

    def __init__(self, total: int, every: int = 5, show: bool = True):
        from tqdm.auto import tqdm

        self.total, self.every, self.show = total, max(1, every), show
        self.bar = tqdm(total=total, desc="GRPO", disable=not show)

    def __call__(self, rec: dict) -> None:
        if "reward" not in rec:
            return
        length = rec.get("completion_length", float("nan"))
        self.bar.set_postfix(
            reward=f"{rec['reward']:.2f}",
            length=f"{length:.1f}",
            zero_std=f"{rec.get('frac_reward_zero_std', float('nan')):.2f}",
        )
        self.bar.update(1)
        step = rec.get("step", self.bar.n)
        if self.show and (step % self.every == 0 or step == self.total):
            self.bar.write(
                f"step {step}/{self.total}  reward {rec['reward']:.2f}  length {length:.1f} tokens  "
                f"zero-variance groups {rec.get('frac_reward_zero_std', float('nan')):.2f}  "
                f"{rec.get('step_time', 0):.1f} s/step"
            )

    def close(self) -> None:
        self.bar.close()


def _check_compute_dtype(model, preset: Preset) -> None:
    """Refuse a ``compute_dtype`` the model's device cannot train in, before any evaluation: the trainer's own
    ``ConfigError`` with its one-line fix (``models.compute_dtype_problem``)."""
    from grpo_lab.models import compute_dtype_problem
    from grpo_lab.trainer import ConfigError

    problem = compute_dtype_problem(next(model.parameters()).device, preset.runtime.get("compute_dtype") or "fp32")
    if problem:
        raise ConfigError(problem)


def _prepare(preset_name, steps, seed, compute_dtype, backend) -> tuple[Preset, str]:
    """The preset with the caller's overrides (steps, training seed, compute dtype) and the backend to use."""
    preset = get_preset(preset_name or choose_preset())
    if steps is not None:
        preset.grpo["max_steps"] = steps
    if seed is not None:
        preset.grpo["seed"] = seed
    if compute_dtype is not None:
        preset.runtime["compute_dtype"] = compute_dtype
    return preset, backend or preset.backend


def _untrained_cache_file(preset: Preset, task: Task, heldout, max_new_tokens, k) -> Path:
    """Where the evaluation of the preset's own untrained model on ``heldout`` is remembered: a hash of
    everything that decides its greedy completions (model, its dtype and autocast dtype, task, system prompt, the prompts, the budget, k,
    the versions of grpo-lab, torch and transformers, the thread count)."""
    import hashlib
    import os

    import torch
    import transformers

    import grpo_lab
    from grpo_lab.models import cache_dir

    key = json.dumps(
        [
            preset.model,
            preset.runtime.get("dtype"),
            preset.runtime.get("compute_dtype"),
            task.describe(),
            task.system if task.chat else None,
            [p.prompt for p in heldout],
            max_new_tokens,
            k,
            grpo_lab.__version__,
            torch.__version__,
            transformers.__version__,
            torch.get_num_threads(),
        ]
    )
    root = Path(os.environ.get("GRPO_LAB_EVAL_CACHE") or cache_dir() / "untrained-evals")
    return root / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def evaluate_untrained(
    model, tok, preset: Preset, task: Task, heldout, k=None, max_new_tokens=None, cache: bool = True
) -> tuple[EvalResult, bool]:
    """``evaluate_preset`` of the preset's own untrained model, remembered on disk (``GRPO_LAB_EVAL_CACHE``, default
    ``untrained-evals`` in ``models.cache_dir()``, beside the converted SmolLM2); returns ``(result, from_cache)``.

    Why: greedy decoding is deterministic, so the untrained model scores the same on the same problems with
    the same budget in every run; on ``cpu-smollm2`` the generous-budget baseline (the base model writes about
    60 tokens per answer) takes about as long as the training, and a second training seed need not pay it again.
    """
    f = _untrained_cache_file(preset, task, heldout, max_new_tokens or preset.runtime.get("eval_max_new_tokens"), k)
    if cache and f.exists():
        return EvalResult(**json.loads(f.read_text())), True
    res = evaluate_preset(model, tok, preset, task, heldout, k, max_new_tokens=max_new_tokens)
    if cache:
        from dataclasses import asdict

        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(res)))
        tmp.replace(f)
    return res, False


def _evaluate_before(
    model, tok, preset: Preset, task: Task, heldout, k, report: dict, say, cache: bool
) -> tuple[EvalResult, EvalResult]:
    """The untrained model at the training budget and, when the preset names one, at a generous budget
    (``runtime["baseline_max_new_tokens"]``, the honest baseline: ``accuracy_before``); fills ``report``.
    ``cache``: reuse an earlier run's identical evaluation of the preset's own model (``evaluate_untrained``)."""
    generous = preset.runtime.get("baseline_max_new_tokens")
    at_cap, hit = evaluate_untrained(model, tok, preset, task, heldout, k, cache=cache)
    said = " (remembered from an earlier run: same model, problems and budget)" if hit else ""
    say(
        f"      at the training budget ({at_cap.max_new_tokens} new tokens): {at_cap.accuracy:.3f} "
        f"+- {at_cap.stderr:.3f}, mean length {at_cap.mean_length:.1f} tokens{said}"
    )
    baseline = at_cap
    if generous and generous > at_cap.max_new_tokens:
        baseline, hit = evaluate_untrained(model, tok, preset, task, heldout, 0, max_new_tokens=generous, cache=cache)
        said = " (remembered)" if hit else ""
        say(
            f"      with a generous budget ({generous} new tokens): {baseline.accuracy:.3f} +- {baseline.stderr:.3f}, "
            f"mean length {baseline.mean_length:.1f} tokens  <- the honest baseline{said}"
        )
    report.update(
        {
            "k": at_cap.k,
            "before": baseline.summary(),
            "before_at_cap": at_cap.summary(),
            "accuracy_before": baseline.accuracy,
            "accuracy_before_at_cap": at_cap.accuracy,
            "mean_length_before": round(at_cap.mean_length, 2),
            "status": "evaluated-before",
        }
    )
    return baseline, at_cap


def run_train(
    backend: str | None = None,
    preset_name: str | None = None,
    init: str | None = None,
    steps: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    *,
    eval_size: int | None = None,
    k: int | None = None,
    model_tok=None,
    callbacks: Sequence[Callable] = (),
    n_samples: int = 3,
    seed: int | None = None,
    compute_dtype: str | None = None,
) -> dict:
    """One training job for every preset (``grpo-lab train``): load the model (``models.load_for_preset``),
    build the preset's task with the tokenizer (``tasks.get_task(preset.task, tokenizer, **preset.task_args)``:
    chat prompts for chat models, the same for training and evaluation), evaluate on ``eval_size`` different
    held-out problems (fixed by ``HELDOUT_SEED``, the same for every training seed), train, evaluate again.

    Writes ``out/report.json`` after the first evaluation and again at the end (a crash loses at most the phase
    in progress), and ``out/final`` (``save_pretrained``). The report holds ``task``, ``n_heldout``,
    ``accuracy_before`` (the untrained model with ``runtime["baseline_max_new_tokens"]`` when the preset sets
    a generous budget, else at the evaluation budget), ``accuracy_before_at_cap`` and ``accuracy_after`` (at
    the evaluation budget, ``runtime["eval_max_new_tokens"]``), ``accuracy_after_generous`` (the trained model
    with the generous budget), mean greedy completion lengths before/after, ``samples`` (greedy completions
    before/after), ``seconds_train``, ``seed``, ``machine`` and the history.

    ``backend`` None: the preset's (``preset.backend``). ``seed``: the training seed (``grpo["seed"]``).
    ``compute_dtype``: "fp32" | "bf16" | "fp16", checked against the device before anything is evaluated.
    ``steps``/``eval_size``/``k`` override the preset. The returned dict also carries ``_before``/``_after``.
    """
    from grpo_lab.env import set_threads

    set_threads()
    preset, backend = _prepare(preset_name, steps, seed, compute_dtype, backend)
    out = Path(out or f"runs/train-{preset.name}-{backend}")
    out.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *a, **kw: None)
    t0 = time.perf_counter()
    say(f"[1/4] loading {init or preset.model} ({preset.name}, backend {backend})")
    model, tok = model_tok or load_for_preset(preset, name=init)
    _check_compute_dtype(model, preset)
    task = get_task(preset.task, tokenizer=tok, **preset.task_args)
    heldout = task.heldout_distinct(eval_size or preset.eval_size, seed=HELDOUT_SEED)
    report = {
        "preset": preset.name,
        "backend": backend,
        "model": init or preset.model,
        "task": task.describe(),
        "system_prompt": task.system if task.chat else None,
        "seed": preset.grpo.get("seed", 0),
        "data": getattr(task, "where", "") or f"{task.name} (hash split, seed {HELDOUT_SEED})",
        "n_heldout": len(heldout),
        "heldout_seed": HELDOUT_SEED,
        "machine": machine_info(next(model.parameters()).device),
        "seconds_load": round(time.perf_counter() - t0, 2),
        "grpo_config": preset.grpo,
        "runtime": preset.runtime,
    }
    say(f"[2/4] the untrained model on {len(heldout)} different held-out problems of {task.describe()}")
    baseline, before = _evaluate_before(
        model, tok, preset, task, heldout, k, report, say, model_tok is None and init is None
    )
    write_json(out / "report.json", report)
    g = preset.grpo
    say(
        f"[3/4] GRPO: {g['max_steps']} steps of {g['per_device_train_batch_size'] // g['num_generations']} prompts x "
        f"{g['num_generations']} completions (<= {g['max_completion_length']} tokens), lr {g['learning_rate']}, seed {g['seed']}"
    )
    bar = ProgressBar(g["max_steps"], show=progress)
    try:
        summary, history = train_preset(
            model, tok, preset, out, task=task, backend=backend, progress=False, callbacks=[bar, *callbacks]
        )
    finally:
        bar.close()
    write_json(
        out / "final" / TASK_FILE,
        {
            "task": preset.task,
            "task_args": preset.task_args,
            "preset": preset.name,
            "eval_max_new_tokens": preset.runtime.get("eval_max_new_tokens"),
        },
    )
    say(f"[4/4] the trained model on the same {len(heldout)} problems")
    after = _evaluate_after(model, tok, preset, task, heldout, k, report, (baseline, before), n_samples)
    report.update(
        {
            "seconds_train": round(summary["seconds"], 2),
            "steps": summary["steps"],
            "history": history,
            "machine_after": machine_info(),
            "status": "done",
        }
    )
    write_json(out / "report.json", report)
    _print_outcome(report, baseline, before, after, out, say)
    return {**report, "_before": before, "_after": after}


def _evaluate_after(
    model, tok, preset: Preset, task: Task, heldout, k, report: dict, befores, n_samples: int
) -> EvalResult:
    """The trained model at the evaluation budget and, when there was a generous baseline, at that budget too
    (same problems, same decoding); fills ``report`` with the numbers and the before/after samples."""
    baseline, before = befores
    after = evaluate_preset(model, tok, preset, task, heldout, k)
    report.update(
        {
            "after": after.summary(),
            "accuracy_after": after.accuracy,
            "mean_length_after": round(after.mean_length, 2),
            "samples": _before_after(before, after, n_samples, baseline),
        }
    )
    if baseline is not before:
        generous = evaluate_preset(model, tok, preset, task, heldout, 0, max_new_tokens=baseline.max_new_tokens)
        report.update({"after_generous": generous.summary(), "accuracy_after_generous": generous.accuracy})
    return after


def _print_outcome(report: dict, baseline: EvalResult, before: EvalResult, after: EvalResult, out: Path, say) -> None:
    say(
        f"      at the training budget: {before.accuracy:.3f} -> {after.accuracy:.3f}; mean length "
        f"{before.mean_length:.1f} -> {after.mean_length:.1f} tokens"
    )
    if baseline is not before:
        say(
            f"      against the honest baseline ({baseline.max_new_tokens} new tokens, {baseline.accuracy:.3f}): "
            f"gain {after.accuracy - baseline.accuracy:+.3f} (+- {(baseline.stderr**2 + after.stderr**2) ** 0.5:.3f})"
        )
    print(
        f"accuracy: {report['accuracy_before']:.3f} -> {report['accuracy_after']:.3f} in {report['seconds_train']:.0f} s "
        f"of training ({report['backend']}); wrote {out}/final and {out}/report.json"
    )
