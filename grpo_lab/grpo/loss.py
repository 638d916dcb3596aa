"""GRPO's policy loss: the clipped surrogate on importance ratios, an optional KL term, four aggregations.

The loss is PPO's clipped surrogate on per-token importance ratios, plus an optional k3 KL penalty to a
reference model (Shao et al., "DeepSeekMath", arXiv 2402.03300). Everything here is a pure function of
tensors, numerically equal to ``trl==1.16.0``'s ``GRPOTrainer`` for one process and no gradient accumulation
(``tests/test_grpo_trl.py`` checks it to 1e-6 in float64). Design notes:

- Shapes: B completions (the G completions of a prompt are consecutive), T completion tokens. ``logps`` are
  log-probs of the *sampled* tokens, ``completion_mask`` is 1 on real completion tokens and 0 on padding.
- The four aggregations differ only in the denominator, and that denominator is where the length bias lives
  (Dr. GRPO, arXiv 2503.20783): ``grpo`` averages per sequence first, so a long completion's tokens each weigh
  less; ``bnpo``/``dapo`` average over tokens; ``dr_grpo`` divides by the constant ``B * max_completion_length``.
- The k3 KL estimator is clamped before ``exp`` so a policy that drifted far from the reference gives a
  large, finite penalty instead of ``inf`` (TRL does not clamp; the two agree wherever TRL is finite and the
  log-ratio is below ``KL_MAX_LOG_RATIO``).
- ``use_bias_correction_kl`` multiplies the per-token KL by the importance ratio. Its value is 1 on-policy
  but its gradient is not: without the ratio, the gradient of the k3 term is that of the forward
  KL(pi_ref || pi_theta); with it, that of the reverse KL(pi_theta || pi_ref), the one the objective names
  (the unbiased estimator DeepSeek-V3.2 adopted). TRL's default for it has changed between releases, so
  pass it explicitly when comparing with a given TRL version.
- Why no KL by default: TRL 1.16 defaults ``beta=0`` (DAPO and Dr. GRPO drop it; verifiable rewards are hard
  to hack, and skipping the reference model saves memory and a forward pass).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from grpo_lab.grpo.variants import IMPORTANCE_SAMPLING_LEVELS, LOSS_TYPES, check_dr_grpo_length

KL_MAX_LOG_RATIO = 20.0  # exp(20) ~ 4.9e8: large enough to never bind in sane training, small enough for fp32


# --------------------------------------------------------------------------------------------------
# KL and the importance ratio
# --------------------------------------------------------------------------------------------------


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor, max_log_ratio: float = KL_MAX_LOG_RATIO) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi || pi_ref) (Schulman, "Approximating KL divergence"; GRPO's KL term).

    With ``d = ref_logps - logps`` (the log of pi_ref / pi at the sampled token)::

        kl = exp(d) - d - 1   >= 0, unbiased for KL(pi || pi_ref) when tokens are sampled from pi

    ``d`` is clamped to at most ``max_log_ratio`` before ``exp``, so the result is finite even when the policy
    assigns a token vanishing probability that the reference likes (``exp(d)`` would overflow float32 past
    d ~ 88). Beyond the clamp the value (and its gradient) saturates; below it this equals TRL exactly.
    No clamp is needed for very negative ``d``: ``exp`` goes to 0 and the estimator grows linearly.
    """
    d = (ref_logps - logps).clamp(max=max_log_ratio)
    return torch.exp(d) - d - 1


