"""GRPO's two formulas: group-relative advantages and the clipped, aggregated policy loss (TRL 1.16 semantics).

GRPO (Shao et al., "DeepSeekMath", arXiv 2402.03300) removes PPO's value model: sample G completions per
prompt, score each, and use the reward relative to its own group as the advantage. The policy loss is PPO's
clipped surrogate on per-token importance ratios, plus an optional k3 KL penalty to a reference model.

Everything here is a pure function of tensors, numerically equal to ``trl==1.16.0``'s ``GRPOTrainer`` for one
process and no gradient accumulation (``tests/test_grpo_trl.py`` checks it to 1e-6 in float64). Design notes:

- Shapes: B completions (the G completions of a prompt are consecutive), T completion tokens. ``logps`` are
  log-probs of the *sampled* tokens, ``completion_mask`` is 1 on real completion tokens and 0 on padding.
- The four aggregations differ only in the denominator, and that denominator is where the length bias lives
  (Dr. GRPO, arXiv 2503.20783): ``grpo`` averages per sequence first, so a long completion's tokens each weigh
  less; ``bnpo``/``dapo`` average over tokens; ``dr_grpo`` divides by the constant ``B * max_completion_length``.
- The k3 KL estimator is clamped before ``exp`` so a policy that drifted far from the reference gives a
  large, finite penalty instead of ``inf`` (TRL does not clamp; the two agree wherever TRL is finite and the
  log-ratio is below ``KL_MAX_LOG_RATIO``).
- ``use_bias_correction_kl`` (TRL default True since it adopted DeepSeek-V3.2's unbiased KL gradient)
  multiplies the per-token KL by the importance ratio. Its value is 1 on-policy but its gradient is not.
- Why no KL by default: TRL 1.16 defaults ``beta=0`` (DAPO and Dr. GRPO drop it; verifiable rewards are hard
  to hack, and skipping the reference model saves memory and a forward pass).
- Presets for the papers live in ``PRESETS``; ``validate_grpo_config`` turns configs TRL would reject (or
  that silently do nothing) into errors that name the fix, before any compute is spent.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch

SCALE_REWARDS = ("group", "batch", "none")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
STD_EPS = 1e-4  # added to the std before dividing, as TRL does (keeps zero-variance groups finite: A = 0)
KL_MAX_LOG_RATIO = 20.0  # exp(20) ~ 4.9e8: large enough to never bind in sane training, small enough for fp32

__all__ = [
    "group_advantages",
    "k3_kl",
    "importance_ratio",
    "aggregate",
    "grpo_loss",
    "grpo_loss_terms",
    "GRPOLossTerms",
    "PRESETS",
    "PRESET_SOURCES",
    "preset",
    "validate_grpo_config",
    "frac_zero_std",
    "step0_loss",
]


# --------------------------------------------------------------------------------------------------
# Advantages
# --------------------------------------------------------------------------------------------------


def _normalize_scale_rewards(scale_rewards) -> str:
    # TRL's config maps the old boolean spelling: True -> "group", False -> "none".
    if scale_rewards is True:
        return "group"
    if scale_rewards is False:
        return "none"
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(
            f"scale_rewards={scale_rewards!r} is not supported: use one of {SCALE_REWARDS} "
            "('group' divides by each group's std, 'batch' by the whole batch's std, 'none' only centers)"
        )
    return scale_rewards


def _check_num_generations(num_generations, n: int | None = None) -> int:
    if isinstance(num_generations, bool) or not isinstance(num_generations, int):
        raise ValueError(f"num_generations must be an int >= 2, got {num_generations!r}")
    if num_generations < 2:
        raise ValueError(
            f"num_generations={num_generations}: GRPO needs at least 2 completions per prompt "
            "(the advantage is a reward relative to the others in its group); set num_generations >= 2"
        )
    if n is not None and n % num_generations != 0:
        raise ValueError(
            f"{n} completions cannot be split into groups of num_generations={num_generations}: make the batch "
            f"(number of completions) a multiple of {num_generations}, e.g. {max(1, n // num_generations) * num_generations}"
            f" or {(n // num_generations + 1) * num_generations}"
        )
    return num_generations


def _nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Std with Bessel's correction (divide by N - 1), ignoring NaNs; NaN where fewer than 2 values remain."""
    if dim is None:
        x, dim = x.reshape(-1), 0
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    valid = ~torch.isnan(x)
    count = valid.sum(dim=dim)
    sq = torch.where(valid, (x - mean) ** 2, torch.zeros_like(x)).sum(dim=dim)
    var = sq / (count - 1).clamp(min=1)
    return torch.where(count > 1, var.sqrt(), torch.full_like(var, float("nan")))


