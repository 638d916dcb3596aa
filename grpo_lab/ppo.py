"""PPO for language models, from scratch: the algorithm GRPO simplifies, with TRL's ``PPOTrainer`` names.

The loop (``PPOTrainer.step``), following the RLHF recipe of Ziegler et al. (arXiv 1909.08593) and
Ouyang et al. (InstructGPT, arXiv 2203.02155) as TRL's ``PPOTrainer`` implements it:

1. Sample completions (``rollout.sample_groups``; ``num_generations`` per prompt, 1 as in TRL).
2. Score each with the reward functions (here a verifier). One no-grad pass records the sampling policy's
   log-probs, the reference's (when ``kl_coef > 0``) and the critic's values ``V_t``.
3. Per-token rewards (``per_token_rewards``): ``-kl_coef * KL`` on every token, plus the score on the last.
4. Advantages by GAE (``gae``; Schulman et al., arXiv 1506.02438), whitened over the batch; returns
   ``R_t = A_t + V_t`` are the critic's regression targets.
5. ``num_ppo_epochs`` passes over the batch (``num_mini_batches`` each): PPO's clipped policy loss
   (Schulman et al., arXiv 1707.06347; ``grpo.grpo_loss_terms`` with per-token advantages is the same
   formula) plus ``vf_coef`` times the clipped value loss (``value_loss``).

Design notes:

- The critic is its own model (``ValueModel``: a copy of the policy's transformer with a scalar head), as in
  TRL's ``PPOTrainer`` and InstructGPT, not a second head on the policy. A shared trunk saves memory but
  couples the two losses (``vf_coef`` then trades them off inside one network); the separate critic is the
  setup whose cost GRPO removes, so it is the one to measure. It starts from the policy's weights with a
  zero-initialised head (V = 0 everywhere): InstructGPT starts it from the reward model, which a verifier
  does not have. ``value_learning_rate`` lets the fresh critic learn faster than the policy moves (OpenRLHF
  keeps a separate ``critic_learning_rate`` for the same reason).
- Adam is nearly invariant to a constant scale of the loss, so with a separate critic ``vf_coef`` changes
  little (only through the gradient-norm clip, which TRL also applies to policy and critic together): the
  critic's parameters see only the value loss. It matters for a shared trunk.
- TRL's defaults: ``cliprange = cliprange_value = 0.2``, ``vf_coef = 0.1``, ``gamma = 1``, ``lam = 0.95``,
  ``kl_coef = 0.05`` with the ``k1`` estimator, ``num_ppo_epochs = 4``, ``whiten_rewards = False``;
  advantages are always whitened. Changed for tiny models on a CPU: ``learning_rate``, the lengths, ``temperature``.
- What the critic costs is counted by ``memory.training_bytes`` (weights, gradients, AdamW moments of every
  model held) and measured by ``memory.SavedTensorMeter`` (the activations kept for the backward pass).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from grpo_lab import grpo
from grpo_lab.config import PPOConfig, validate_ppo_config
from grpo_lab.errors import ConfigError
from grpo_lab.loop import LoopTrainer, make_scheduler
from grpo_lab.rollout import completion_logps, sample_groups
from grpo_lab.tasks import Task

__all__ = [  # PPOConfig, validate_ppo_config and ConfigError are re-exported: older code imports them from here
    "ConfigError",
    "PPOConfig",
    "PPOTrainer",
    "ValueModel",
    "explained_variance",
    "gae",
    "masked_mean",
    "masked_whiten",
    "per_token_rewards",
    "validate_ppo_config",
    "value_loss",
]


# --------------------------------------------------------------------------------------------------
# The math: pure functions of tensors. Shapes: B completions, T completion tokens, mask 1 on real tokens.
# --------------------------------------------------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(x * m) / sum(m)``: the mean over real tokens (TRL's ``masked_mean``)."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Whitening over the real tokens of a batch, as TRL whitens PPO advantages (and rewards when asked)::

        (x - mean) / sqrt(var + eps)       var with Bessel's correction (N - 1), over tokens where mask = 1

    ``shift_mean=False`` adds the mean back (TRL's choice for rewards: rescale but keep the sign of the
    reward). Padding positions come back as 0.
    """
    m = mask.to(x.dtype)
    mean = masked_mean(x, m)
    n = m.sum()
    var = (((x - mean) ** 2) * m).sum() / (n - 1).clamp(min=1.0)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * m


