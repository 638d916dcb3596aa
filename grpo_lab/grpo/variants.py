"""GRPO's knobs, TRL-named: the values each may take, the paper variants as settings, and the checks.

The four published variants of the course differ only in a handful of ``GRPOConfig`` settings, so they live
here as plain dicts (``PAPER_VARIANTS``; training recipes are ``grpo_lab.presets``), next to the rules that reject a setting before any compute is spent
(``validate_grpo_config``); ``advantages`` and ``loss`` beside it hold the formulas. Design notes:

- Only settings, no tensors: importing this module costs nothing, and a config can be checked on a laptop
  before it is shipped to a GPU.
- The error messages name the fix (which knob, which value), because the same mistakes (a batch that does
  not split into groups, ``dr_grpo`` without a length) otherwise surface as a shape error deep in a step.
- ``scale_rewards`` accepts TRL's old boolean spelling (``True`` -> ``"group"``, ``False`` -> ``"none"``),
  as TRL 1.16's ``GRPOConfig`` does.
"""

from __future__ import annotations

import math
import warnings

SCALE_REWARDS = ("group", "batch", "none")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")

__all__ = [
    "SCALE_REWARDS",
    "LOSS_TYPES",
    "IMPORTANCE_SAMPLING_LEVELS",
    "PAPER_VARIANTS",
    "VARIANT_SOURCES",
    "TRL_ONLY",
    "variant",
    "validate_grpo_config",
    "normalize_scale_rewards",
    "check_num_generations",
    "check_dr_grpo_length",
]


# --------------------------------------------------------------------------------------------------
# Allowed values
# --------------------------------------------------------------------------------------------------


def normalize_scale_rewards(scale_rewards) -> str:
    """``scale_rewards`` as one of ``SCALE_REWARDS``; TRL's old booleans map True -> "group", False -> "none"."""
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


def check_num_generations(num_generations, n: int | None = None) -> int:
    """``num_generations`` if it is an int >= 2 that divides ``n`` completions (when given); else ``ValueError``."""
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


def check_dr_grpo_length(loss_type: str, max_completion_length) -> None:
    """``dr_grpo`` divides by ``B * max_completion_length`` (Dr. GRPO, arXiv 2503.20783): it needs that length."""
    if loss_type == "dr_grpo" and (max_completion_length is None or max_completion_length <= 0):
        raise ValueError(
            "loss_type='dr_grpo' divides by B * max_completion_length: pass max_completion_length "
            "(the generation limit, e.g. max_completion_length=512)"
        )


# --------------------------------------------------------------------------------------------------
# The papers' settings, and validation
# --------------------------------------------------------------------------------------------------

# Plain dicts of GRPOConfig names that both trainers accept, so ``GRPOConfig(**variant("dapo"), ...)`` works
# (for TRL after dropping the grpo_lab-only key ``dynamic_sampling``: TRL has no dynamic sampling; grpo_lab's
# trainer does). Settings only TRL has are in ``TRL_ONLY``.
PAPER_VARIANTS: dict[str, dict] = {
    # DeepSeekMath (arXiv 2402.03300): std-normalized group advantages, per-sequence mean of token losses,
    # k3 KL to the reference with beta 0.04, PPO clip 0.2. (The paper samples 64 completions per prompt.)
    "grpo": {
        "loss_type": "grpo",
        "beta": 0.04,
        "scale_rewards": "group",
        "epsilon": 0.2,
        "epsilon_high": 0.2,
        "importance_sampling_level": "token",
    },
    # DAPO (arXiv 2503.14476): clip-higher (0.2 / 0.28) against entropy collapse, token-level loss, no KL,
    # dynamic sampling (drop groups whose rewards are all equal), and overlong filtering (mask truncated).
    "dapo": {
        "loss_type": "dapo",
        "beta": 0.0,
        "scale_rewards": "group",
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "importance_sampling_level": "token",
        "mask_truncated_completions": True,
        "dynamic_sampling": True,
    },
    # Dr. GRPO (arXiv 2503.20783): no std division (question-difficulty bias) and no 1/|o| (length bias):
    # constant-denominator loss. Needs max_completion_length.
    "dr_grpo": {
        "loss_type": "dr_grpo",
        "beta": 0.0,
        "scale_rewards": "none",
        "epsilon": 0.2,
        "epsilon_high": 0.2,
        "importance_sampling_level": "token",
    },
    # GSPO (arXiv 2507.18071): one length-normalized ratio per sequence, with the tiny clip range of the paper
    # (v2, section 5.1) that TRL's paper index recommends, no KL, per-sequence aggregation. The ratio only
    # differs from 1 off-policy: with one update per rollout it behaves like plain GRPO (TRL_ONLY["gspo"] makes
    # it off-policy in TRL).
    "gspo": {
        "loss_type": "grpo",
        "beta": 0.0,
        "scale_rewards": "group",
        "epsilon": 3e-4,
        "epsilon_high": 4e-4,
        "importance_sampling_level": "sequence",
    },
}

