"""The end-to-end jobs behind the CLI and the notebooks: the main demo (SFT warm start then GRPO) and one
training job for every preset, with either backend.

- ``run_demo``: build a tiny model, SFT it to a partial accuracy, GRPO it (``grpo-lab demo``).
- ``run_grpo``: the from-scratch trainer on a preset, with the data seeds every course run uses.
- ``train_preset``: GRPO with the chosen backend (``grpo_lab`` or ``trl``) on a task the caller built.
- ``run_train``: load the preset's model, build its task with the tokenizer (chat prompts for GSM8K),
  evaluate, train, evaluate, write ``report.json`` and ``final/`` (``grpo-lab train``, notebook 06).

Every job writes as it goes: a partial ``report.json`` is on disk before training starts, so a crash or
Ctrl-C loses at most the phase in progress.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

from grpo_lab.evaluation import EvalResult, evaluate
from grpo_lab.models import build_tiny_model, load_for_preset
from grpo_lab.presets import Preset, choose_preset, get_preset
from grpo_lab.sft import sft_train
from grpo_lab.tasks import Task, get_task

HELDOUT_SEED = 12345


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
    ax.plot([r["step"] for r in trained], [r["reward"] for r in trained], lw=1, alpha=0.6,
            label="mean reward (train samples, T>0)")
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


def run_grpo(model, tokenizer, preset: Preset, out: Path | None, progress: bool = True, callbacks=(), *,
             task: Task | None = None, reward_funcs: Sequence[Callable] | None = None) -> tuple[dict, list[dict]]:
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
    cfg = GRPOConfig.from_dict({"compute_dtype": preset.runtime.get("compute_dtype") or "fp32", **preset.grpo,
                                "output_dir": None if out is None else str(Path(out) / "checkpoints")})
    train = task.train(20000, seed=cfg.seed + 1)
    evalp = task.heldout(cfg.eval_size, seed=cfg.seed + 2) if cfg.eval_steps else None
    funcs = list(reward_funcs) if reward_funcs is not None else [task_reward(task)]
    trainer = GRPOTrainer(model, tokenizer, funcs, train, cfg, task=task, eval_problems=evalp, callbacks=callbacks)
    res = trainer.train(progress=progress)
    if out is not None:
        save_model(model, tokenizer, Path(out) / "final")
    return {"seconds": res.seconds, "steps": res.steps, "eval_at_start": trainer.eval_at_start}, res.history


def save_model(model, tokenizer, folder: Path) -> None:
    """``save_pretrained`` of model and tokenizer into ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def train_preset(model, tokenizer, preset: Preset, out: str | Path, *, task: Task | None = None,
                 backend: str = "grpo_lab", progress: bool = True, callbacks: Sequence[Callable] = (),
                 reward_funcs: Sequence[Callable] | None = None) -> tuple[dict, list[dict]]:
    """GRPO on ``task`` (default ``get_task(preset.task)``) with ``backend``; returns ``(summary, history)``
    and leaves the trained model in ``out/final``.

    ``backend="grpo_lab"``: ``run_grpo`` (the from-scratch trainer); ``backend="trl"``:
    ``trl_backend.train_with_trl`` (TRL 1.16's ``GRPOTrainer``). Both read the same preset, draw the same
    problems and record histories with the same keys. ``callbacks`` get each history record (the
    dashboard's ``update``); ``reward_funcs`` replace the task's correctness reward.
    """
    task = task or get_task(preset.task)
    if backend == "grpo_lab":
        return run_grpo(model, tokenizer, preset, Path(out), progress=progress, callbacks=callbacks, task=task,
                        reward_funcs=reward_funcs)
    if backend == "trl":
        from grpo_lab.trl_backend import train_with_trl

        return train_with_trl(model, tokenizer, preset, Path(out), progress=progress, callbacks=callbacks, task=task,
                              reward_funcs=reward_funcs)
    raise ValueError(f"unknown backend {backend!r}: use 'grpo_lab' or 'trl'")