def per_token_rewards(
    scores: torch.Tensor,
    logps: torch.Tensor,
    ref_logps: torch.Tensor | None,
    completion_mask: torch.Tensor,
    kl_coef: float = 0.05,
    kl_estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The RLHF reward per token (Ziegler et al., arXiv 1909.08593; TRL's ``PPOTrainer``): ``(rewards, kl)``, both [B, T].

    With ``d_t = logps_t - ref_logps_t`` (the sampling policy against the frozen reference)::

        kl_t = d_t                                  "k1" (TRL's default)
             = exp(-d_t) + d_t - 1                  "k3" (Schulman, "Approximating KL divergence")
        r_t  = -kl_coef * kl_t + score * [t is the last real token]

    ``scores`` [B] is the verifier's (or reward model's) score of each whole completion. Without a reference
    (``ref_logps=None`` or ``kl_coef == 0``) the KL is 0 and the score is the only reward.
    """
    m = completion_mask.to(logps.dtype)
    if ref_logps is None or kl_coef == 0:
        kl = torch.zeros_like(logps)
    else:
        kl = (logps - ref_logps) if kl_estimator == "k1" else grpo.k3_kl(logps, ref_logps)
    rewards = -kl_coef * kl * m
    last = (m.sum(1).long() - 1).clamp(min=0)  # [B]: index of each completion's final token (EOS or cut-off)
    rewards[torch.arange(len(last)), last] += scores.to(rewards.dtype)
    return rewards, kl * m


def gae(
    rewards: torch.Tensor, values: torch.Tensor, completion_mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al., arXiv 1506.02438, eq. 16): ``(advantages, returns)``, [B, T].

    Token t is an action; the state before it is the prompt plus tokens < t; ``values[:, t]`` is the critic's
    estimate of that state. With ``V_t = 0`` past the last real token (the episode has ended)::

        delta_t = r_t + gamma * V_{t+1} - V_t                 the TD residual
        A_t     = delta_t + gamma * lam * A_{t+1}              = sum_k (gamma lam)^k delta_{t+k}
        R_t     = A_t + V_t                                    the critic's target (lambda-return)

    ``lam = 1`` (and gamma = 1) gives the Monte-Carlo advantage: reward-to-go minus ``V_t``; ``lam = 0``
    the one-step TD residual. Padding positions get 0 in both outputs.
    """
    m = completion_mask.to(values.dtype)
    values, rewards = values * m, rewards * m
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):  # a backward scan: A_t needs A_{t+1}
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(values[:, 0])
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * m[:, t]
        adv[:, t] = next_adv
    return adv, (adv + values) * m


def value_loss(
    vpred: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    completion_mask: torch.Tensor,
    cliprange_value: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped value loss (the baselines / TRL form): ``(loss, clip_fraction)``.

    The new prediction may move at most ``cliprange_value`` from the value recorded at rollout time, and
    the loss takes the worse of the clipped and unclipped errors (so clipping never *rewards* a big move)::

        V_clip = old_V + clip(V - old_V, -cliprange_value, +cliprange_value)
        loss   = 0.5 * masked_mean( max((V - R)^2, (V_clip - R)^2) )

    ``clip_fraction``: the share of real tokens where the clipped error is the larger one (its gradient is 0).
    """
    v_clip = old_values + (vpred - old_values).clamp(-cliprange_value, cliprange_value)
    err, err_clip = (vpred - returns) ** 2, (v_clip - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(err, err_clip), completion_mask)
    return loss, masked_mean((err_clip > err).to(vpred.dtype), completion_mask).detach()


def explained_variance(values: torch.Tensor, returns: torch.Tensor, completion_mask: torch.Tensor) -> float:
    """``1 - Var(R - V) / Var(R)`` over real tokens: 1 is a perfect critic, 0 no better than a constant, < 0 worse."""
    m = completion_mask.bool()
    r, v = returns[m].double(), values[m].double()
    var_r = r.var() if r.numel() > 1 else torch.tensor(0.0)
    return float("nan") if var_r == 0 else float(1 - (r - v).var() / var_r)


# --------------------------------------------------------------------------------------------------
# The critic
# --------------------------------------------------------------------------------------------------


class ValueModel(nn.Module):
    """A critic: a causal LM's transformer trunk plus a scalar head, one value per position.

    ``values(...)`` returns [B, T]: ``V_t`` read at the position that predicts completion token t (the same
    shift as ``rollout.completion_logps``), i.e. the value of the prompt plus tokens < t.
    """

    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.v_head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.v_head.weight)  # V = 0 at the start: the critic knows nothing yet
        nn.init.zeros_(self.v_head.bias)

    @classmethod
    def from_policy(cls, policy) -> ValueModel:
        """A critic whose trunk is a deep copy of ``policy``'s (the LM head is dropped; weights are not shared)."""
        trunk = copy.deepcopy(policy.base_model)
        return cls(trunk, policy.config.hidden_size)

    def values(self, prompt_ids, prompt_mask, completion_ids, completion_mask) -> torch.Tensor:
        """``V_t`` for every completion token [B, T] (with gradients), from one forward over prompt + completion."""
        ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attn = torch.cat([prompt_mask, completion_mask.to(prompt_mask.dtype)], dim=1)
        positions = (attn.cumsum(1) - 1).clamp(min=0)
        hidden = self.backbone(
            input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=False
        ).last_hidden_state
        T = completion_ids.shape[1]
        return self.v_head(hidden[:, -T - 1 : -1, :].float()).squeeze(-1)


# --------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------


class PPOTrainer(LoopTrainer):
    """The from-scratch PPO trainer; ``train()`` runs ``max_steps`` of ``step()`` (see the module docstring).

    Same constructor shape as ``trainer.GRPOTrainer`` (TRL's): ``PPOTrainer(model, reward_funcs,
    args=PPOConfig(...), train_dataset=..., eval_dataset=..., processing_class=tokenizer, callbacks=...)``.
    ``reward_funcs``: TRL-signature functions (``loop.task_reward(task)`` is the verifier), summed.
    ``value_model``: a ``ValueModel`` (default ``ValueModel.from_policy(model)``). ``ref_model``: a frozen
    copy for the KL penalty, made from ``model`` when ``kl_coef > 0`` and none is given. History records
    use the GRPO trainer's keys where the quantity is the same (``reward``, ``kl``, ``entropy``, ``eval_accuracy``).
    """

    desc = "PPO"

    def __init__(
        self,
        model,
        reward_funcs: Callable | Sequence[Callable],
        args: PPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        callbacks: Sequence | None = None,
        *,
        task: Task | None = None,
        value_model: ValueModel | None = None,
        ref_model=None,
    ):
        args = args or PPOConfig()
        validate_ppo_config(args, reward_funcs if isinstance(reward_funcs, (list, tuple)) else [reward_funcs])
        super().__init__(model, reward_funcs, args, train_dataset, eval_dataset, processing_class, callbacks, task)
        self.value_model = value_model or ValueModel.from_policy(model)
        self.ref_model = ref_model
        if args.kl_coef > 0 and ref_model is None:
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(
            [
                {"params": model.parameters(), "lr": args.learning_rate},
                {"params": self.value_model.parameters(), "lr": args.value_learning_rate or args.learning_rate},
            ],
            weight_decay=0.0,
        )
        self.sched = make_scheduler(self.opt, args)

    def extra_state(self) -> dict:
        return {"value_model": self.value_model}

    @torch.no_grad()
    def _old(self, r, mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Log-probs of the sampling policy, values of the critic, and the reference's log-probs, all [B, T]."""
        args = (r.prompt_ids, r.prompt_mask, r.completion_ids, mask)
        logps = completion_logps(self.model, *args, self.args.temperature)
        values = self.value_model.values(*args)
        ref = completion_logps(self.ref_model, *args, self.args.temperature) if self.ref_model is not None else None
        return logps, values, ref

    def step(self) -> dict:
        """One PPO step: rollout -> scores -> per-token rewards -> GAE -> ``num_ppo_epochs`` of clipped updates."""
        cfg, G, t0 = self.args, self.args.num_generations, time.perf_counter()
        batch = self.draw(cfg.per_device_train_batch_size // G)
        r = sample_groups(
            self.model,
            self.tokenizer,
            self.prompts(batch),
            G,
            max_completion_length=cfg.max_completion_length,
            temperature=cfg.temperature,
            generator=self.gen,
        )
        scores, per_func = self.score([b for b in batch for _ in range(G)], r.texts)  # [B]
        first = torch.tensor(next(iter(per_func.values())))  # the verifier's 0/1, logged as accuracy
        if cfg.missing_eos_penalty:
            scores = scores - cfg.missing_eos_penalty * r.truncated.float()
        mask = r.completion_mask.float()  # [B, T]
        old_logps, old_values, ref = self._old(r, mask)
        rewards, kl = per_token_rewards(scores, old_logps, ref, mask, cfg.kl_coef, cfg.kl_estimator)
        if cfg.whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        adv, returns = gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
        adv = masked_whiten(adv, mask)
        stats = self.update(r, mask, old_logps, old_values, adv, returns)
        self.sched.step()
        self.step_idx += 1
        rec = {
            "step": self.step_idx,
            "reward": float(scores.mean()),
            "accuracy": float(first.mean()),
            "kl": float(masked_mean(kl, mask)),
            "explained_variance": explained_variance(old_values, returns, mask),
            "value_mean": float(masked_mean(old_values, mask)),
            "completion_length": float(mask.sum(1).mean()),
            "learning_rate": self.opt.param_groups[0]["lr"],
            **stats,
        }
        return self.log_step(rec, t0)

    def update(self, r, mask, old_logps, old_values, adv, returns) -> dict:
        """``num_ppo_epochs`` passes of ``num_mini_batches`` clipped policy + value updates; the last one's stats.

        The minibatch order comes from the sampling generator, on its device (``loop.make_generator``)."""
        cfg, B = self.args, mask.shape[0]
        self.model.train()
        self.value_model.train()
        for _ in range(cfg.num_ppo_epochs):
            for idx in torch.randperm(B, generator=self.gen, device=self.gen.device).chunk(cfg.num_mini_batches):
                args = (r.prompt_ids[idx], r.prompt_mask[idx], r.completion_ids[idx], mask[idx])
                logps, ent = completion_logps(self.model, *args, cfg.temperature, with_entropy=True)
                ent = ent.detach()  # logged only: drop its graph now rather than hold it through the next pass
                # PPO's policy loss is GRPO's with a per-token advantage and a token mean ("bnpo" = TRL's masked_mean).
                terms = grpo.grpo_loss_terms(
                    logps, old_logps[idx], adv[idx], mask[idx], epsilon=cfg.cliprange, loss_type="bnpo"
                )
                vloss, vclip = value_loss(
                    self.value_model.values(*args), old_values[idx], returns[idx], mask[idx], cfg.cliprange_value
                )
                loss = terms.loss + cfg.vf_coef * vloss
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                gn = torch.nn.utils.clip_grad_norm_(
                    [*self.model.parameters(), *self.value_model.parameters()], cfg.max_grad_norm
                )
                self.opt.step()
        self.model.eval()
        self.value_model.eval()
        return {
            "policy_loss": float(terms.loss.detach()),
            "value_loss": float(vloss.detach()),
            "value_clip_fraction": float(vclip),
            "clip_fraction": terms.metrics()["clip_ratio/region_mean"],
            "grad_norm": float(gn),
            "entropy": float(masked_mean(ent, mask[idx])),
        }

    def postfix(self, rec: dict) -> dict:
        return {"reward": f"{rec['reward']:.2f}", "ev": f"{rec['explained_variance']:.2f}"}