# Settings of a variant that only TRL's GRPOConfig has (grpo_lab's GRPOConfig refuses them): GSPO's paper takes
# 4 gradient steps per generation batch, TRL's steps_per_generation.
TRL_ONLY: dict[str, dict] = {"gspo": {"steps_per_generation": 4}}

VARIANT_SOURCES: dict[str, str] = {
    "grpo": "Shao et al., DeepSeekMath, arXiv 2402.03300",
    "dapo": "Yu et al., DAPO, arXiv 2503.14476",
    "dr_grpo": "Liu et al., Understanding R1-Zero-Like Training (Dr. GRPO), arXiv 2503.20783",
    "gspo": "Zheng et al., Group Sequence Policy Optimization, arXiv 2507.18071",
}


def variant(name: str, **overrides) -> dict:
    """A fresh copy of ``PAPER_VARIANTS[name]`` with ``overrides`` applied, e.g. ``variant("dapo", beta=0.01)``.

    Names: ``grpo`` (DeepSeekMath), ``dapo``, ``dr_grpo``, ``gspo``; see ``VARIANT_SOURCES`` for the papers.
    """
    key = name.lower().replace("-", "_").replace(" ", "_").replace(".", "")
    if key not in PAPER_VARIANTS:
        raise KeyError(f"unknown GRPO variant {name!r}; known: {', '.join(PAPER_VARIANTS)}")
    return {**PAPER_VARIANTS[key], **overrides}


def _check_loss_type(loss_type: str) -> None:
    if loss_type not in LOSS_TYPES:
        hint = (
            " (TRL also has cispo, sapo, luspo, vespo; grpo_lab implements the four of the course)"
            if loss_type in ("cispo", "sapo", "luspo", "vespo")
            else ""
        )
        raise ValueError(f"loss_type={loss_type!r} is not supported: use one of {LOSS_TYPES}{hint}")


def _check_ranges(max_completion_length, epsilon, epsilon_high, beta) -> float:
    """The numeric knobs inside their ranges; returns ``epsilon_high`` resolved (None means ``epsilon``)."""
    if max_completion_length is not None and (not isinstance(max_completion_length, int) or max_completion_length < 1):
        raise ValueError(f"max_completion_length must be a positive int, got {max_completion_length!r}")
    if not (isinstance(epsilon, (int, float)) and epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError(
            f"epsilon={epsilon!r}: the clip range must be a positive number (0.2 in PPO/GRPO, 3e-4 in GSPO)"
        )
    if epsilon_high is None:
        epsilon_high = epsilon
    if epsilon_high < epsilon:
        raise ValueError(
            f"epsilon_high={epsilon_high} < epsilon={epsilon}: clip-higher (DAPO) raises only the upper bound; "
            f"set epsilon_high >= epsilon (DAPO uses 0.28 with 0.2) or leave it None"
        )
    if beta < 0:
        raise ValueError(f"beta={beta}: the KL coefficient must be >= 0 (0 disables the reference model)")
    return epsilon_high


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
        check_num_generations(num_generations, batch_size)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive number of completions, got {batch_size!r}")
    if batch_size is not None and num_generations is None:
        raise ValueError("batch_size given without num_generations: pass num_generations to check the grouping")
    _check_loss_type(loss_type)
    scale_rewards = normalize_scale_rewards(scale_rewards)
    if importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
        raise ValueError(
            f"importance_sampling_level={importance_sampling_level!r}: use 'token' (PPO/GRPO) or 'sequence' (GSPO)"
        )
    check_dr_grpo_length(loss_type, max_completion_length)
    epsilon_high = _check_ranges(max_completion_length, epsilon, epsilon_high, beta)
    if importance_sampling_level == "sequence" and loss_type != "grpo":
        warnings.warn(
            f"importance_sampling_level='sequence' with loss_type={loss_type!r} sums token terms, which weights "
            "each sequence by its length; GSPO's setup is loss_type='grpo'",
            stacklevel=2,
        )
    return {
        "num_generations": num_generations,
        "batch_size": batch_size,
        "loss_type": loss_type,
        "scale_rewards": scale_rewards,
        "beta": beta,
        "epsilon": epsilon,
        "epsilon_high": epsilon_high,
        "max_completion_length": max_completion_length,
        "importance_sampling_level": importance_sampling_level,
        **other,
    }
