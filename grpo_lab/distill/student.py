"""The student trainer: sequence-level KD (SFT on the teachers' text) or token-level KD (match their distributions).

The loop is off-policy: teacher-forced on the examples' text (the ensemble's voted answers or rationales),
short, with a progress bar. Batches come from ``grpo_lab.sft.sft_batch``, the same builder as the SFT warm
start, so a distilled student and a warm-started one see identical ``prompt + completion + EOS`` rows. The
on-policy counterpart (the student samples, the teacher scores) is TRL's ``DistillationTrainer``, with the
same ``beta`` convention as ``grpo_lab.distill.kd``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from grpo_lab.distill.data import DistillExample
from grpo_lab.distill.kd import check_same_vocabulary, kd_loss, mix_teachers
from grpo_lab.sft import adamw_cosine, clipped_step, sft_batch
from grpo_lab.tasks import Problem, Task

__all__ = ["distill_batch", "StudentResult", "train_student", "kd_eval_loss"]


def distill_batch(tokenizer, examples: Sequence[DistillExample], device=None, cache: dict | None = None):
    """``(input_ids, attention_mask, labels, completion_mask, weights)`` for ``prompt + completion + EOS`` rows.

    The rows, right padding and ``labels`` (-100 on prompt and padding) are ``grpo_lab.sft.sft_batch``'s.
    ``completion_mask = labels[:, 1:] != -100`` (float, ``[B, L-1]``): position ``p`` predicts token ``p + 1``,
    so the mask is aligned with ``logits[:, :-1]`` and the targets are ``labels[:, 1:]``. ``weights``: each
    example's ``weight``, ``[B]``. Raises ``ValueError`` when a prompt or a completion encodes to no token
    (the completion must give at least one supervised token besides EOS).
    """
    examples = list(examples)
    if not examples:
        raise ValueError("no examples to batch")
    ids, att, labels = sft_batch(tokenizer, examples, device, [e.completion for e in examples], cache)
    cm = (labels[:, 1:] != -100).float()
    for b, e in enumerate(examples):
        if labels[b, 0] != -100 or cm[b].sum() < 2:
            which = "prompt" if labels[b, 0] != -100 else "completion"
            raise ValueError(
                f"example {b} ({e.prompt!r} -> {e.completion!r}): its {which} encodes to no token with "
                "this tokenizer, so it gives no supervised position; drop the example or write the "
                f"{which} in characters the tokenizer knows"
            )
    w = torch.tensor([e.weight for e in examples], dtype=torch.float32, device=device)
    return ids, att, labels, cm, w


@dataclass
class StudentResult:
    """``steps`` taken, wall-clock ``seconds``, and one ``history`` record per step (``loss``, ``ce``, ``kd``,
    ``eval_accuracy`` when evaluated)."""

    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def _student_loss(
    student, batch, teachers, teacher_weights, beta, temperature, ce_weight
) -> tuple[torch.Tensor, dict]:
    """One batch's loss and its parts: example-weighted mean of per-example CE on the completion; with
    ``teachers``, ``kd_loss`` against their mixture plus ``ce_weight`` times that CE."""
    ids, att, labels, cm, w = batch
    logits = student(input_ids=ids, attention_mask=att).logits[:, :-1].float()  # [B, L-1, V]
    tok_ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="none"
    ).view_as(cm)
    per_ex = (tok_ce * cm).sum(1) / cm.sum(1).clamp(min=1)  # [B]
    ce = (w * per_ex).sum() / w.sum().clamp(min=1e-8)
    parts = {"ce": float(ce.detach())}
    if not teachers:
        return ce, parts
    with torch.no_grad():
        t_logits = [t(input_ids=ids, attention_mask=att).logits[:, :-1] for t in teachers]
        target = mix_teachers(t_logits, teacher_weights, temperature)
    kd = kd_loss(logits, teacher_logprobs=target, beta=beta, temperature=temperature, mask=cm)
    parts["kd"] = float(kd.detach())
    return kd + ce_weight * ce, parts


def _check_inputs(student, examples, teachers) -> torch.device:
    """Refuse an empty training set and teachers with another vocabulary; put the teachers in eval mode."""
    if not examples:
        raise ValueError("no training examples: did the verifier or the agreement threshold drop everything?")
    for t in teachers or []:
        check_same_vocabulary(student, t)
        t.eval()
    return next(student.parameters()).device


def train_student(
    student,
    tokenizer,
    examples: Sequence[DistillExample],
    *,
    teachers: Sequence | None = None,
    teacher_weights: Sequence[float] | None = None,
    beta: float = 0.0,
    temperature: float = 1.0,
    ce_weight: float = 0.0,
    max_steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    warmup_steps: int = 20,
    seed: int = 0,
    task: Task | None = None,
    eval_problems: Sequence[Problem] | None = None,
    eval_every: int = 100,
    progress: bool = True,
    desc: str = "distill",
) -> StudentResult:
    """Train ``student`` on ``examples``: sequence-level KD without ``teachers``, token-level KD with them.

    - Sequence-level (``teachers=None``): per-example cross-entropy on the completion tokens (mean over the
      example's tokens), weighted by ``DistillExample.weight`` and averaged over the batch: the weighted sum of
      TinyLLM's per-teacher losses when the examples come from ``rationale_dataset``.
    - Token-level (``teachers`` given, same vocabulary): teacher-forced on the examples' text, the target at
      each completion position is the ``mix_teachers`` mixture (``teacher_weights``) at ``temperature``, and
      the loss is ``kd_loss(..., beta)`` plus ``ce_weight`` times the cross-entropy on the text itself.

    Optimizer and schedule: ``sft.adamw_cosine``; gradients clipped at 1. Greedy held-out accuracy on
    ``eval_problems`` every ``eval_every`` steps when ``task`` is given; the history records ``loss``, ``kd``, ``ce``.
    """
    from tqdm.auto import tqdm

    from grpo_lab.evaluation import evaluate

    device = _check_inputs(student, examples, teachers)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    # torch's default weight decay (0.01) and the loop kernel: the settings the course's students were trained with
    opt, sched = adamw_cosine(
        student.parameters(), learning_rate, warmup_steps, max_steps, weight_decay=0.01, fused=False
    )
    history, t0 = [], time.perf_counter()
    with tqdm(total=max_steps, desc=desc, disable=not progress) as bar:
        examples, cache = list(examples), {}
        for step in range(1, max_steps + 1):
            batch = distill_batch(tokenizer, rng.sample(examples, min(batch_size, len(examples))), device, cache)
            student.train()
            loss, rec = _student_loss(student, batch, teachers, teacher_weights, beta, temperature, ce_weight)
            clipped_step(student, opt, sched, loss)
            rec = {"step": step, **rec, "loss": float(loss.detach())}
            if task is not None and eval_problems and eval_every and (step % eval_every == 0 or step == max_steps):
                rec["eval_accuracy"] = evaluate(student.eval(), tokenizer, task, list(eval_problems)).accuracy
            history.append(rec)
            bar.update(1)
            bar.set_postfix({k: f"{rec[k]:.3f}" for k in ("loss", "eval_accuracy") if k in rec})
    student.eval()
    return StudentResult(max_steps, time.perf_counter() - t0, history)


@torch.no_grad()
def kd_eval_loss(
    student,
    teachers: Sequence,
    tokenizer,
    examples: Sequence[DistillExample],
    *,
    beta: float = 0.0,
    temperature: float = 1.0,
    teacher_weights: Sequence[float] | None = None,
) -> float:
    """The token-level KD loss of ``student`` against the teacher mixture on ``examples`` (no update):
    ``kd_loss(student, mix_teachers(teachers), beta)`` over the completion positions of ``distill_batch``."""
    device = next(student.parameters()).device
    ids, att, _, cm, _ = distill_batch(tokenizer, examples, device)
    s = student(input_ids=ids, attention_mask=att).logits[:, :-1]
    target = mix_teachers(
        [t(input_ids=ids, attention_mask=att).logits[:, :-1] for t in teachers], teacher_weights, temperature
    )
    return float(kd_loss(s, teacher_logprobs=target, beta=beta, temperature=temperature, mask=cm))
