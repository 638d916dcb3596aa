"""Group-relative advantages (GRPO's replacement for a critic), exactly as TRL 1.16 computes them.

GRPO (Shao et al., "DeepSeekMath", arXiv 2402.03300) samples G completions per prompt, scores each, and uses
the reward relative to its own group as the advantage: no value model. Design notes:

- Layout: B rewards with the G completions of a prompt consecutive, so a ``view(-1, G)`` gives the groups.
- The std uses Bessel's correction (N - 1) and 1e-4 is added before dividing, as TRL does; a group whose
  rewards are all equal gets A = 0 and contributes no gradient (``frac_zero_std`` measures how often).
- NaN rewards stand for TRL's ``None`` ("this reward function does not apply"): left out of mean and std.
"""

from __future__ import annotations

import torch

from grpo_lab.grpo.variants import check_num_generations, normalize_scale_rewards

STD_EPS = 1e-4  # added to the std before dividing, as TRL does (keeps zero-variance groups finite: A = 0)


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
    scale_rewards = normalize_scale_rewards(scale_rewards)
    r = torch.as_tensor(rewards)
    if not torch.is_floating_point(r):
        r = r.to(torch.float32)
    if r.dim() != 1:
        raise ValueError(f"rewards must be 1-D [B] (groups laid out consecutively), got shape {tuple(r.shape)}")
    check_num_generations(num_generations, r.numel())
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
    check_num_generations(num_generations, r.numel())
    std = _nanstd(r.view(-1, num_generations), dim=1)
    return torch.isclose(std, torch.zeros_like(std)).double().mean().item()
