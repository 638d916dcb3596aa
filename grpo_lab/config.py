"""The trainers' settings: ``GRPOConfig`` and ``PPOConfig``, with TRL 1.16's field names, and their checks.

Both are plain dataclasses (TRL's are ``TrainingArguments`` subclasses with a hundred more fields). A field
that TRL has keeps TRL's name and, unless noted, TRL's default; a field TRL lacks is marked "grpo_lab only".
``validate_grpo_config`` and ``validate_ppo_config`` refuse a configuration that cannot work before any
compute, with a ``ConfigError`` that names the fix. Both trainers (``trainer``, ``ppo``) and the TRL backend
read their settings from here, so none of them imports another's implementation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch

from grpo_lab import grpo
from grpo_lab.errors import ConfigError
from grpo_lab.models.devices import compute_dtype_problem

SCHEDULES = ("constant", "linear", "cosine")


def check_names(cls, d, what: str) -> None:
    """Refuse keys of ``d`` that are not fields of the config class ``cls``, naming the known ones; TRL's
    ``bf16``/``fp16`` flags get the one setting that replaces them."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if {"bf16", "fp16"} & set(unknown):
        raise ConfigError(
            "bf16/fp16 are TRL's flags; here the precision is one setting: compute_dtype='bf16', "
            "'fp16' or 'fp32' (a preset's runtime['compute_dtype'])"
        )
    if unknown:
        raise ConfigError(f"unknown {what} setting(s) {unknown}; known: {', '.join(sorted(known))}")


def _from_dict(cls, d: dict, what: str):
    check_names(cls, d, what)
    return cls(**d)


@dataclass
class GRPOConfig:
    """The from-scratch GRPO trainer's settings, named and defaulted as in TRL 1.16's ``GRPOConfig``.

    > Parameters that control the training

    learning_rate (1e-4; TRL 1e-6, raised for tiny models), lr_scheduler_type ("constant" | "linear" |
    "cosine"), warmup_steps, weight_decay, adam_beta1, adam_beta2 (0.99 as TRL's GRPO recipes), max_grad_norm,
    max_steps, seed, per_device_train_batch_size (counts completions, not prompts, as in TRL: a step draws
    ``per_device_train_batch_size // num_generations`` prompts), num_iterations (optimizer steps per rollout),
    compute_dtype ("fp32" | "bf16" | "fp16", grpo_lab only: the autocast dtype of the forward passes;
    weights and optimizer stay in their own dtype; TRL spells it as the booleans ``bf16``/``fp16``),
    micro_batch_size (grpo_lab only: the update's forward and backward run over this many completions at a
    time, a multiple of num_generations, and add up to exactly the whole batch's gradient before the one
    optimizer step; None runs the batch at once. It only saves memory: TRL gets the same saving from
    ``gradient_accumulation_steps``, which also changes how many completions one generation makes).

    > Parameters that control generation

    num_generations (G, completions per prompt), max_completion_length (8; TRL 512), temperature, top_k,
    fast_rollout (grpo_lab only: the rollout's speed path, ``rollout_fast``; False runs the plain reading path, whose
        sampled tokens are the same and whose log-probs agree to about 1e-5).

    > Parameters that control the loss

    beta (KL coefficient; 0 = no reference model), epsilon and epsilon_high (the clip range), loss_type
    ("dapo", "grpo", "dr_grpo", "bnpo", ...), scale_rewards ("group" | "batch" | "none"),
    importance_sampling_level ("token" | "sequence", GSPO), mask_truncated_completions, reward_weights (one
    per reward function; default all 1), dynamic_sampling (grpo_lab only: DAPO's drop of zero-std groups).

    > Parameters that control evaluation, logging and checkpoints

    eval_steps/eval_size (grpo_lab only: greedy held-out accuracy every ``eval_steps``, on ``eval_size``
    problems), save_steps and output_dir (``output_dir/checkpoint-N`` every ``save_steps``; none when either is
    unset).
    """

    # training
    learning_rate: float = 1e-4
    lr_scheduler_type: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    max_grad_norm: float = 1.0
    max_steps: int = 100
    seed: int = 0
    per_device_train_batch_size: int = 64
    num_iterations: int = 1
    compute_dtype: str = "fp32"
    micro_batch_size: int | None = None
    # generation
    num_generations: int = 8
    max_completion_length: int = 8
    temperature: float = 1.0
    top_k: int | None = None
    fast_rollout: bool = True
    # loss
    beta: float = 0.0
    epsilon: float = 0.2
    epsilon_high: float | None = None
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    importance_sampling_level: str = "token"
    mask_truncated_completions: bool = False
    reward_weights: list[float] | None = None
    dynamic_sampling: bool = False
    # evaluation, logging, checkpoints
    eval_steps: int = 0
    eval_size: int = 200
    save_steps: int = 0
    output_dir: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> GRPOConfig:
        """Build from a dict (a preset's ``grpo``), refusing unknown keys; TRL's ``bf16``/``fp16`` are named."""
        return _from_dict(cls, d, "GRPO")