def importance_ratio(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    completion_mask: torch.Tensor,
    importance_sampling_level: str = "token",
) -> torch.Tensor:
    """PPO importance ratio pi_theta / pi_old: per token [B, T], or per sequence [B, 1] (GSPO).

    - ``"token"``: ``r_{i,t} = exp(lp_{i,t} - lp_old_{i,t})``.
    - ``"sequence"`` (GSPO, arXiv 2507.18071): the length-normalized sequence ratio
      ``r_i = exp( sum_t m_{i,t} (lp - lp_old) / max(|o_i|, 1) )``, the geometric mean of the token ratios,
      one value per completion that broadcasts over its tokens.
    """
    if importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
        raise ValueError(
            f"importance_sampling_level={importance_sampling_level!r}: use 'token' (PPO/GRPO) or 'sequence' (GSPO)"
        )
    log_ratio = logps - old_logps
    if importance_sampling_level == "sequence":
        m = completion_mask.to(logps.dtype)
        log_ratio = ((log_ratio * m).sum(-1) / m.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    return torch.exp(log_ratio)


# --------------------------------------------------------------------------------------------------
# Aggregation and the loss
# --------------------------------------------------------------------------------------------------


def aggregate(
    per_token_loss: torch.Tensor,
    completion_mask: torch.Tensor,
    loss_type: str = "dapo",
    max_completion_length: int | None = None,
    num_items_in_batch: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss [B, T] to a scalar the way TRL's ``loss_type`` does (one process, no accumulation).

    With ``m`` the mask, ``len_i = sum_t m_{i,t}``::

        grpo:    mean_i ( sum_t m l / max(len_i, 1) )      each sequence weighs the same (length bias)
        bnpo:    sum m l / max(sum m, 1)                   token mean over this batch
        dapo:    sum m l / max(N, 1)                       N = active tokens in the generation batch (DAPO)
        dr_grpo: sum m l / (B * max_completion_length)     constant denominator (Dr. GRPO)

    ``num_items_in_batch`` (dapo only) is N; it defaults to this batch's token count, which makes dapo equal
    to bnpo. Pass the whole generation batch's count when the batch is split into micro-batches.
    """
    m = completion_mask.to(per_token_loss.dtype)
    per_token_loss = per_token_loss.expand_as(m)
    if loss_type == "grpo":
        return ((per_token_loss * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return (per_token_loss * m).sum() / m.sum().clamp(min=1.0)
    if loss_type == "dapo":
        n = m.sum() if num_items_in_batch is None else torch.as_tensor(num_items_in_batch, dtype=m.dtype)
        return (per_token_loss * m).sum() / n.clamp(min=1.0)
    if loss_type == "dr_grpo":
        check_dr_grpo_length(loss_type, max_completion_length)
        return (per_token_loss * m).sum() / (per_token_loss.size(0) * max_completion_length)
    raise ValueError(f"loss_type={loss_type!r} is not supported: use one of {LOSS_TYPES}")


@dataclass
class GRPOLossTerms:
    """Everything ``grpo_loss_terms`` computes, for diagnostics. All [B, T] fields are broadcast to the mask.

    - ``loss``: the scalar TRL optimizes.
    - ``per_token_loss``: ``-min(r A, clip(r) A) + beta * kl`` before masking and aggregation.
    - ``ratio``: the importance ratio (token- or sequence-level, broadcast).
    - ``is_low_clipped``: ``r < 1 - epsilon`` and ``A < 0`` (the clip removes the gradient there);
      ``is_high_clipped``: ``r > 1 + epsilon_high`` and ``A > 0``. These are TRL's ``clip_ratio`` metrics.
    - ``kl``: the per-token KL term as it enters the loss (k3, times the ratio when ``use_bias_correction_kl``;
      this is what TRL logs as ``kl``), or None when ``beta == 0``. ``k3`` holds the raw estimator.
    """

    loss: torch.Tensor
    per_token_loss: torch.Tensor
    ratio: torch.Tensor
    is_low_clipped: torch.Tensor
    is_high_clipped: torch.Tensor
    kl: torch.Tensor | None
    completion_mask: torch.Tensor
    importance_sampling_level: str = "token"
    k3: torch.Tensor | None = None

    @torch.no_grad()
    def _mean(self, x: torch.Tensor) -> float:
        m = self.completion_mask.to(torch.float64)
        x = x.to(torch.float64)
        return ((x * m).sum() / m.sum().clamp(min=1.0)).item()

    @torch.no_grad()
    def metrics(self) -> dict[str, float]:
        """TRL's logged diagnostics: ``clip_ratio/{low,high,region}_mean`` and ``kl`` (when beta > 0).

        Token level: means over masked tokens. Sequence level (GSPO): clip fractions are means over
        completions (each has one ratio), as TRL computes them.
        """
        low, high = self.is_low_clipped.double(), self.is_high_clipped.double()
        region = (self.is_low_clipped | self.is_high_clipped).double()
        if self.importance_sampling_level == "sequence":
            mean = lambda x: x[:, 0].mean().item()  # noqa: E731  (the flags are constant along each row)
        else:
            mean = self._mean
        out = {
            "clip_ratio/low_mean": mean(low),
            "clip_ratio/high_mean": mean(high),
            "clip_ratio/region_mean": mean(region),
        }
        if self.kl is not None:
            out["kl"] = self._mean(self.kl)
        return out


def _as_2d_advantages(advantages: torch.Tensor, B: int) -> torch.Tensor:
    if advantages.dim() == 1:
        if advantages.numel() != B:
            raise ValueError(f"advantages has {advantages.numel()} entries but there are {B} completions")
        return advantages.unsqueeze(1)  # [B, 1]: one advantage per completion, broadcast over its tokens
    if advantages.dim() == 2 and advantages.size(0) == B:
        return advantages
    raise ValueError(f"advantages must be [B] or [B, T], got shape {tuple(advantages.shape)}")


def _check_loss_inputs(logps, old_logps, completion_mask, ref_logps, beta, loss_type, max_completion_length) -> None:
    """Shapes ([B, T] everywhere) and knobs that make the loss meaningless; ``ValueError`` naming the fix."""
    if logps.dim() != 2:
        raise ValueError(f"logps must be [B, T], got shape {tuple(logps.shape)}")
    ref = ref_logps if beta != 0.0 else None  # unused (so unchecked) without the KL term
    for name, x in (("completion_mask", completion_mask), ("old_logps", old_logps), ("ref_logps", ref)):
        if x is not None and x.shape != logps.shape:
            raise ValueError(f"{name} {tuple(x.shape)} must match logps {tuple(logps.shape)}")
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type={loss_type!r} is not supported: use one of {LOSS_TYPES}")
    check_dr_grpo_length(loss_type, max_completion_length)
    if beta != 0.0 and ref_logps is None:
        raise ValueError(f"beta={beta} needs ref_logps (the reference model's log-probs): pass them, or set beta=0")


def grpo_loss_terms(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,  # the KL term
    epsilon: float = 0.2,
    epsilon_high: float | None = None,  # the clip range
    loss_type: str = "dapo",
    max_completion_length: int | None = None,  # the aggregation
    importance_sampling_level: str = "token",
    use_bias_correction_kl: bool = True,
    num_items_in_batch: float | torch.Tensor | None = None,
) -> GRPOLossTerms:
    """The GRPO loss and its parts (TRL 1.16 ``GRPOTrainer._compute_loss`` semantics for grpo/bnpo/dr_grpo/dapo).

    Per token (``A`` broadcast over completion i, ``r`` from ``importance_ratio``)::

        l = -min(r A, clip(r, 1 - epsilon, 1 + epsilon_high) A)            PPO clip; DAPO's clip-higher
        l += beta * kl * (r if use_bias_correction_kl else 1)              kl = k3(logps, ref_logps)

    then ``aggregate`` by ``loss_type``. Why one function: the body is the formula above line by line, in the
    order TRL's ``_compute_loss`` computes it, so the two can be read side by side. ``old_logps=None`` means on-policy (TRL uses ``logps.detach()``):
    the ratio is 1 in value but still carries the policy gradient ``A * grad logp``.

    Shapes: logps, old_logps, ref_logps, completion_mask [B, T]; advantages [B]. ``epsilon_high`` defaults to
    ``epsilon``. ``num_items_in_batch`` is only for dapo across micro-batches (see ``aggregate``).
    """
    _check_loss_inputs(logps, old_logps, completion_mask, ref_logps, beta, loss_type, max_completion_length)
    old_logps = logps.detach() if old_logps is None else old_logps
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    B = logps.size(0)
    mask = completion_mask.to(logps.dtype)
    adv = _as_2d_advantages(torch.as_tensor(advantages, dtype=logps.dtype, device=logps.device), B)

    ratio = importance_ratio(logps, old_logps, mask, importance_sampling_level)  # [B, T] or [B, 1]
    clipped = ratio.clamp(1 - epsilon, 1 + epsilon_high)
    # The min picks the pessimistic surrogate: once r has moved past the clip edge in the direction the
    # advantage favours, the clipped (constant) branch wins and the token stops pushing.
    per_token_loss = -torch.min(ratio * adv, clipped * adv)

    kl = k3 = None
    if beta != 0.0:
        k3 = k3_kl(logps, ref_logps)
        # DeepSeek-V3.2's bias correction (TRL's default): weight the KL sample by the importance ratio so its
        # gradient is that of the true reverse KL even off-policy.
        kl = k3 * ratio if use_bias_correction_kl else k3
        per_token_loss = per_token_loss + beta * kl

    loss = aggregate(per_token_loss, mask, loss_type, max_completion_length, num_items_in_batch)
    is_low = (ratio < 1 - epsilon) & (adv < 0)
    is_high = (ratio > 1 + epsilon_high) & (adv > 0)
    shape = logps.shape
    return GRPOLossTerms(
        loss=loss,
        per_token_loss=per_token_loss.expand(shape),
        ratio=ratio.expand(shape),
        is_low_clipped=is_low.expand(shape),
        is_high_clipped=is_high.expand(shape),
        kl=None if kl is None else kl.expand(shape),
        completion_mask=completion_mask,
        importance_sampling_level=importance_sampling_level,
        k3=k3,
    )


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    **knobs,
) -> torch.Tensor:
    """The scalar GRPO loss, numerically equal to TRL 1.16's for the same inputs (one process, no accumulation).

    Keyword-only knobs, TRL's names and defaults: ``ref_logps=None, beta=0.0, epsilon=0.2, epsilon_high=None,
    loss_type="dapo", max_completion_length=None, importance_sampling_level="token"`` (and
    ``use_bias_correction_kl=True``, ``num_items_in_batch=None``). See ``grpo_loss_terms`` for the formula;
    this returns only its ``loss``. At the first step (on-policy, ratio 1, beta 0) the per-token loss is
    ``-A``, so ``grpo`` gives ``-mean(A) = 0`` and ``dapo``/``bnpo`` give ``-sum_i A_i len_i / sum_i len_i``:
    the loss value is not a progress signal.
    """
    return grpo_loss_terms(logps, old_logps, advantages, completion_mask, **knobs).loss


# The knobs are written once, on grpo_loss_terms; help(grpo_loss) and inspect show them, not ``**knobs``.
grpo_loss.__signature__ = inspect.signature(grpo_loss_terms).replace(return_annotation="torch.Tensor")


def step0_loss(
    advantages: Sequence[float] | torch.Tensor,
    lengths: Sequence[int] | torch.Tensor,
    loss_type: str = "dapo",
    max_completion_length: int | None = None,
) -> float:
    """The loss at the first step (on-policy, ratio 1, beta 0), from advantages and completion lengths alone.

    Per-token loss is ``-A_i``, so: grpo ``-mean(A)``; bnpo/dapo ``-sum A_i len_i / sum len_i``;
    dr_grpo ``-sum A_i len_i / (B L_max)``. Useful for explaining why the logged loss starts where it does.
    """
    a = torch.as_tensor(advantages, dtype=torch.float64)
    lens = torch.as_tensor(lengths, dtype=torch.long)
    T = int(max_completion_length or int(lens.max()) or 1)
    mask = (torch.arange(T)[None, :] < lens[:, None]).to(torch.float64)
    lp = torch.zeros_like(mask)
    return grpo_loss(lp, lp, a, mask, loss_type=loss_type, max_completion_length=max_completion_length).item()
