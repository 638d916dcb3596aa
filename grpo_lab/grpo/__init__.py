"""GRPO's two formulas, group-relative advantages and the clipped policy loss, with TRL 1.16's semantics.

GRPO (Shao et al., "DeepSeekMath", arXiv 2402.03300) removes PPO's value model: sample G completions per
prompt, score each, use the reward relative to its own group as the advantage, and optimize PPO's clipped
surrogate on importance ratios, optionally with a KL penalty to a reference model. Where to read:

- ``advantages``: ``group_advantages`` (notebook 02) and ``frac_zero_std``.
- ``loss``: ``grpo_loss`` / ``grpo_loss_terms``, the importance ratio (token or sequence level), the k3 KL
  and the four aggregations ``loss_type`` chooses between (notebook 03).
- ``variants``: the knobs' allowed values, the papers' settings (``PAPER_VARIANTS``: DeepSeekMath, DAPO, Dr.
  GRPO, GSPO; ``PRESETS``/``PRESET_SOURCES``/``preset`` are their old names, kept for notebook 03) and ``validate_grpo_config``, which rejects a configuration before any compute is spent.

Every name is importable from ``grpo_lab.grpo`` directly; each is numerically equal to ``trl==1.16.0`` for
one process and no gradient accumulation (``tests/test_grpo_trl.py``).
"""

from grpo_lab.grpo.advantages import STD_EPS, frac_zero_std, group_advantages
from grpo_lab.grpo.loss import (
    KL_MAX_LOG_RATIO,
    GRPOLossTerms,
    aggregate,
    grpo_loss,
    grpo_loss_terms,
    importance_ratio,
    k3_kl,
    step0_loss,
)
from grpo_lab.grpo.variants import (
    IMPORTANCE_SAMPLING_LEVELS,
    LOSS_TYPES,
    PAPER_VARIANTS,
    SCALE_REWARDS,
    TRL_ONLY,
    VARIANT_SOURCES,
    validate_grpo_config,
    variant,
)

# The old names of the paper variants (notebook 03 imports them); training recipes are grpo_lab.presets.
PRESETS = PAPER_VARIANTS
PRESET_SOURCES = VARIANT_SOURCES
preset = variant

__all__ = [
    "group_advantages",
    "frac_zero_std",
    "k3_kl",
    "importance_ratio",
    "aggregate",
    "grpo_loss",
    "grpo_loss_terms",
    "GRPOLossTerms",
    "step0_loss",
    "PAPER_VARIANTS",
    "VARIANT_SOURCES",
    "TRL_ONLY",
    "variant",
    "PRESETS",
    "PRESET_SOURCES",
    "preset",
    "validate_grpo_config",
    "SCALE_REWARDS",
    "LOSS_TYPES",
    "IMPORTANCE_SAMPLING_LEVELS",
    "STD_EPS",
    "KL_MAX_LOG_RATIO",
]