def run_demo(out: str | Path = "runs/demo", preset_name: str = "cpu-addition", progress: bool = True,
             grpo_steps: int | None = None) -> dict:
    """The main job: build a tiny model, SFT it to a partial accuracy, then GRPO it; write everything under ``out``.

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
    task = get_task(preset.task)
    heldout = task.heldout(preset.eval_size, seed=HELDOUT_SEED)
    model, tok = build_tiny_model(preset.model.split(":", 1)[1], seed=preset.grpo.get("seed", 0))

    print(f"[1/2] SFT warm start: {preset.model} on {preset.task} until {preset.sft.get('target_accuracy')} "
          "validation accuracy (a deliberately partial model)")
    sft = sft_train(model, tok, task, progress=progress, **preset.sft)
    model.save_pretrained(out / "sft")
    tok.save_pretrained(out / "sft")
    before = evaluate(model, tok, task, heldout)
    report = {"preset": preset.name, "task": preset.task, "model": preset.model, "heldout_n": len(heldout),
              "heldout_seed": HELDOUT_SEED, "accuracy_before": before.accuracy, "seconds_sft": round(sft.seconds, 2),
              "sft_steps": sft.steps, "status": "sft-done"}
    write_json(out / "report.json", report)
    print(f"      held-out greedy accuracy after SFT: {before.accuracy:.3f}  ({sft.seconds:.0f} s, {sft.steps} steps)")

    print(f"[2/2] GRPO: {preset.grpo['max_steps']} steps, G={preset.grpo['num_generations']}, "
          f"lr={preset.grpo['learning_rate']}, loss_type={preset.grpo['loss_type']}")
    summary, history = run_grpo(model, tok, preset, out, progress=progress, task=task)
    after = evaluate(model, tok, task, heldout)
    # Every held-out problem too (1,694 for 2-digit addition): the sample of 500 has a standard error of ~1.3 points.
    every = evaluate(model, tok, task, task.all_problems("test")).accuracy if hasattr(task, "all_problems") else None
    report.update({"accuracy_after": after.accuracy, "accuracy_after_all_heldout": every,
                   "seconds_grpo": round(summary["seconds"], 2),
                   "grpo_steps": summary["steps"], "grpo_config": preset.grpo, "history": history, "status": "done"})
    write_json(out / "report.json", report)
    plot_history(history, out / "grpo.png", title=f"GRPO on {preset.task} ({preset.name})",
                 start_accuracy=summary.get("eval_at_start"))
    print(f"      held-out greedy accuracy after GRPO: {after.accuracy:.3f}  ({summary['seconds']:.0f} s)"
          + (f"; on all {len(task.all_problems('test'))} held-out problems: {every:.3f}" if every is not None else ""))
    print(f"Wrote {out}/sft, {out}/final, {out}/grpo.png, {out}/report.json")
    return report


def evaluate_preset(model, tokenizer, preset: Preset, task: Task, problems, k: int | None = None) -> EvalResult:
    """``evaluation.evaluate`` with the preset's evaluation settings: ``runtime["eval_max_new_tokens"]`` (else
    the task's default budget) and ``k`` samples (default ``runtime["eval_k"]``, 0 for the char presets)."""
    rt = preset.runtime
    k = rt.get("eval_k", 0) if k is None else k
    return evaluate(model, tokenizer, task, problems, max_new_tokens=rt.get("eval_max_new_tokens"), k=k)


def _before_after(before: EvalResult, after: EvalResult, n: int) -> list[dict]:
    return [{"question": b["question"], "gold": b["gold"], "before": b["completion"], "after": a["completion"],
             "before_correct": b["correct"], "after_correct": a["correct"]}
            for b, a in zip(before.rows[:n], after.rows[:n])]


def run_train(backend: str = "grpo_lab", preset_name: str | None = None, init: str | None = None,
              steps: int | None = None, out: str | Path | None = None, progress: bool = True, *,
              eval_size: int | None = None, k: int | None = None, model_tok=None, callbacks: Sequence[Callable] = (),
              n_samples: int = 3) -> dict:
    """One training job for every preset: load the model (``models.load_for_preset``: dtype, gradient
    checkpointing, LoRA), build the task with the tokenizer (chat prompts for GSM8K), evaluate on held-out
    problems, train with ``backend``, evaluate again, write ``out/report.json`` and ``out/final``.

    ``preset_name`` None: ``presets.choose_preset()`` (the machine's GSM8K preset). ``init``: start from this
    model (a ``save_pretrained`` folder, ...) instead of the preset's. ``steps``/``eval_size``/``k`` override
    the preset. The report holds ``accuracy_before``/``accuracy_after`` (greedy, the task's checker), the full
    ``before``/``after`` summaries (strict, pass@k, majority@k where computed), ``samples`` (greedy completions
    before/after on the first ``n_samples`` problems), the history, timings and where the data came from.
    The returned dict also carries ``_before``/``_after``, the in-memory ``EvalResult`` objects.
    """
    from grpo_lab.env import set_threads

    set_threads()
    preset = get_preset(preset_name or choose_preset())
    if steps is not None:
        preset.grpo["max_steps"] = steps
    out = Path(out or f"runs/train-{preset.name}-{backend}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model, tok = model_tok or load_for_preset(preset, name=init)
    task = get_task(preset.task, tokenizer=tok)
    heldout = task.heldout(eval_size or preset.eval_size, seed=HELDOUT_SEED)
    report = {"preset": preset.name, "backend": backend, "model": init or preset.model, "task": preset.task,
              "data": getattr(task, "where", "") or f"{task.name} (hash split, seed {HELDOUT_SEED})",
              "heldout_n": len(heldout), "seconds_load": round(time.perf_counter() - t0, 2),
              "grpo_config": preset.grpo, "runtime": preset.runtime}
    before = evaluate_preset(model, tok, preset, task, heldout, k)
    report.update({"k": before.k, "before": before.summary(), "accuracy_before": before.accuracy,
                   "status": "evaluated-before"})
    write_json(out / "report.json", report)
    if progress:
        print(f"before: {before}")
    summary, history = train_preset(model, tok, preset, out, task=task, backend=backend, progress=progress,
                                    callbacks=callbacks)
    after = evaluate_preset(model, tok, preset, task, heldout, k)
    report.update({"after": after.summary(), "accuracy_after": after.accuracy, "seconds_train": round(summary["seconds"], 2),
                   "steps": summary["steps"], "samples": _before_after(before, after, n_samples), "history": history,
                   "status": "done"})
    write_json(out / "report.json", report)
    print(f"accuracy: {before.accuracy:.3f} -> {after.accuracy:.3f} in {summary['seconds']:.0f} s ({backend}); "
          f"wrote {out}/final and {out}/report.json")
    return {**report, "_before": before, "_after": after}
