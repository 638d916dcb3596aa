"""Supervised warm start: teach a fresh tiny model the answer format (and some arithmetic) before GRPO.

Design notes:

- GRPO can only reinforce what the policy already samples: a random model never emits ``47<eos>``, so
  every group has reward 0 and the advantage is 0 everywhere. A short SFT phase puts the policy where
  rewards vary within groups, which is the regime GRPO learns in (DeepSeekMath and DeepSeek-R1 also
  start from a supervised model).
- The loss is next-token cross-entropy on the completion tokens only (the prompt is given, not learned).
- ``target_accuracy`` stops training early once greedy accuracy on a validation slice of the *training*
  split reaches it: the course wants a deliberately partial model (30-50%) so that GRPO's effect is
  visible, and early stopping makes that level robust to seeds and machines. The held-out split is never
  looked at during training.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import torch
from transformers import get_scheduler

from grpo_lab.evaluation import evaluate
from grpo_lab.tasks import Problem, Task


@dataclass
class SFTResult:
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    val_accuracy: float | None = None


def sft_batch(
    tokenizer,
    problems: list[Problem],
    device=None,
    answers: list[str] | None = None,
    cache: dict[str, list[int]] | None = None,
):
    """Tensors for one SFT batch: ``input_ids``, ``attention_mask`` and ``labels`` (-100 on prompt and padding).

    Each row is ``prompt + answer + EOS``, right-padded. ``cache`` memoizes encodings across batches
    (tokenizing 256 short strings per step is ~15% of a tiny model's step).
    """
    eos = tokenizer.eos_token_id
    cache = {} if cache is None else cache

    def enc(text: str) -> list[int]:
        if text not in cache:
            cache[text] = tokenizer(text, add_special_tokens=False)["input_ids"]
        return cache[text]

    rows, labels = [], []
    answers = answers or [p.answer for p in problems]
    for p, ans in zip(problems, answers):
        prompt = enc(p.prompt)
        answer = enc(ans) + [eos]
        rows.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    att = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    lab = torch.tensor([l + [-100] * (width - len(l)) for l in labels], device=device)
    return ids, att, lab


def _adamw(params, **kwargs) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel where this build has one (same update rule, one kernel per step instead
    of a Python loop over parameters: ~3x cheaper optimizer step for a tiny model on a CPU), else the default."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, **kwargs)


def adamw_cosine(params, learning_rate, warmup_steps, max_steps, *, weight_decay=0.0, fused=True):
    """AdamW (betas 0.9, 0.98) with transformers' ``cosine_with_min_lr`` schedule: linear warmup from 0 over
    ``warmup_steps``, then cosine decay to 10% of ``learning_rate`` at ``max_steps``. ``fused`` uses torch's fused
    kernel where the build has one (same update rule, not the same bits as the loop over parameters)."""
    opt_kwargs = dict(lr=learning_rate, weight_decay=weight_decay, betas=(0.9, 0.98))
    opt = _adamw(params, **opt_kwargs) if fused else torch.optim.AdamW(params, **opt_kwargs)
    sched = get_scheduler(
        "cosine_with_min_lr",
        opt,
        num_warmup_steps=warmup_steps,
        num_training_steps=max_steps,
        scheduler_specific_kwargs={"min_lr_rate": 0.1},
    )
    return opt, sched


def clipped_step(model, opt, sched, loss: torch.Tensor) -> None:
    """Backward ``loss``, clip the gradient norm at 1, one optimizer and one schedule step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()


def sft_train(
    model,
    tokenizer,
    task: Task,
    *,
    max_steps: int = 600,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    warmup_steps: int = 20,
    weight_decay: float = 0.0,
    seed: int = 0,
    target_accuracy: float | None = None,
    eval_every: int = 25,
    val_size: int = 256,
    progress: bool = True,
    callback=None,
    teacher_drop: float = 0.0,
) -> SFTResult:
    """Train ``model`` on ``task``'s training split with teacher forcing; returns an ``SFTResult``.

    AdamW with linear warmup then cosine decay to 10% over ``max_steps``. With ``target_accuracy`` the run
    stops at the first validation check (every ``eval_every`` steps, on ``val_size`` training-split
    problems) whose greedy accuracy reaches it. ``teacher_drop > 0`` trains on a sloppy teacher's labels
    (``AdditionTask.sloppy_answer``: the final carry forgotten with that probability) instead of gold.
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    rng = random.Random(seed)
    torch.manual_seed(seed)
    pool = task.train(20000, seed=seed)
    val = task.train(val_size, seed=seed + 10_000)
    opt, sched = adamw_cosine(model.parameters(), learning_rate, warmup_steps, max_steps, weight_decay=weight_decay)
    history: list[dict] = []
    encodings: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    bar = tqdm(total=max_steps, desc="SFT", disable=not progress, leave=True)
    val_acc, step = None, 0
    for step in range(1, max_steps + 1):
        model.train()
        batch = rng.sample(pool, batch_size)
        answers = [task.sloppy_answer(p, rng, teacher_drop) for p in batch] if teacher_drop > 0 else None
        ids, att, lab = sft_batch(tokenizer, batch, device, answers, cache=encodings)
        loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        clipped_step(model, opt, sched, loss)
        rec = {"step": step, "loss": loss.item(), "lr": sched.get_last_lr()[0]}
        if eval_every and (step % eval_every == 0 or step == max_steps):
            model.eval()
            val_acc = evaluate(model, tokenizer, task, val).accuracy
            rec["val_accuracy"] = val_acc
        history.append(rec)
        if callback:
            callback(rec)
        bar.update(1)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", val_acc="-" if val_acc is None else f"{val_acc:.2f}")
        if target_accuracy is not None and rec.get("val_accuracy", -1) >= target_accuracy:
            break
    bar.close()
    model.eval()
    return SFTResult(step, time.perf_counter() - t0, history, val_acc)
