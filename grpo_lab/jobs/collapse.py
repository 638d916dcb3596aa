"""The model-collapse recursion on a tiny char LM (notebook 09): each generation is fine-tuned by SFT on the
previous generation's samples (``distill.train_student``), and the measures of ``hygiene.collapse`` are taken
at every generation.

Shumailov et al., arXiv 2305.17493: ``mode="unverified"`` is the careless loop (the model's own samples, right
or wrong); ``mode="verified"`` keeps only samples the task's checker accepts, mixed with real data, which
reduces the degradation. The three causes can be switched one at a time: ``verify`` (the checker filters the
samples), ``real_fraction`` (fresh real pairs in every generation's mix) and ``accumulate`` (each generation
trains on everything generated so far instead of only the latest samples: Gerstgrasser et al., arXiv 2404.01413).
"""

from __future__ import annotations

import copy
import math
import random
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from grpo_lab.hygiene.collapse import answer_entropy, distinct_n, reference_band, tail_mass

__all__ = ["LMGeneration", "LMCollapseRun", "lm_collapse"]


@dataclass
class LMGeneration:
    generation: int
    accuracy: float  # greedy held-out accuracy
    sample_accuracy: float  # share of the generation's own training samples that are correct
    distinct_1: float  # distinct answers / samples over the generation's sampled answers
    distinct_2_char: float  # character bigram diversity of the same samples
    entropy: float  # mean per-prompt answer entropy (bits) over the samples
    tail: float  # share of sampled numeric answers outside the real answers' band
    kept: int  # training examples used for the next generation


@dataclass
class LMCollapseRun:
    mode: str
    generations: list[LMGeneration] = field(default_factory=list)


def _next_generation_data(task, owners, answers, correct, verify: bool, real_fraction: float, real_seed: int) -> list:
    """The next generation's SFT examples: the non-empty samples (with ``verify``, only those the checker
    accepted), plus fresh real ``(prompt, gold)`` pairs making up ``real_fraction`` of the mix (none at 0)."""
    from grpo_lab.distill.data import DistillExample

    examples = [DistillExample(p.prompt, a) for p, a, ok in zip(owners, answers, correct) if a and (ok or not verify)]
    if real_fraction <= 0:
        return examples
    n_real = (
        int(round(len(examples) * real_fraction / max(1e-9, 1 - real_fraction))) if real_fraction < 1 else len(owners)
    )
    real = task.train(max(n_real, 1), seed=real_seed)
    return examples + [DistillExample(p.prompt, p.answer) for p in real]


# The two named loops of Shumailov et al.'s setting, as (verify, real_fraction).
MODES = {"unverified": (False, 0.0), "verified": (True, 0.5)}


