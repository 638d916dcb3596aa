"""Token-level distillation: divergences between teacher and student next-token distributions.

- **Token-level KD** (Hinton et al., arXiv 1503.02531; generalized JSD from Agarwal et al., "On-Policy
  Distillation of Language Models", arXiv 2306.13649): at every completion position the student matches the
  teacher's whole next-token distribution, not just the sampled token. It needs the teacher's logits over
  the *same* vocabulary, so it raises ``VocabularyMismatchError`` when the vocabularies differ.
- Direction convention follows TRL 1.16 (``DistillationTrainer`` / ``trl.experimental.gkd``): ``beta = 0``
  is the forward KL(teacher || student) (mass-covering: the student spreads over everything the teacher
  allows), ``beta = 1`` the reverse KL(student || teacher) (mode-seeking: the student picks one of the
  teacher's modes), and in between the generalized JSD with mixture ``M = beta * teacher + (1 - beta) *
  student``, equal to TRL's function on the same logits.
- Like TRL, the loss is not multiplied by ``temperature ** 2``; Hinton's scaling keeps gradient size
  constant across temperatures and is offered as ``scale_by_t2`` for those who want it.
- Per-token divergences are summed over the vocabulary and averaged over the masked-in tokens (TRL's
  ``batchmean`` with labels), so a batch of long answers and one of short answers weigh tokens alike.
- Multi-teacher targets average teacher *probabilities* (a mixture), not logits: the mixture keeps every
  teacher's modes, which is the point of an ensemble; averaging logits would be a product of experts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from grpo_lab.errors import GrpoLabError

__all__ = [
    "VocabularyMismatchError",
    "check_same_vocabulary",
    "divergence_per_token",
    "kd_loss",
    "forward_kl",
    "reverse_kl",
    "generalized_jsd",
    "mix_teachers",
]


class VocabularyMismatchError(ValueError, GrpoLabError):
    """Student and teacher do not share a vocabulary, so token-level KD is undefined; use sequence-level KD."""


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
                "(SFT on the teacher's text) instead"
            )
        return
    ns = len(vs) if ks == "vocab" else vs
    nt = len(vt) if kt == "vocab" else vt
    if ns != nt:
        raise VocabularyMismatchError(
            f"student vocabulary has {ns} entries, teacher {nt}: token-level KD needs a shared vocabulary; "
            "use sequence-level KD (SFT on the teacher's text) instead"
        )


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


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    *,
    teacher_logprobs: torch.Tensor | None = None,
    beta: float = 0.0,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    scale_by_t2: bool = False,
) -> torch.Tensor:
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
        raise ValueError(
            f"student {tuple(student_logits.shape)} and teacher {tuple(target.shape)} shapes differ: "
            "align both on the same completion positions"
        )
    s = F.log_softmax(_upcast(student_logits) / temperature, dim=-1)
    t = (
        _upcast(teacher_logprobs)
        if teacher_logprobs is not None
        else F.log_softmax(_upcast(teacher_logits) / temperature, dim=-1)
    )
    loss = _masked_mean(divergence_per_token(s, t, beta), mask)
    return loss * temperature**2 if scale_by_t2 else loss


def forward_kl(student_logits, teacher_logits, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """``KL(teacher || student)`` per token, averaged over ``mask``: ``kd_loss(..., beta=0)``. Mass-covering."""
    return kd_loss(student_logits, teacher_logits, beta=0.0, temperature=temperature, mask=mask)


def reverse_kl(student_logits, teacher_logits, mask=None, temperature: float = 1.0) -> torch.Tensor:
    """``KL(student || teacher)`` per token, averaged over ``mask``: ``kd_loss(..., beta=1)``. Mode-seeking."""
    return kd_loss(student_logits, teacher_logits, beta=1.0, temperature=temperature, mask=mask)


def generalized_jsd(
    student_logits, teacher_logits, beta: float = 0.5, mask=None, temperature: float = 1.0
) -> torch.Tensor:
    """Generalized JSD with mixture ``beta * teacher + (1 - beta) * student`` (arXiv 2306.13649): ``kd_loss(..., beta)``."""
    return kd_loss(student_logits, teacher_logits, beta=beta, temperature=temperature, mask=mask)


def mix_teachers(
    teacher_logits: Sequence[torch.Tensor], weights: Sequence[float] | None = None, temperature: float = 1.0
) -> torch.Tensor:
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