def group_advantages(rewards, num_generations: int, scale_rewards: str = "group") -> torch.Tensor:
    """Group-relative advantages, exactly as TRL 1.16 (DeepSeekMath GRPO, arXiv 2402.03300, eq. of section 4.1.2).

    ``rewards`` [B] are laid out group by group (the ``num_generations`` = G completions of one prompt are
    consecutive). With ``mean_g`` and ``std_g`` the mean and Bessel-corrected (N - 1) std of the group::

        "group": A_i = (R_i - mean_g) / (std_g + 1e-4)
        "batch": A_i = (R_i - mean_g) / (std(all R) + 1e-4)     (PPO-Lite style)
        "none":  A_i =  R_i - mean_g                             (Dr. GRPO, arXiv 2503.20783)

    A group whose rewards are all equal gets A = 0 for every member: no learning signal (DAPO's dynamic
    sampling, arXiv 2503.14476, drops such groups). NaN rewards mean "no reward function applied"
    (TRL's ``None``): they are left out of the mean and std, and their advantage is 0.

    Example: rewards (0, 0, 0, 1), G = 4 -> (-0.5, -0.5, -0.5, 1.5).

    Returns a float tensor [B] (float64 stays float64; ints and lists become float32).
    """
    scale_rewards = _normalize_scale_rewards(scale_rewards)
    r = torch.as_tensor(rewards)
    if not torch.is_floating_point(r):
        r = r.to(torch.float32)
    if r.dim() != 1:
        raise ValueError(f"rewards must be 1-D [B] (groups laid out consecutively), got shape {tuple(r.shape)}")
    _check_num_generations(num_generations, r.numel())
    if r.numel() == 0:
        raise ValueError("rewards is empty: need at least one group of num_generations completions")
    grouped = r.view(-1, num_generations)  # [B/G, G]
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(num_generations)  # [B]
    adv = r - mean
    if scale_rewards == "group":
        adv = adv / (_nanstd(grouped, dim=1).repeat_interleave(num_generations) + STD_EPS)
    elif scale_rewards == "batch":
        adv = adv / (_nanstd(r) + STD_EPS)
    # An unscorable completion (NaN reward) or a group with < 2 scored members carries no signal.
    return torch.nan_to_num(adv, nan=0.0)


def frac_zero_std(rewards, num_generations: int) -> float:
    """Share of completions whose group's rewards are all (nearly) equal: TRL's ``frac_reward_zero_std``.

    Those completions get advantage 0 and contribute nothing to the gradient; a value near 1 means the
    task is too hard (all wrong) or too easy (all right) for the current policy.
    """
    r = torch.as_tensor(rewards, dtype=torch.float64)
    _check_num_generations(num_generations, r.numel())
    std = _nanstd(r.view(-1, num_generations), dim=1)
    return torch.isclose(std, torch.zeros_like(std)).double().mean().item()


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


def importance_ratio(logps: torch.Tensor, old_logps: torch.Tensor, completion_mask: torch.Tensor,
                     importance_sampling_level: str = "token") -> torch.Tensor:
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