def lm_collapse(
    model,
    tokenizer,
    task,
    *,
    generations: int = 5,
    mode: str = "unverified",
    n_prompts: int = 512,
    samples_per_prompt: int = 4,
    temperature: float = 1.0,
    steps_per_generation: int = 150,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    real_fraction: float | None = None,
    verify: bool | None = None,
    accumulate: bool = False,
    eval_problems=None,
    tail: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> LMCollapseRun:
    """The model-collapse recursion on a char LM (generation 0 = ``model``, e.g. an SFT'd addition model).

    Each generation samples ``samples_per_prompt`` answers at ``temperature`` for ``n_prompts`` fresh
    training prompts, records the measures, and fine-tunes a copy of itself into the next generation:

    - ``mode="unverified"``: SFT on all its own samples, right or wrong (the careless loop).
    - ``mode="verified"``: SFT only on samples ``task.check`` accepts, mixed with real ``(prompt, gold)``
      pairs so that real data is ``real_fraction`` (default 0.5) of the mix (Shumailov et al. kept 10%, which
      reduced the degradation).

    ``verify`` and ``real_fraction``, when given, override what ``mode`` sets, so each cause can be measured
    alone (``mode`` then only names the run). ``accumulate=True``: generation ``g + 1`` trains on the examples
    of generations ``0..g`` together (Gerstgrasser et al., arXiv 2404.01413: accumulating data instead of
    replacing it avoids collapse), with the same number of SFT steps, so only the data differs. A generation
    left with no example (nothing verified, no real data) is carried over unchanged.

    Why one function: the recursion is one loop whose every step feeds the next (sample, measure, build the next
    generation's data, train); split up, the state it threads (model, pool, generator) would travel in arguments.

    Measures per generation (``LMGeneration``): greedy held-out accuracy, share of correct samples, distinct-1
    (distinct answers / samples), char distinct-2, mean per-prompt answer entropy, tail mass of numeric answers
    outside the real answers' central ``1 - tail`` band. Returns an ``LMCollapseRun``; ``model`` is unchanged.
    """
    if mode not in MODES and (verify is None or real_fraction is None):
        raise ValueError(f"mode={mode!r}: use 'unverified' or 'verified', or give both verify= and real_fraction=")
    verify = MODES.get(mode, (verify, real_fraction))[0] if verify is None else verify
    real_fraction = MODES.get(mode, (verify, real_fraction))[1] if real_fraction is None else real_fraction
    if not 0 <= real_fraction <= 1:
        raise ValueError(f"real_fraction={real_fraction}: a share of the mix, between 0 and 1")
    eval_problems = eval_problems or task.heldout(300, seed=seed + 1)
    band = reference_band([float(p.answer) for p in task.train(4000, seed=seed + 2)], tail)
    current = copy.deepcopy(model).eval()
    run = LMCollapseRun(mode)
    gen = torch.Generator().manual_seed(seed)
    sampling = dict(samples_per_prompt=samples_per_prompt, temperature=temperature, generator=gen)
    bar = tqdm(total=generations + 1, desc=f"collapse ({mode})", disable=not progress)
    pool: list = []  # with accumulate: every generation's examples so far
    for g in range(generations + 1):
        problems = task.train(n_prompts, seed=seed * 1000 + g)
        answers, owners, correct = _sample(current, tokenizer, task, problems, **sampling)
        examples = _next_generation_data(task, owners, answers, correct, verify, real_fraction, seed * 1000 + g + 500)
        if accumulate:
            pool += examples
            examples = list(pool)
        run.generations.append(
            _measure(g, current, tokenizer, task, eval_problems, answers, correct, samples_per_prompt, band, examples)
        )
        bar.update(1)
        bar.set_postfix(acc=f"{run.generations[-1].accuracy:.2f}")
        if g == generations:
            break
        if not examples:  # the checker accepted nothing and no real data was asked for: nothing to learn from
            continue
        random.Random(seed + g).shuffle(examples)
        sft = dict(max_steps=steps_per_generation, batch_size=batch_size, learning_rate=learning_rate)
        current = _next_generation(current, tokenizer, examples, seed=seed + g, **sft)
    bar.close()
    return run


def _sample(model, tokenizer, task, problems, *, samples_per_prompt, temperature, generator):
    """``samples_per_prompt`` answers per problem at ``temperature``: ``(answers, owners, correct)``, flat."""
    from grpo_lab.rollout import sample_groups

    r = sample_groups(
        model,
        tokenizer,
        [p.prompt for p in problems],
        samples_per_prompt,
        max_completion_length=6,
        temperature=temperature,
        generator=generator,
    )
    answers = [t.strip() for t in r.texts]
    owners = [p for p in problems for _ in range(samples_per_prompt)]
    return answers, owners, [task.check(p, a) for p, a in zip(owners, answers)]


def _measure(g, model, tokenizer, task, eval_problems, answers, correct, per_prompt, band, examples) -> LMGeneration:
    """Generation ``g``'s record: held-out greedy accuracy and the measures of its own samples."""
    from grpo_lab.evaluation import evaluate

    entropies = [answer_entropy(answers[i : i + per_prompt]) for i in range(0, len(answers), per_prompt)]
    numbers = [float(a) if re.fullmatch(r"-?\d+", a) else math.nan for a in answers]
    return LMGeneration(
        g,
        evaluate(model, tokenizer, task, eval_problems).accuracy,
        sum(correct) / len(correct),
        distinct_n(answers, 1),
        distinct_n(answers, 2, unit="char"),
        float(np.mean(entropies)),
        tail_mass(numbers, *band),
        len(examples),
    )


def _next_generation(model, tokenizer, examples, *, seed, **sft):
    """A copy of ``model`` fine-tuned on ``examples`` by ``distill.train_student`` (no warmup), in eval mode."""
    from grpo_lab.distill.student import train_student

    nxt = copy.deepcopy(model)
    train_student(nxt, tokenizer, examples, warmup_steps=0, seed=seed, progress=False, **sft)
    return nxt.eval()
