"""Distillation: fold one teacher, several teachers or a whole voting ensemble into one cheap student.

Two families, both on the course's tiny char models (all of which share one vocabulary):

- **Token-level KD** (Hinton et al., arXiv 1503.02531; generalized JSD from Agarwal et al., "On-Policy
  Distillation of Language Models", arXiv 2306.13649): at every completion position the student matches the
  teacher's whole next-token distribution, not just the sampled token. It needs the teacher's logits over
  the *same* vocabulary, so it raises ``VocabularyMismatchError`` when the vocabularies differ.
- **Sequence-level KD** (Kim & Rush, arXiv 1606.07947): plain supervised fine-tuning on text the teachers
  wrote. Any tokenizer works. With an ensemble the text is the majority-voted answer, optionally filtered by
  a verifier; with rationales, TinyLLM (Tian et al., arXiv 2402.04616) gives each teacher its own prompt
  prefix and sums the per-teacher losses with weights.

Design notes:

- Direction convention follows TRL 1.16 (``DistillationTrainer`` / ``trl.experimental.gkd``): ``beta = 0``
  is the forward KL(teacher || student) (mass-covering: the student spreads over everything the teacher
  allows), ``beta = 1`` the reverse KL(student || teacher) (mode-seeking: the student picks one of the
  teacher's modes), and in between the generalized JSD with mixture ``M = beta * teacher + (1 - beta) *
  student``. ``tests/test_distill.py`` checks equality with TRL's function on random logits.
- Like TRL, the loss is not multiplied by ``temperature ** 2``; Hinton's scaling keeps gradient size
  constant across temperatures and is offered as ``scale_by_t2`` for those who want it.
- Per-token divergences are summed over the vocabulary and averaged over the masked-in tokens (TRL's
  ``batchmean`` with labels), so a batch of long answers and one of short answers weigh tokens alike.
- Multi-teacher targets average teacher *probabilities* (a mixture), not logits: the mixture keeps every
  teacher's modes, which is the point of an ensemble; averaging logits would be a product of experts.
- TRL path: sequence-level distillation is ``trl.SFTTrainer`` on a prompt/completion dataset (see
  ``to_prompt_completion_rows``); token-level on-policy distillation is ``trl.DistillationTrainer`` (the
  student samples, the teacher scores; same ``beta`` convention). The loop here is off-policy (teacher-forced
  on the ensemble's text), short, and shows a progress bar.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from grpo_lab.tasks import Problem, Task


class VocabularyMismatchError(ValueError):
    """Student and teacher do not share a vocabulary, so token-level KD is undefined; use sequence-level KD."""


# --------------------------------------------------------------------------------------------------
# Token-level divergences
# --------------------------------------------------------------------------------------------------


def check_same_vocabulary(student, teacher) -> None:
    """Raise ``VocabularyMismatchError`` unless ``student`` and ``teacher`` share a vocabulary.

    Accepts tokenizers (compares ``get_vocab()``: same token -> same id), models (compares
    ``config.vocab_size``) or logits tensors (compares the last dimension). Token-level KD compares
    distributions id by id; with different vocabularies id 17 means different strings, and the loss would be
    silently meaningless.
    """

    def describe(x):
        if torch.is_tensor(x):
            return ("size", x.shape[-1])
        if hasattr(x, "get_vocab"):
            return ("vocab", x.get_vocab())
        if hasattr(x, "config") and hasattr(x.config, "vocab_size"):
            return ("size", x.config.vocab_size)
        raise TypeError(f"cannot read a vocabulary from {type(x).__name__}")

    (ks, vs), (kt, vt) = describe(student), describe(teacher)
    if ks == kt == "vocab":
        if vs != vt:
            only_s = sorted(set(vs) - set(vt))[:5]
            only_t = sorted(set(vt) - set(vs))[:5]
            moved = [t for t in vs if t in vt and vs[t] != vt[t]][:5]
            raise VocabularyMismatchError(
                f"student and teacher tokenizers differ (student-only tokens {only_s}, teacher-only {only_t}, "
                f"different ids for {moved}): token-level KD needs a shared vocabulary; use sequence-level KD "
                "(SFT on the teacher's text) instead")
        return
    ns = len(vs) if ks == "vocab" else vs
    nt = len(vt) if kt == "vocab" else vt
    if ns != nt:
        raise VocabularyMismatchError(
            f"student vocabulary has {ns} entries, teacher {nt}: token-level KD needs a shared vocabulary; "
            "use sequence-level KD (SFT on the teacher's text) instead")


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision logits (softmax over a vocabulary in fp16 loses the tails); float64 stays."""
    return x if x.dtype == torch.float64 else x.float()


