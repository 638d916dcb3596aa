"""The end-to-end jobs behind the CLI: the main demo (SFT warm start then GRPO) and a preset training run.

Every job writes as it goes: the SFT model and a partial ``report.json`` are on disk before GRPO starts,
so a crash or Ctrl-C loses at most the phase in progress.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from grpo_lab.evaluation import evaluate
from grpo_lab.models import build_tiny_model, load_model
from grpo_lab.presets import Preset, get_preset
from grpo_lab.sft import sft_train
from grpo_lab.tasks import get_task

HELDOUT_SEED = 12345


def _threads() -> None:
    from grpo_lab.env import set_threads

    set_threads()


def write_json(path: Path, data: dict) -> None:
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


def run_grpo(model, tokenizer, preset: Preset, out: Path | None, progress: bool = True, callbacks=()) -> tuple[dict, list[dict]]:
    """GRPO with the from-scratch trainer on ``preset``; returns (summary, history).

    The data are the ones every course run uses (training prompts from seed ``seed + 1``, evaluation
    problems from ``seed + 2``), so the demo, notebook 04 and the benchmark are comparable. Saves
    ``out/final`` (and checkpoints when ``save_steps``) unless ``out`` is None.
    """
    from grpo_lab.trainer import GRPOConfig, GRPOTrainer, task_reward

    task = get_task(preset.task)
    cfg = GRPOConfig.from_dict({**preset.grpo, "output_dir": None if out is None else str(Path(out) / "checkpoints")})
    train = task.train(20000, seed=cfg.seed + 1)
    evalp = task.heldout(cfg.eval_size, seed=cfg.seed + 2)
    trainer = GRPOTrainer(model, tokenizer, [task_reward(task)], train, cfg, task=task, eval_problems=evalp,
                          callbacks=callbacks)
    res = trainer.train(progress=progress)
    if out is not None:
        (Path(out) / "final").mkdir(parents=True, exist_ok=True)
        model.save_pretrained(Path(out) / "final")
        tokenizer.save_pretrained(Path(out) / "final")
    return {"seconds": res.seconds, "steps": res.steps, "eval_at_start": trainer.eval_at_start}, res.history


def run_demo(out: str | Path = "runs/demo", preset_name: str = "cpu-addition", progress: bool = True,
             grpo_steps: int | None = None, seed: int | None = None) -> dict:
    """The main job: build a tiny model, SFT it to a partial accuracy, then GRPO it; write everything under ``out``.

    ``seed`` is the training seed of the whole recipe: it sets the model's initialisation, the SFT data
    order and teacher noise, and GRPO's prompt order and sampling (``None``: the preset's ``grpo["seed"]``).
    The held-out problems never depend on it, so runs with different seeds are scored on the same problems.
    Writes ``out/sft/`` and ``out/final/`` (``save_pretrained`` model + tokenizer), ``out/grpo.png`` and
    ``out/report.json`` with ``accuracy_before``, ``accuracy_after`` (held-out greedy accuracy on problems
    never trained on), ``seconds_sft``, ``seconds_grpo`` and the per-step diagnostics.
    """
    _threads()
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
    heldout = task.heldout(preset.eval_size, seed=HELDOUT_SEED)
    model, tok = build_tiny_model(preset.model.split(":", 1)[1], seed=seed)

    print(f"[1/2] SFT warm start: {preset.model} on {preset.task} until {preset.sft.get('target_accuracy')} "
          "validation accuracy (a deliberately partial model)")
    sft = sft_train(model, tok, task, progress=progress, **preset.sft)
    model.save_pretrained(out / "sft")
    tok.save_pretrained(out / "sft")
    before = evaluate(model, tok, task, heldout)
    report = {"preset": preset.name, "seed": seed, "task": preset.task, "model": preset.model, "heldout_n": len(heldout),
              "heldout_seed": HELDOUT_SEED, "accuracy_before": before.accuracy, "seconds_sft": round(sft.seconds, 2),
              "sft_steps": sft.steps, "status": "sft-done"}
    write_json(out / "report.json", report)
    print(f"      held-out greedy accuracy after SFT: {before.accuracy:.3f}  ({sft.seconds:.0f} s, {sft.steps} steps)")

    print(f"[2/2] GRPO: {preset.grpo['max_steps']} steps, G={preset.grpo['num_generations']}, "
          f"lr={preset.grpo['learning_rate']}, loss_type={preset.grpo['loss_type']}")
    summary, history = run_grpo(model, tok, preset, out, progress=progress)
    after = evaluate(model, tok, task, heldout)
    # Every held-out problem too (1,694 for 2-digit addition): the sample of 500 has a standard error of ~1.3 points.
    every = evaluate(model, tok, task, task.all_problems("test")).accuracy if hasattr(task, "all_problems") else None
    report.update({"accuracy_after": after.accuracy, "accuracy_after_all_heldout": every,
                   "seconds_grpo": round(summary["seconds"], 2),
                   "grpo_steps": summary["steps"], "grpo_config": preset.grpo, "history": history, "status": "done",
                   "seconds_total": round(time.perf_counter() - t_start, 2)})
    write_json(out / "report.json", report)
    plot_history(history, out / "grpo.png", title=f"GRPO on {preset.task} ({preset.name})",
                 start_accuracy=summary.get("eval_at_start"))
    print(f"      held-out greedy accuracy after GRPO: {after.accuracy:.3f}  ({summary['seconds']:.0f} s)"
          + (f"; on all {len(task.all_problems('test'))} held-out problems: {every:.3f}" if every is not None else ""))
    print(f"Wrote {out}/sft, {out}/final, {out}/grpo.png, {out}/report.json")
    return report


def run_train(backend: str, preset_name: str, init: str | None = None, steps: int | None = None,
              out: str | Path | None = None, progress: bool = True) -> dict:
    """Train with either backend from the same starting checkpoint; writes ``out/final`` and ``out/report.json``."""
    _threads()
    preset = get_preset(preset_name)
    if preset.task == "gsm8k":
        # Chat models on GSM8K need the chat template, the math verifier and long completions: the capstone
        # path (notebook 06) handles them; the tiny-task path below would not.
        from grpo_lab.capstone import run_capstone

        if init is not None:
            raise ValueError("--init is for the char-level presets; GSM8K presets load their own model")
        return run_capstone(preset_name, backend=backend, out=out, steps=steps, progress=progress)
    if steps is not None:
        preset.grpo["max_steps"] = steps
    out = Path(out or f"runs/train-{preset.name}-{backend}")
    out.mkdir(parents=True, exist_ok=True)
    task = get_task(preset.task)
    model, tok = load_model(init or preset.model, device="cpu" if preset.hardware == "cpu" else None)
    heldout = task.heldout(preset.eval_size, seed=HELDOUT_SEED)
    before = evaluate(model, tok, task, heldout).accuracy
    t0 = time.perf_counter()
    if backend == "grpo_lab":
        summary, history = run_grpo(model, tok, preset, out, progress=progress)
    elif backend == "trl":
        from grpo_lab.trl_backend import train_with_trl

        summary, history = train_with_trl(model, tok, preset, out, progress=progress)
    else:
        raise ValueError(f"unknown backend {backend!r}: use 'grpo_lab' or 'trl'")
    after = evaluate(model, tok, task, heldout).accuracy
    report = {"backend": backend, "preset": preset.name, "init": init or preset.model, "accuracy_before": before,
              "accuracy_after": after, "seconds": round(time.perf_counter() - t0, 2), "steps": summary["steps"],
              "history": history}
    write_json(out / "report.json", report)
    print(f"accuracy: {before:.3f} -> {after:.3f} in {report['seconds']:.0f} s ({backend}); wrote {out}/final and {out}/report.json")
    return report
