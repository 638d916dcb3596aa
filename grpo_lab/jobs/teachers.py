"""GRPO-trained tiny teachers for the distillation notebooks (08, 10), from ``presets.TEACHER_PRESET``.

A teacher is a copy of one SFT warm start trained by ``jobs.run_grpo`` (the from-scratch trainer, the task's
correctness reward). Copy ``k`` of a round trains with seed ``seed + k`` (prompt order and sampling) on prompts
drawn with seed ``seed + 100 + k``: the rule the notebooks' numbers were made with, kept so they do not move
(``run_grpo``'s own rule for a single run is ``seed + 1``).
"""

from __future__ import annotations

import copy
import time

from grpo_lab.jobs.backends import run_grpo
from grpo_lab.presets import TEACHER_PRESET, Preset
from grpo_lab.tasks import Task

__all__ = ["train_teachers", "grpo_seeds", "teacher_data_seed", "format_warm_start", "label_free_teachers"]


def teacher_data_seed(seed: int, k: int) -> int:
    """The seed of teacher ``k``'s training prompts in a round started with ``seed``: ``seed + 100 + k``."""
    return seed + 100 + k


def train_teachers(
    task: Task,
    n_teachers: int = 3,
    *,
    size: str = "micro",
    sft: dict | None = None,
    grpo: dict | None = None,
    seed: int = 0,
    progress: bool = True,
    preset: Preset = TEACHER_PRESET,
):
    """GRPO-trained tiny teachers: one SFT warm start, then one GRPO run per seed.

    The warm start is ``sft.sft_train`` on a fresh ``tiny:<size>`` model (keyword arguments in ``sft``; pass
    ``target_accuracy`` for a deliberately partial model). The teachers are ``grpo_seeds(base, ...)``. Sharing
    the warm start saves the most expensive phase on a CPU; it also makes the teachers' mistakes correlated,
    which limits what voting can gain (notebook 07). Returns ``(teachers, base, tokenizer, info)`` with
    ``info`` a list of dicts (``stage`` ``"sft"`` then ``"grpo-1"``..., ``steps``, ``seconds``; the SFT one
    also ``val_accuracy``).
    """
    from grpo_lab.models import build_tiny_model
    from grpo_lab.sft import sft_train

    base, tok = build_tiny_model(size, seed=seed)
    t0 = time.perf_counter()
    res = sft_train(base, tok, task, seed=seed, progress=progress, **(sft or {}))
    info = [
        {"stage": "sft", "steps": res.steps, "seconds": time.perf_counter() - t0, "val_accuracy": res.val_accuracy}
    ]
    teachers, grpo_info = grpo_seeds(
        base, tok, task, n_teachers, grpo=grpo, seed=seed, progress=progress, preset=preset
    )
    return teachers, base.eval(), tok, info + grpo_info


def format_warm_start(
    task: Task,
    size: str = "micro",
    *,
    steps: int = 800,
    seed: int = 0,
    learning_rate: float = 3e-3,
    batch_size: int = 64,
    tokenizer=None,
    progress: bool = True,
):
    """A fresh ``tiny:<size>`` model trained on Countdown's format-only data (``tasks.countdown.format_examples``):
    the task's prompts with random targets, completed by random valid steps. It learns the format and the
    arithmetic, never how to reach a target, and no solution is read: the label-free starting point of the
    notebooks' stack (a stand-in for a pretrained base model).

    Training: ``distill.train_student`` (sequence-level SFT), ``steps`` batches of ``batch_size`` drawn from
    20,000 training prompts (seed ``seed + 1``). Returns ``(model, tokenizer, info)`` with ``info`` the dict
    ``{"stage": "format-warm-start", "size", "steps", "seconds"}``.
    """
    import random

    from grpo_lab.distill import DistillExample, train_student
    from grpo_lab.models import build_tiny_model
    from grpo_lab.tasks.countdown import format_examples

    if getattr(task, "name", "") != "countdown":
        raise ValueError(f"format_warm_start needs the countdown task (it writes Countdown steps), not {task.name!r}")
    model, tok = build_tiny_model(size, tokenizer=tokenizer, seed=seed)
    rows = format_examples(task.train(20000, seed=seed + 1), random.Random(seed), ops=task.ops)
    examples = [DistillExample(prompt, completion, source="format") for prompt, completion in rows]
    t0 = time.perf_counter()
    train_student(
        model,
        tok,
        examples,
        max_steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        progress=progress,
        desc=f"format warm start ({size})",
    )
    info = {"stage": "format-warm-start", "size": size, "steps": steps, "seconds": time.perf_counter() - t0}
    return model.eval(), tok, info