def _masked_mean(per_token: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return per_token.mean()
    m = mask.to(per_token.dtype)
    return (per_token * m).sum() / m.sum().clamp(min=1)


def divergence_per_token(student_logp: torch.Tensor, teacher_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """Generalized JSD between two log-distributions, summed over the last (vocabulary) axis: ``[..., V] -> [...]``.

    With ``p_t = exp(teacher_logp)``, ``p_s = exp(student_logp)``:

    - ``beta == 0``: ``KL(p_t || p_s) = sum_v p_t (log p_t - log p_s)``  (forward KL)
    - ``beta == 1``: ``KL(p_s || p_t)``  (reverse KL)
    - otherwise, with ``M = beta * p_t + (1 - beta) * p_s``:
      ``beta * KL(p_t || M) + (1 - beta) * KL(p_s || M)``  (Agarwal et al., arXiv 2306.13649, Eq. 1; TRL's
      convention). At ``beta = 0.5`` this is the symmetric Jensen-Shannon divergence, bounded by ``log 2``.

    Computed in log space (``logsumexp`` for the mixture) so near-zero probabilities do not produce NaNs.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta={beta} must lie in [0, 1] (0: forward KL, 1: reverse KL, between: generalized JSD)")

    def kl(logp, logq):  # KL(p || q), summed over the vocabulary; 0 * log 0 counts as 0
        p = logp.exp()
        return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(-1)

    if beta == 0.0:
        return kl(teacher_logp, student_logp)
    if beta == 1.0:
        return kl(student_logp, teacher_logp)
    b = torch.tensor(beta, dtype=student_logp.dtype, device=student_logp.device)
    mix = torch.logsumexp(torch.stack([teacher_logp + torch.log(b), student_logp + torch.log1p(-b)]), dim=0)
    return b * kl(teacher_logp, mix) + (1 - b) * kl(student_logp, mix)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None = None, *,
            teacher_logprobs: torch.Tensor | None = None, beta: float = 0.0, temperature: float = 1.0,
            mask: torch.Tensor | None = None, scale_by_t2: bool = False) -> torch.Tensor:
    """Token-level distillation loss (a scalar): the mean over masked-in tokens of ``divergence_per_token``.

    ``student_logits``: ``[..., V]`` (e.g. ``[B, T, V]``). The target is either ``teacher_logits`` (same shape;
    softened by the same ``temperature``) or ``teacher_logprobs`` (already a distribution, e.g. a
    multi-teacher mixture from ``mix_teachers``; used as given). ``mask``: ``[...]``, 1 on completion tokens.
    Student log-probs are ``log_softmax(student_logits / temperature)``. ``beta`` as in TRL: 0 forward KL,
    1 reverse KL, in between generalized JSD. ``scale_by_t2`` multiplies by ``temperature**2`` (Hinton et al.,
    arXiv 1503.02531); TRL does not. Raises ``VocabularyMismatchError`` when the vocabulary axes differ.
    """
    if (teacher_logits is None) == (teacher_logprobs is None):
        raise ValueError("pass exactly one of teacher_logits and teacher_logprobs")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    target = teacher_logprobs if teacher_logprobs is not None else teacher_logits
    check_same_vocabulary(student_logits, target)
    if student_logits.shape != target.shape:
        raise ValueError(f"student {tuple(student_logits.shape)} and teacher {tuple(target.shape)} shapes differ: "
                         "align both on the same completion positions")
    s = F.log_softmax(_upcast(student_logits) / temperature, dim=-1)
    t = _upcast(teacher_logprobs) if teacher_logprobs is not None else F.log_softmax(_upcast(teacher_logits) / temperature, dim=-1)
    loss = _masked_mean(divergence_per_token(s, t, beta), mask)
    return loss * temperature**2 if scale_by_t2 else loss


def forward_kl(student_logits, teacher_logits, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """``KL(teacher || student)`` per token, averaged over ``mask``: ``kd_loss(..., beta=0)``. Mass-covering."""
    return kd_loss(student_logits, teacher_logits, beta=0.0, temperature=temperature, mask=mask)


def reverse_kl(student_logits, teacher_logits, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """``KL(student || teacher)`` per token, averaged over ``mask``: ``kd_loss(..., beta=1)``. Mode-seeking."""
    return kd_loss(student_logits, teacher_logits, beta=1.0, temperature=temperature, mask=mask)


def generalized_jsd(student_logits, teacher_logits, beta: float = 0.5, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """Generalized JSD with mixture ``beta * teacher + (1 - beta) * student`` (arXiv 2306.13649): ``kd_loss(..., beta)``."""
    return kd_loss(student_logits, teacher_logits, beta=beta, temperature=temperature, mask=mask)


def mix_teachers(teacher_logits: Sequence[torch.Tensor], weights: Sequence[float] | None = None,
                 temperature: float = 1.0) -> torch.Tensor:
    """Log-probs of the weighted mixture of teacher distributions: ``log sum_k w_k softmax(z_k / T)``.

    ``teacher_logits``: K tensors of the same shape ``[..., V]``. ``weights``: K non-negative numbers
    (normalized here; default uniform), e.g. each teacher's held-out accuracy. Pass the result to
    ``kd_loss(..., teacher_logprobs=...)`` with the same temperature. Averaging probabilities keeps the
    modes of every teacher (an answer two of three teachers like keeps two thirds of the mass).
    """
    if not teacher_logits:
        raise ValueError("pass at least one teacher")
    for z in teacher_logits[1:]:
        check_same_vocabulary(teacher_logits[0], z)
    k = len(teacher_logits)
    w = torch.tensor([1.0] * k if weights is None else [float(x) for x in weights], dtype=torch.float32)
    if w.numel() != k or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {k} non-negative numbers with a positive sum, got {weights}")
    logps = torch.stack([F.log_softmax(_upcast(z) / temperature, dim=-1) for z in teacher_logits])  # [K, ..., V]
    w = (w / w.sum()).to(device=logps.device, dtype=logps.dtype)
    logw = torch.log(w).view(-1, *([1] * (logps.dim() - 1)))
    return torch.logsumexp(logps + logw, dim=0)


# --------------------------------------------------------------------------------------------------
# Sequence-level data: voted, verified ensemble outputs (with rationales)
# --------------------------------------------------------------------------------------------------


@dataclass
class DistillExample:
    """One supervised example: the student reads ``prompt`` and learns to write ``completion`` (+ EOS).

    ``weight`` multiplies this example's loss (TinyLLM's per-teacher weights); ``source`` names the teacher
    or the rule that produced it; ``agreement`` is the ensemble's vote share when it came from a vote.
    """

    prompt: str
    completion: str
    weight: float = 1.0
    source: str = ""
    agreement: float | None = None


def _majority(answers: Sequence[str | None], weights: Sequence[float] | None = None):
    """The winning answer and its share of the weight, grouping equivalent answers.

    Uses ``grpo_lab.ensemble.majority_vote`` (the course's public voting rule) when that module is present;
    otherwise the same rule inline: ``answers_match`` groups equivalent strings, ties go to the first seen.
    """
    try:
        from grpo_lab.ensemble import majority_vote
    except ImportError:
        majority_vote = None
    if majority_vote is not None:
        v = majority_vote(list(answers), weights=None if weights is None else list(weights))
        return v.answer, float(v.agreement)
    from grpo_lab.rewards import answers_match

    weights = [1.0] * len(answers) if weights is None else list(weights)
    reps: list[str] = []
    tally: list[float] = []
    for a, w in zip(answers, weights):
        if a is None or not str(a).strip():
            continue
        for i, r in enumerate(reps):
            if answers_match(a, r):
                tally[i] += w
                break
        else:
            reps.append(a)
            tally.append(w)
    total = sum(weights)
    if not reps or total <= 0:
        return None, 0.0
    best = max(range(len(reps)), key=lambda i: (tally[i], -i))
    return reps[best], tally[best] / total


@torch.no_grad()
def sample_answers(models: Sequence, tokenizer, problems: Sequence[Problem], *, samples_per_model: int = 1,
                   temperature: float = 0.7, max_completion_length: int = 8, batch_size: int = 256,
                   seed: int = 0) -> list[list[str]]:
    """For each problem, the answers of every model: ``out[i]`` has ``len(models) * samples_per_model`` strings.

    ``samples_per_model == 1`` with ``temperature == 0`` is greedy decoding (each model's single best
    answer); more samples at ``temperature > 0`` add self-consistency votes (Wang et al., arXiv 2203.11171).
    Answers are stripped completions in model order (model 0's samples first).
    """
    from grpo_lab.rollout import sample_groups

    gen = torch.Generator().manual_seed(seed)
    out: list[list[str]] = [[] for _ in problems]
    prompts = [p.prompt for p in problems]
    for m in models:
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i : i + batch_size]
            r = sample_groups(m, tokenizer, chunk, samples_per_model, max_completion_length=max_completion_length,
                              temperature=temperature, do_sample=temperature > 0, generator=gen)
            for j in range(len(chunk)):
                out[i + j].extend(t.strip() for t in r.texts[j * samples_per_model : (j + 1) * samples_per_model])
    return out


def voted_dataset(problems: Sequence[Problem], answers: Sequence[Sequence[str | None]], *,
                  verifier: Callable[[Problem, str], bool] | None = None, min_agreement: float = 0.0,
                  vote_weights: Sequence[float] | None = None) -> tuple[list[DistillExample], dict]:
    """Sequence-level distillation data from an ensemble: one example per problem whose vote survives.

    For problem ``i`` the ensemble's ``answers[i]`` are majority-voted (equivalent answers pooled; optional
    per-answer ``vote_weights``). The example is kept when the vote share is at least ``min_agreement``
    (disagreement is uncertainty) and, if a ``verifier(problem, answer)`` is given, when the verifier
    accepts it (with a verifiable task, ``task.check``). Returns ``(examples, stats)`` with counts of kept,
    dropped for low agreement, dropped by the verifier, and the accuracy of the kept labels when the problems
    carry gold answers (the label noise the student will inherit).
    """
    if len(problems) != len(answers):
        raise ValueError(f"{len(problems)} problems but {len(answers)} answer lists")
    kept: list[DistillExample] = []
    low = rejected = empty = correct_labels = 0
    for p, ans in zip(problems, answers):
        winner, share = _majority(ans, vote_weights)
        if winner is None:
            empty += 1
            continue
        if share < min_agreement:
            low += 1
            continue
        if verifier is not None and not verifier(p, winner):
            rejected += 1
            continue
        correct_labels += int(str(winner).strip() == p.answer)
        kept.append(DistillExample(p.prompt, str(winner).strip(), 1.0, "vote", share))
    stats = {"problems": len(problems), "kept": len(kept), "no_answer": empty, "low_agreement": low,
             "rejected_by_verifier": rejected, "label_accuracy": correct_labels / max(len(kept), 1)}
    return kept, stats


def rationale_dataset(problems: Sequence[Problem], teacher_outputs: dict[str, Sequence[str]], *,
                      prefixes: dict[str, str], weights: dict[str, float] | None = None,
                      answer_of: Callable[[str], str | None] | None = None,
                      verifier: Callable[[Problem, str], bool] | None = None,
                      answer_weight: float = 1.0) -> list[DistillExample]:
    """TinyLLM-style multi-teacher rationale data (Tian et al., arXiv 2402.04616).

    ``teacher_outputs[name][i]`` is teacher ``name``'s completion for ``problems[i]``: a rationale ending in
    an answer. Each teacher gets its own prompt prefix (``prefixes[name]``, e.g. ``"[A]"``), so the student
    learns every teacher's way of reasoning without having to average them into one; each example carries
    the teacher's weight (``weights``, default 1). With a ``verifier`` (and ``answer_of`` to pull the answer
    out of a rationale; default ``rewards.extract_answer``) rationales with wrong answers are dropped. When
    ``answer_weight > 0`` each problem also yields a plain ``prompt -> answer`` example (the majority answer of
    the kept rationales), which is what the student is asked at test time. The total loss of
    ``train_student`` on these examples is then ``answer_weight * L_answer + sum_k w_k * L_rationale_k``.
    """
    from grpo_lab.rewards import extract_answer

    answer_of = answer_of or extract_answer
    weights = weights or {}
    missing = set(teacher_outputs) - set(prefixes)
    if missing:
        raise ValueError(f"no prompt prefix for teacher(s) {sorted(missing)}: one prefix per teacher")
    out: list[DistillExample] = []
    for i, p in enumerate(problems):
        answers = []
        for name, comps in teacher_outputs.items():
            text = comps[i].strip()
            ans = answer_of(text)
            if ans is None or (verifier is not None and not verifier(p, ans)):
                continue
            answers.append(ans)
            out.append(DistillExample(prefixes[name] + p.prompt, text, float(weights.get(name, 1.0)), name))
        if answer_weight > 0 and answers:
            winner, share = _majority(answers)
            out.append(DistillExample(p.prompt, str(winner).strip(), answer_weight, "answer", share))
    return out


def to_prompt_completion_rows(examples: Sequence[DistillExample]) -> list[dict]:
    """Rows ``{"prompt", "completion"}`` for ``trl.SFTTrainer`` (sequence-level KD through TRL)."""
    return [{"prompt": e.prompt, "completion": e.completion} for e in examples]


# --------------------------------------------------------------------------------------------------
# The student trainer
# --------------------------------------------------------------------------------------------------


def example_batch(tokenizer, examples: Sequence[DistillExample], device=None):
    """``(input_ids, attention_mask, completion_mask, weights)`` for ``prompt + completion + EOS`` rows.

    Right-padded. ``completion_mask[b, p] = 1`` where position ``p`` predicts a completion token (so the
    logits at ``p`` are compared with token ``p + 1``): shape ``[B, L-1]``, aligned with ``logits[:, :-1]``.
    """
    eos = tokenizer.eos_token_id
    rows, starts = [], []
    for e in examples:
        pr = tokenizer(e.prompt, add_special_tokens=False)["input_ids"]
        co = tokenizer(e.completion, add_special_tokens=False)["input_ids"] + [eos]
        rows.append(pr + co)
        starts.append(len(pr))
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    att = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    cm = torch.zeros(len(rows), width - 1, device=device)
    for b, (r, s) in enumerate(zip(rows, starts)):
        cm[b, s - 1 : len(r) - 1] = 1.0
    w = torch.tensor([e.weight for e in examples], dtype=torch.float32, device=device)
    return ids, att, cm, w


@dataclass
class StudentResult:
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def train_student(student, tokenizer, examples: Sequence[DistillExample], *, teachers: Sequence | None = None,
                  teacher_weights: Sequence[float] | None = None, beta: float = 0.0, temperature: float = 1.0,
                  ce_weight: float = 0.0, max_steps: int = 300, batch_size: int = 64, learning_rate: float = 3e-3,
                  warmup_steps: int = 20, seed: int = 0, task: Task | None = None,
                  eval_problems: Sequence[Problem] | None = None, eval_every: int = 100, progress: bool = True,
                  desc: str = "distill") -> StudentResult:
    """Train ``student`` on ``examples``: sequence-level KD without ``teachers``, token-level KD with them.

    - Sequence-level (``teachers=None``): per-example cross-entropy on the completion tokens (mean over the
      example's tokens), weighted by ``DistillExample.weight`` and averaged over the batch: the weighted sum of
      TinyLLM's per-teacher losses when the examples come from ``rationale_dataset``.
    - Token-level (``teachers`` given, same vocabulary): teacher-forced on the examples' text, the target at
      each completion position is the ``mix_teachers`` mixture (``teacher_weights``) at ``temperature``, and
      the loss is ``kd_loss(..., beta)`` plus ``ce_weight`` times the cross-entropy on the text itself.

    AdamW, linear warmup then cosine decay to 10%, gradient clipping at 1. Greedy held-out accuracy on
    ``eval_problems`` every ``eval_every`` steps when ``task`` is given. Returns a ``StudentResult`` whose
    history records ``loss`` (and ``kd``/``ce``) per step.
    """
    from tqdm.auto import tqdm

    from grpo_lab.evaluation import evaluate

    if not examples:
        raise ValueError("no training examples: did the verifier or the agreement threshold drop everything?")
    device = next(student.parameters()).device
    if teachers:
        for t in teachers:
            check_same_vocabulary(student, t)
            t.eval()
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(student.parameters(), lr=learning_rate, betas=(0.9, 0.98))

    def lr_at(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        frac = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    history: list[dict] = []
    t0 = time.perf_counter()
    bar = tqdm(total=max_steps, desc=desc, disable=not progress)
    examples = list(examples)
    for step in range(1, max_steps + 1):
        batch = rng.sample(examples, min(batch_size, len(examples)))
        ids, att, cm, w = example_batch(tokenizer, batch, device)
        student.train()
        logits = student(input_ids=ids, attention_mask=att).logits[:, :-1].float()  # [B, L-1, V]
        targets = ids[:, 1:]
        tok_ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none").view_as(cm)
        per_ex = (tok_ce * cm).sum(1) / cm.sum(1).clamp(min=1)                          # [B]
        ce = (w * per_ex).sum() / w.sum().clamp(min=1e-8)
        rec = {"step": step, "ce": float(ce.detach())}
        if teachers:
            with torch.no_grad():
                t_logits = [t(input_ids=ids, attention_mask=att).logits[:, :-1] for t in teachers]
                target = mix_teachers(t_logits, teacher_weights, temperature)
            kd = kd_loss(logits, teacher_logprobs=target, beta=beta, temperature=temperature, mask=cm)
            loss = kd + ce_weight * ce
            rec["kd"] = float(kd.detach())
        else:
            loss = ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        sched.step()
        rec["loss"] = float(loss.detach())
        if task is not None and eval_problems and eval_every and (step % eval_every == 0 or step == max_steps):
            student.eval()
            rec["eval_accuracy"] = evaluate(student, tokenizer, task, list(eval_problems)).accuracy
        history.append(rec)
        bar.update(1)
        post = {"loss": f"{rec['loss']:.3f}"}
        if "eval_accuracy" in rec:
            post["acc"] = f"{rec['eval_accuracy']:.2f}"
        bar.set_postfix(post)
    bar.close()
    student.eval()
    return StudentResult(max_steps, time.perf_counter() - t0, history)


@torch.no_grad()
def kd_eval_loss(student, teachers: Sequence, tokenizer, examples: Sequence[DistillExample], *, beta: float = 0.0,
                 temperature: float = 1.0, teacher_weights: Sequence[float] | None = None) -> float:
    """The token-level KD loss of ``student`` against the teacher mixture on ``examples`` (no update)."""
    device = next(student.parameters()).device
    ids, att, cm, _ = example_batch(tokenizer, list(examples), device)
    s = student(input_ids=ids, attention_mask=att).logits[:, :-1]
    target = mix_teachers([t(input_ids=ids, attention_mask=att).logits[:, :-1] for t in teachers], teacher_weights, temperature)
    return float(kd_loss(s, teacher_logprobs=target, beta=beta, temperature=temperature, mask=cm))



# --------------------------------------------------------------------------------------------------
# Teachers for the notebooks
# --------------------------------------------------------------------------------------------------


def train_teachers(task: Task, n_teachers: int = 3, *, size: str = "micro", sft: dict | None = None,
                   grpo: dict | None = None, seed: int = 0, progress: bool = True):
    """GRPO-trained tiny teachers for the distillation notebooks: one SFT warm start, then one GRPO run per seed.

    The warm start is ``sft.sft_train`` on a fresh ``tiny:<size>`` model (keyword arguments in ``sft``; pass
    ``target_accuracy`` for a deliberately partial model). Each teacher is a copy of it trained by the
    from-scratch ``trainer.GRPOTrainer`` with ``trainer.task_reward(task)``; ``grpo`` holds ``GRPOConfig``
    fields (TRL names) on top of a small-model recipe (lr 1e-4, 8 per group, 64 completions), and teacher k uses
    ``seed + k`` for its prompt order and sampling, so the teachers differ the way seeds of one recipe differ. Sharing the warm start
    saves the most expensive phase on a CPU; it also makes the teachers' mistakes correlated, which limits
    what voting can gain (notebook 07). Returns ``(teachers, base, tokenizer, info)`` with ``info`` a list of dicts
    (``seconds``, ``sft_steps``/``grpo_steps``).
    """
    import copy as _copy

    from grpo_lab.models import build_tiny_model
    from grpo_lab.sft import sft_train
    from grpo_lab.trainer import GRPOConfig, GRPOTrainer, task_reward

    base, tok = build_tiny_model(size, seed=seed)
    t0 = time.perf_counter()
    res = sft_train(base, tok, task, seed=seed, progress=progress, **(sft or {}))
    info = [{"stage": "sft", "steps": res.steps, "seconds": time.perf_counter() - t0, "val_accuracy": res.val_accuracy}]
    # A small learning rate: larger ones collapse an early-stopped warm start (notebook 04 measures this).
    knobs = dict(learning_rate=1e-4, num_generations=8, per_device_train_batch_size=64, max_completion_length=5,
                 max_steps=100, temperature=0.7, beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="dapo",
                 scale_rewards="group", max_grad_norm=1.0, eval_steps=0)
    knobs.update(grpo or {})
    teachers = []
    for k in range(n_teachers):
        model = _copy.deepcopy(base)
        cfg = GRPOConfig.from_dict({**knobs, "seed": seed + k})
        t0 = time.perf_counter()
        tr = GRPOTrainer(model, tok, task_reward(task), task.train(20000, seed=seed + 100 + k), cfg, task=task)
        tr.train(progress=progress)
        info.append({"stage": f"grpo-{k + 1}", "steps": cfg.max_steps, "seconds": time.perf_counter() - t0})
        teachers.append(model.eval())
    return teachers, base.eval(), tok, info
