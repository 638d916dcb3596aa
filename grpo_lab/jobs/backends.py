"""GRPO on a preset with either backend, the way every course run does it: the same data seeds, the same
reward, checkpoints in ``out/checkpoints`` and the trained model in ``out/final``.

- ``run_grpo``: the from-scratch trainer (``trainer.GRPOTrainer``).
- ``train_preset``: ``run_grpo`` or TRL 1.16's ``GRPOTrainer`` (``trl_backend.train_with_trl``), by name.

Both resume: ``resume_from_checkpoint`` True (the latest ``checkpoint-N`` in ``out/checkpoints``) or a
checkpoint folder continues the run where it stopped, with the weights, optimizer, schedule, random state and
history of that step, so the finished run equals one that was never interrupted.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from grpo_lab.checkpoint import latest_checkpoint
from grpo_lab.errors import GrpoLabError, MissingDataError
from grpo_lab.models import save_model  # noqa: F401  (re-exported: jobs.save_model)
from grpo_lab.presets import Preset
from grpo_lab.tasks import Task, get_task

BACKENDS = ("grpo_lab", "trl")


class UnknownBackendError(GrpoLabError, ValueError):
    """A backend name that is not one of ``BACKENDS``."""


def checkpoint_to_resume(resume, out: Path | None) -> Path | None:
    """The checkpoint folder ``resume`` names: None/False -> None; True -> the latest complete ``checkpoint-N``
    in ``out/checkpoints`` (None when there is none yet: the run starts from the beginning); a path -> that
    checkpoint, or the latest one inside it (a previous ``--out`` or its ``checkpoints`` folder). Both backends
    write HF-layout checkpoints (``trainer_state.json``); a torn ``tmp-checkpoint-N`` never counts."""
    if resume is None or resume is False:
        return None
    if resume is True:
        return latest_checkpoint(Path(out) / "checkpoints") if out is not None else None
    path = Path(resume)
    for where in (path, path / "checkpoints"):
        found = latest_checkpoint(where) if where.is_dir() else None
        if found is not None:
            return found
    if (path / "trainer_state.json").is_file():
        return path
    raise MissingDataError(
        f"no checkpoint to resume in {path}: pass a previous --out folder (with checkpoints/checkpoint-N) or a "
        "checkpoint-N folder; checkpoints are written every --save-steps steps"
    )


class KeepLatestCheckpoints:
    """A training callback that deletes every complete ``checkpoint-N`` in ``folder`` but the newest ``keep``
    (TRL's ``save_total_limit``): it runs before the step's own checkpoint is written, so at most ``keep + 1``
    are ever on disk, and the newest complete one always is."""

    def __init__(self, folder: Path, keep: int = 1):
        self.folder, self.keep = Path(folder), max(1, keep)

    def __call__(self, rec: dict) -> None:
        done = [p for p in self.folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
        done.sort(key=lambda p: int(p.name.split("-")[-1]))
        for p in done[: -self.keep]:
            shutil.rmtree(p, ignore_errors=True)


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
    data_seed: int | None = None,
    resume_from_checkpoint=None,
) -> tuple[dict, list[dict]]:
    """GRPO with the from-scratch trainer on ``preset``; returns (summary, history).

    The data are the ones every course run uses (training prompts from seed ``seed + 1``, evaluation
    problems from seed ``seed + 2``), so the demo, notebook 04, the benchmark and the TRL backend are
    comparable; ``data_seed`` replaces ``seed + 1`` (the distillation teachers draw theirs with
    ``seed + 100 + k``, ``jobs.teachers``). ``task`` defaults to ``get_task(preset.task)``; ``reward_funcs``
    to ``[trainer.task_reward(task)]`` (1 when ``task.check`` accepts the completion). Mixed precision is the
    preset's ``runtime.compute_dtype`` (default fp32), which the trainer applies around each forward pass.
    Saves ``out/final`` (and checkpoints in ``out/checkpoints`` every ``grpo["save_steps"]``) unless ``out`` is
    None. ``resume_from_checkpoint``: see the module docstring.
    """
    from grpo_lab.config import GRPOConfig
    from grpo_lab.trainer import GRPOTrainer, task_reward

    task = task or get_task(preset.task)
    cfg = GRPOConfig.from_dict(
        {
            "compute_dtype": preset.runtime.get("compute_dtype") or "fp32",
            **preset.grpo,
            "output_dir": None if out is None else str(Path(out) / "checkpoints"),
        }
    )
    train = task.train(20000, seed=cfg.seed + 1 if data_seed is None else data_seed)
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
    ckpt = checkpoint_to_resume(resume_from_checkpoint, out)
    res = trainer.train(resume_from_checkpoint=ckpt, progress=progress)
    if out is not None:
        save_model(model, tokenizer, Path(out) / "final")
    summary = {"seconds": res.seconds, "steps": res.steps, "eval_at_start": trainer.eval_at_start}
    return {**summary, "resumed_from": None if ckpt is None else str(ckpt)}, res.history


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
    resume_from_checkpoint=None,
) -> tuple[dict, list[dict]]:
    """GRPO on ``task`` (default ``get_task(preset.task)``) with ``backend``; returns ``(summary, history)``
    and leaves the trained model in ``out/final``.

    ``backend="grpo_lab"``: ``run_grpo`` (the from-scratch trainer); ``backend="trl"``:
    ``trl_backend.train_with_trl`` (TRL 1.16's ``GRPOTrainer``). Both read the same preset, draw the same
    problems and record histories with the same keys. ``callbacks`` get each history record (the
    dashboard's ``update``); ``reward_funcs`` replace the task's correctness reward.
    """
    if backend not in BACKENDS:
        raise UnknownBackendError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    task = task or get_task(preset.task)
    kw = dict(progress=progress, callbacks=callbacks, task=task, reward_funcs=reward_funcs)
    if backend == "grpo_lab":
        return run_grpo(model, tokenizer, preset, Path(out), resume_from_checkpoint=resume_from_checkpoint, **kw)
    from grpo_lab.trl_backend import train_with_trl

    ckpt = checkpoint_to_resume(resume_from_checkpoint, Path(out))
    if ckpt is None:
        return train_with_trl(model, tokenizer, preset, Path(out), **kw)
    summary, history = train_with_trl(model, tokenizer, preset, Path(out), resume_from_checkpoint=str(ckpt), **kw)
    return {**summary, "resumed_from": str(ckpt)}, history