def label_free_teachers(
    task: Task,
    n_teachers: int = 3,
    *,
    size: str = "tiny",
    warm_steps: int = 800,
    grpo: dict | None = None,
    seed: int = 0,
    progress: bool = True,
    preset: Preset = TEACHER_PRESET,
    verifier=None,
):
    """Teachers that never saw a label: ``format_warm_start`` then ``grpo_seeds`` with the task's verifier as
    the reward (for Countdown it reads only the numbers and the target). Returns ``(teachers, base,
    tokenizer, info)`` like ``train_teachers``. The reward is ``verifier.reward()`` (default a new
    ``LabelFreeVerifier(task)``, which refuses a task whose check needs a gold answer)."""
    from grpo_lab.tasks.label_free import LabelFreeVerifier

    verifier = verifier or LabelFreeVerifier(task)
    base, tok, warm = format_warm_start(task, size, steps=warm_steps, seed=seed, progress=progress)
    teachers, grpo_info = grpo_seeds(
        base,
        tok,
        task,
        n_teachers,
        grpo=grpo,
        seed=seed,
        progress=progress,
        preset=preset,
        reward_funcs=[verifier.reward()],
    )
    return teachers, base, tok, [warm, *grpo_info]


def grpo_seeds(
    model,
    tokenizer,
    task: Task,
    n: int,
    *,
    grpo: dict | None = None,
    seed: int = 0,
    progress: bool = True,
    label: str = "grpo",
    preset: Preset = TEACHER_PRESET,
    reward_funcs=None,
):
    """``n`` GRPO-trained copies of ``model`` (left unchanged), one per seed: the teachers of one round.

    Each copy is trained by ``run_grpo`` on ``preset.grpo`` (``TEACHER_PRESET``: lr 1e-4, 8 per group, 64
    completions, 100 steps) updated with ``grpo`` (``GRPOConfig`` fields, TRL names); copy k uses seed
    ``seed + k`` and training prompts from ``teacher_data_seed(seed, k)``. Returns ``(models, info)``: the
    trained copies in eval mode and one dict per run (``stage`` = ``f"{label}-{k+1}"``, ``steps``,
    ``seconds``, ``frac_reward_zero_std``: the mean share of groups whose rewards were all equal, which give
    GRPO no signal). Used for the teachers (``train_teachers``) and to GRPO a student again (notebook 10).
    ``reward_funcs`` replaces the task's correctness reward (``LabelFreeVerifier.reward()``: a reward that reads
    no gold answer).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    models, info = [], []
    for k in range(n):
        member = copy.deepcopy(model)
        recipe = preset.replace(grpo={**(grpo or {}), "seed": seed + k})
        t0 = time.perf_counter()
        _, history = run_grpo(
            member,
            tokenizer,
            recipe,
            None,
            progress=progress,
            task=task,
            data_seed=teacher_data_seed(seed, k),
            reward_funcs=reward_funcs,
        )
        zero = [h["frac_reward_zero_std"] for h in history if "frac_reward_zero_std" in h]
        info.append(
            {
                "stage": f"{label}-{k + 1}",
                "steps": recipe.grpo["max_steps"],
                "seconds": time.perf_counter() - t0,
                "frac_reward_zero_std": sum(zero) / len(zero) if zero else float("nan"),
            }
        )
        models.append(member.eval())
    return models, info
