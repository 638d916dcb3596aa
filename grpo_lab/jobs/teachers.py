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

__all__ = ["train_teachers", "grpo_seeds", "teacher_data_seed"]


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
):
    """``n`` GRPO-trained copies of ``model`` (left unchanged), one per seed: the teachers of one round.

    Each copy is trained by ``run_grpo`` on ``preset.grpo`` (``TEACHER_PRESET``: lr 1e-4, 8 per group, 64
    completions, 100 steps) updated with ``grpo`` (``GRPOConfig`` fields, TRL names); copy k uses seed
    ``seed + k`` and training prompts from ``teacher_data_seed(seed, k)``. Returns ``(models, info)``: the
    trained copies in eval mode and one dict per run (``stage`` = ``f"{label}-{k+1}"``, ``steps``,
    ``seconds``). Used for the teachers (``train_teachers``) and to GRPO a student again (notebook 10).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    models, info = [], []
    for k in range(n):
        member = copy.deepcopy(model)
        recipe = preset.replace(grpo={**(grpo or {}), "seed": seed + k})
        t0 = time.perf_counter()
        run_grpo(member, tokenizer, recipe, None, progress=progress, task=task, data_seed=teacher_data_seed(seed, k))
        info.append(
            {"stage": f"{label}-{k + 1}", "steps": recipe.grpo["max_steps"], "seconds": time.perf_counter() - t0}
        )
        models.append(member.eval())
    return models, info