@dataclass
class PPOConfig:
    """The from-scratch PPO trainer's settings, named and defaulted as in TRL's ``PPOConfig`` where it has them.

    > Parameters that control the training

    learning_rate (1e-5), value_learning_rate (grpo_lab only: the critic's, default ``learning_rate``),
    lr_scheduler_type, warmup_steps, max_grad_norm, max_steps, seed, per_device_train_batch_size (counts
    completions; a step draws ``per_device_train_batch_size // num_generations`` prompts), num_ppo_epochs (4),
    num_mini_batches (1).

    > Parameters that control generation

    num_generations (1, as in TRL), max_completion_length (TRL's ``response_length``, 53; 8 here),
    temperature (TRL 0.7; 1.0 here, as for GRPO), missing_eos_penalty.

    > Parameters that control the loss

    cliprange (0.2), cliprange_value (0.2), vf_coef (0.1), gamma (1.0), lam (0.95), kl_coef (0.05),
    kl_estimator ("k1" | "k3"), whiten_rewards (False).

    > Parameters that control evaluation, logging and checkpoints

    eval_steps/eval_size (grpo_lab only), save_steps and output_dir (``output_dir/checkpoint-N``).
    """

    # training
    learning_rate: float = 1e-5
    value_learning_rate: float | None = None
    lr_scheduler_type: str = "constant"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    max_steps: int = 100
    seed: int = 0
    per_device_train_batch_size: int = 64
    num_ppo_epochs: int = 4
    num_mini_batches: int = 1
    # generation
    num_generations: int = 1
    max_completion_length: int = 8
    temperature: float = 1.0
    missing_eos_penalty: float | None = None
    # loss
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    whiten_rewards: bool = False
    # evaluation, logging, checkpoints
    eval_steps: int = 0
    eval_size: int = 200
    save_steps: int = 0
    output_dir: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> PPOConfig:
        """Build from a dict, refusing unknown keys (a GRPO knob such as ``beta`` is named in the error)."""
        return _from_dict(cls, d, "PPO")


def check_reward_signature(f: Callable) -> None:
    """A reward function must accept TRL's call ``f(prompts=..., completions=..., **columns)``.

    Raises ``ConfigError`` naming the fix for a non-callable, or a function without ``**kwargs`` or without
    ``prompts``/``completions`` parameters.
    """
    if not callable(f):
        raise ConfigError(f"reward function {f!r} is not callable")
    params = inspect.signature(f).parameters
    kinds = {p.kind for p in params.values()}
    name = getattr(f, "__name__", repr(f))
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        raise ConfigError(f"reward function {name} must accept **kwargs: def {name}(prompts, completions, **kwargs)")
    if not {"prompts", "completions"} <= set(params):
        raise ConfigError(f"reward function {name} must take 'prompts' and 'completions' (TRL passes them by name)")