def aggregate(per_token_loss: torch.Tensor, completion_mask: torch.Tensor, loss_type: str = "dapo",
              max_completion_length: int | None = None, num_items_in_batch: float | torch.Tensor | None = None
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
        if max_completion_length is None or max_completion_length <= 0:
            raise ValueError(
                "loss_type='dr_grpo' divides by B * max_completion_length: pass max_completion_length "
                "(the generation limit, e.g. max_completion_length=512)"
            )
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


def grpo_loss_terms(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "dapo",
    max_completion_length: int | None = None,
    importance_sampling_level: str = "token",
    use_bias_correction_kl: bool = True,
    num_items_in_batch: float | torch.Tensor | None = None,
) -> GRPOLossTerms:
    """The GRPO loss and its parts (TRL 1.16 ``GRPOTrainer._compute_loss`` semantics for grpo/bnpo/dr_grpo/dapo).

    Per token (``A`` broadcast over completion i, ``r`` from ``importance_ratio``)::

        l = -min(r A, clip(r, 1 - epsilon, 1 + epsilon_high) A)            PPO clip; DAPO's clip-higher
        l += beta * kl * (r if use_bias_correction_kl else 1)              kl = k3(logps, ref_logps)

    then ``aggregate`` by ``loss_type``. ``old_logps=None`` means on-policy (TRL uses ``logps.detach()``):
    the ratio is 1 in value but still carries the policy gradient ``A * grad logp``.

    Shapes: logps, old_logps, ref_logps, completion_mask [B, T]; advantages [B]. ``epsilon_high`` defaults to
    ``epsilon``. ``num_items_in_batch`` is only for dapo across micro-batches (see ``aggregate``).
    """
    if logps.dim() != 2:
        raise ValueError(f"logps must be [B, T], got shape {tuple(logps.shape)}")
    if completion_mask.shape != logps.shape:
        raise ValueError(f"completion_mask {tuple(completion_mask.shape)} must match logps {tuple(logps.shape)}")
    if old_logps is None:
        old_logps = logps.detach()
    elif old_logps.shape != logps.shape:
        raise ValueError(f"old_logps {tuple(old_logps.shape)} must match logps {tuple(logps.shape)}")
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type={loss_type!r} is not supported: use one of {LOSS_TYPES}")
    if loss_type == "dr_grpo" and (max_completion_length is None or max_completion_length <= 0):
        raise ValueError(
            "loss_type='dr_grpo' divides by B * max_completion_length: pass max_completion_length "
            "(the generation limit, e.g. max_completion_length=512)"
        )
    if epsilon_high is None:
        epsilon_high = epsilon
    if beta != 0.0 and ref_logps is None:
        raise ValueError(f"beta={beta} needs ref_logps (the reference model's log-probs): pass them, or set beta=0")

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
        if ref_logps.shape != logps.shape:
            raise ValueError(f"ref_logps {tuple(ref_logps.shape)} must match logps {tuple(logps.shape)}")
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
    *,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "dapo",
    max_completion_length: int | None = None,
    importance_sampling_level: str = "token",
    use_bias_correction_kl: bool = True,
    num_items_in_batch: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """The scalar GRPO loss, numerically equal to TRL 1.16's for the same inputs (one process, no accumulation).

    See ``grpo_loss_terms`` for the formula; this returns only its ``loss``. At the first step (on-policy,
    ratio 1, beta 0) the per-token loss is ``-A``, so ``grpo`` gives ``-mean(A) = 0`` and ``dapo``/``bnpo``
    give ``-sum_i A_i len_i / sum_i len_i``: the loss value is not a progress signal.
    """
    return grpo_loss_terms(
        logps, old_logps, advantages, completion_mask, ref_logps=ref_logps, beta=beta, epsilon=epsilon,
        epsilon_high=epsilon_high, loss_type=loss_type, max_completion_length=max_completion_length,
        importance_sampling_level=importance_sampling_level, use_bias_correction_kl=use_bias_correction_kl,
        num_items_in_batch=num_items_in_batch,
    ).loss


# --------------------------------------------------------------------------------------------------
# Presets and validation
# --------------------------------------------------------------------------------------------------

# Plain dicts of TRL ``GRPOConfig`` names, so ``GRPOConfig(**preset("dapo"), ...)`` works after dropping the
# grpo_lab-only key ``dynamic_sampling`` (TRL has no dynamic sampling; grpo_lab's trainer does).
PRESETS: dict[str, dict] = {
    # DeepSeekMath (arXiv 2402.03300): std-normalized group advantages, per-sequence mean of token losses,
    # k3 KL to the reference with beta 0.04, PPO clip 0.2. (The paper samples 64 completions per prompt.)
    "grpo": {"loss_type": "grpo", "beta": 0.04, "scale_rewards": "group", "epsilon": 0.2, "epsilon_high": 0.2,
             "importance_sampling_level": "token"},
    # DAPO (arXiv 2503.14476): clip-higher (0.2 / 0.28) against entropy collapse, token-level loss, no KL,
    # dynamic sampling (drop groups whose rewards are all equal), and overlong filtering (mask truncated).
    "dapo": {"loss_type": "dapo", "beta": 0.0, "scale_rewards": "group", "epsilon": 0.2, "epsilon_high": 0.28,
             "importance_sampling_level": "token", "mask_truncated_completions": True, "dynamic_sampling": True},
    # Dr. GRPO (arXiv 2503.20783): no std division (question-difficulty bias) and no 1/|o| (length bias):
    # constant-denominator loss. Needs max_completion_length.
    "dr_grpo": {"loss_type": "dr_grpo", "beta": 0.0, "scale_rewards": "none", "epsilon": 0.2, "epsilon_high": 0.2,
                "importance_sampling_level": "token"},
    # GSPO (arXiv 2507.18071): one length-normalized ratio per sequence, with the tiny clip range of the paper
    # (v2, section 5.1) that TRL's paper index recommends, no KL, per-sequence aggregation. The ratio only
    # differs from 1 off-policy: with one update per rollout it behaves like plain GRPO.
    "gspo": {"loss_type": "grpo", "beta": 0.0, "scale_rewards": "group", "epsilon": 3e-4, "epsilon_high": 4e-4,
             "importance_sampling_level": "sequence", "steps_per_generation": 4},
}

PRESET_SOURCES: dict[str, str] = {
    "grpo": "Shao et al., DeepSeekMath, arXiv 2402.03300",
    "dapo": "Yu et al., DAPO, arXiv 2503.14476",
    "dr_grpo": "Liu et al., Understanding R1-Zero-Like Training (Dr. GRPO), arXiv 2503.20783",
    "gspo": "Zheng et al., Group Sequence Policy Optimization, arXiv 2507.18071",
}


def preset(name: str, **overrides) -> dict:
    """A fresh copy of ``PRESETS[name]`` with ``overrides`` applied, e.g. ``preset("dapo", beta=0.01)``.

    Names: ``grpo`` (DeepSeekMath), ``dapo``, ``dr_grpo``, ``gspo``; see ``PRESET_SOURCES`` for the papers.
    """
    key = name.lower().replace("-", "_").replace(" ", "_").replace(".", "")
    if key not in PRESETS:
        raise KeyError(f"unknown GRPO preset {name!r}; known: {', '.join(PRESETS)}")
    return {**PRESETS[key], **overrides}


def validate_grpo_config(
    *,
    num_generations: int | None = None,
    batch_size: int | None = None,
    loss_type: str = "dapo",
    scale_rewards: str = "group",
    beta: float = 0.0,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    max_completion_length: int | None = None,
    importance_sampling_level: str = "token",
    **other,
) -> dict:
    """Check a GRPO configuration before any compute is spent; raise ``ValueError`` naming the fix.

    ``batch_size`` counts completions per step (TRL's ``per_device_train_batch_size * processes *
    steps_per_generation``, i.e. the generation batch), not prompts. Other keys (``dynamic_sampling``,
    ``mask_truncated_completions``, ...) pass through unchecked so a whole preset can be validated.
    Rejects: ``num_generations < 2``, a batch not divisible by ``num_generations``, unknown ``loss_type`` /
    ``scale_rewards`` / ``importance_sampling_level``, ``dr_grpo`` without ``max_completion_length``,
    ``epsilon <= 0``, ``epsilon_high < epsilon``, ``beta < 0``. Warns (as TRL does) for a sequence-level
    ratio with a token-summing loss. Returns the resolved config (``epsilon_high`` filled in, bools mapped).
    """
    if num_generations is not None:
        _check_num_generations(num_generations, batch_size)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive number of completions, got {batch_size!r}")
    if batch_size is not None and num_generations is None:
        raise ValueError("batch_size given without num_generations: pass num_generations to check the grouping")
    if loss_type not in LOSS_TYPES:
        hint = " (TRL also has cispo, sapo, luspo, vespo; grpo_lab implements the four of the course)" \
            if loss_type in ("cispo", "sapo", "luspo", "vespo") else ""
        raise ValueError(f"loss_type={loss_type!r} is not supported: use one of {LOSS_TYPES}{hint}")
    scale_rewards = _normalize_scale_rewards(scale_rewards)
    if importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
        raise ValueError(
            f"importance_sampling_level={importance_sampling_level!r}: use 'token' (PPO/GRPO) or 'sequence' (GSPO)"
        )
    if loss_type == "dr_grpo" and (max_completion_length is None or max_completion_length <= 0):
        raise ValueError(
            "loss_type='dr_grpo' divides by B * max_completion_length: set max_completion_length "
            "(the generation limit, e.g. 512)"
        )
    if max_completion_length is not None and (not isinstance(max_completion_length, int) or max_completion_length < 1):
        raise ValueError(f"max_completion_length must be a positive int, got {max_completion_length!r}")
    if not (isinstance(epsilon, (int, float)) and epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon={epsilon!r}: the clip range must be a positive number (0.2 in PPO/GRPO, 3e-4 in GSPO)")
    if epsilon_high is None:
        epsilon_high = epsilon
    if epsilon_high < epsilon:
        raise ValueError(
            f"epsilon_high={epsilon_high} < epsilon={epsilon}: clip-higher (DAPO) raises only the upper bound; "
            f"set epsilon_high >= epsilon (DAPO uses 0.28 with 0.2) or leave it None"
        )
    if beta < 0:
        raise ValueError(f"beta={beta}: the KL coefficient must be >= 0 (0 disables the reference model)")
    if importance_sampling_level == "sequence" and loss_type != "grpo":
        warnings.warn(
            f"importance_sampling_level='sequence' with loss_type={loss_type!r} sums token terms, which weights "
            "each sequence by its length; GSPO's setup is loss_type='grpo'", stacklevel=2,
        )
    return {
        "num_generations": num_generations, "batch_size": batch_size, "loss_type": loss_type,
        "scale_rewards": scale_rewards, "beta": beta, "epsilon": epsilon, "epsilon_high": epsilon_high,
        "max_completion_length": max_completion_length, "importance_sampling_level": importance_sampling_level,
        **other,
    }


def step0_loss(advantages: Sequence[float] | torch.Tensor, lengths: Sequence[int] | torch.Tensor,
               loss_type: str = "dapo", max_completion_length: int | None = None) -> float:
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