def check_reward_funcs(reward_funcs: Sequence[Callable], reward_weights: Sequence[float] | None = None) -> None:
    """At least one reward function, each with TRL's signature, and one weight per function when weighted."""
    if not reward_funcs:
        raise ConfigError("pass at least one reward function")
    if reward_weights is not None and len(reward_weights) != len(reward_funcs):
        raise ConfigError(f"{len(reward_weights)} reward_weights for {len(reward_funcs)} reward functions")
    for f in reward_funcs:
        check_reward_signature(f)


def _check_common(cfg, device: torch.device | None) -> None:
    if cfg.lr_scheduler_type not in SCHEDULES:
        raise ConfigError(f"lr_scheduler_type={cfg.lr_scheduler_type!r}: use 'constant', 'linear' or 'cosine'")
    problem = compute_dtype_problem(device, getattr(cfg, "compute_dtype", "fp32")) if device is not None else None
    if problem:
        raise ConfigError(problem)


def validate_grpo_config(
    cfg: GRPOConfig, reward_funcs: Sequence[Callable], device: torch.device | None = None
) -> None:
    """Reject GRPO settings that cannot work, before any compute: the errors TRL would raise, and ours."""
    try:
        grpo.validate_grpo_config(
            num_generations=cfg.num_generations,
            batch_size=cfg.per_device_train_batch_size,
            loss_type=cfg.loss_type,
            scale_rewards=cfg.scale_rewards,
            beta=cfg.beta,
            epsilon=cfg.epsilon,
            epsilon_high=cfg.epsilon_high,
            max_completion_length=cfg.max_completion_length,
            importance_sampling_level=cfg.importance_sampling_level,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.num_iterations < 1:
        raise ConfigError(f"num_iterations={cfg.num_iterations}: use 1 (on-policy) or more updates per rollout")
    if cfg.temperature <= 0:
        raise ConfigError(f"temperature={cfg.temperature}: GRPO needs sampling (> 0) so that a group's rewards differ")
    mb = cfg.micro_batch_size
    if mb is not None and (mb < 1 or mb % cfg.num_generations):
        raise ConfigError(
            f"micro_batch_size={mb}: use a positive multiple of num_generations={cfg.num_generations} (whole "
            "groups, which share their prompt's forward), or None for the whole batch at once"
        )
    _check_common(cfg, device)
    check_reward_funcs(reward_funcs, cfg.reward_weights)


def validate_ppo_config(cfg: PPOConfig, reward_funcs: Sequence[Callable] | None = None) -> None:
    """Reject PPO settings that cannot work, before any compute, with a message naming the fix."""
    if cfg.per_device_train_batch_size % cfg.num_generations:
        raise ConfigError(
            f"per_device_train_batch_size={cfg.per_device_train_batch_size} must be a multiple of "
            f"num_generations={cfg.num_generations}"
        )
    if cfg.per_device_train_batch_size % cfg.num_mini_batches:
        raise ConfigError(
            f"num_mini_batches={cfg.num_mini_batches} must divide the batch of {cfg.per_device_train_batch_size}"
        )
    if not (0 <= cfg.gamma <= 1 and 0 <= cfg.lam <= 1):
        raise ConfigError(f"gamma={cfg.gamma}, lam={cfg.lam}: both must lie in [0, 1]")
    if cfg.kl_estimator not in ("k1", "k3"):
        raise ConfigError(f"kl_estimator={cfg.kl_estimator!r}: use 'k1' (TRL's default) or 'k3'")
    if cfg.temperature <= 0 or cfg.num_ppo_epochs < 1:
        raise ConfigError("temperature must be > 0 (PPO samples) and num_ppo_epochs >= 1")
    _check_common(cfg, None)
    if reward_funcs is not None:
        check_reward_funcs(reward_funcs)
