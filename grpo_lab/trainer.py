"""GRPO from scratch: rollout -> reward -> advantages -> loss -> update, in one readable loop.

The loop (``GRPOTrainer.step``), with TRL's parameter names:

1. Draw ``per_device_train_batch_size / num_generations`` prompts; sample ``num_generations`` (G)
   completions for each (``rollout.sample_groups``), recording the sampling policy's log-probs.
2. Score every completion with the reward functions (TRL's signature: ``f(prompts, completions, **columns)``)
   and combine them with ``reward_weights``.
3. Group-relative advantages (``grpo.group_advantages``): reward minus the group mean, over the group std
   when ``scale_rewards="group"`` (Shao et al., DeepSeekMath, arXiv 2402.03300). No critic.
4. ``num_iterations`` optimizer steps on this batch with the clipped objective (``grpo.grpo_loss_terms``),
   plus ``beta`` * k3 KL to a frozen reference when ``beta > 0``.

Design notes:

- The "old" log-probs are those of the first iteration's forward pass, detached: the policy before its
  first update on this rollout, recomputed in training precision as TRL does (its ``old_per_token_logps``),
  not the decoding-time ones (a KV-cached, possibly reduced-precision pass). Ratio 1 in value on the first
  iteration, gradient of the policy-gradient term intact.
- Mixed precision (``compute_dtype``): a fresh ``torch.autocast`` region around each forward pass only
  (rollout, loss forward, reference forward, evaluation), never around ``optimizer.step()``: autocast
  caches the low-precision copy of each weight until its outermost region exits, so one region around
  the whole run would keep every later forward on the first step's weights (``models.devices``). fp16
  adds a ``GradScaler`` (unscaled before clipping; skipped updates are counted in the record). Without a scaler
  an update whose gradient norm is non-finite is skipped too, and ``loop.NonFiniteGuard`` stops a run whose loss
  stays non-finite or whose scaler skips most updates (``TrainingDivergedError`` naming the fixes).
- With ``beta > 0`` the reference is a frozen copy of the model, or, for a LoRA (peft) model, the same
  model with its adapters disabled (``model.disable_adapter()``): no second copy of the base weights.
- Dynamic sampling (DAPO, arXiv 2503.14476) is implemented by dropping groups with zero reward std from
  the update; DAPO also resamples to refill the batch, which costs extra generation we skip on a CPU.
- Everything around the step (data, reward scoring, logging, evaluation, callbacks, checkpoints, resume,
  the schedule, the sampling generator) is ``loop.LoopTrainer``'s, shared with ``ppo.PPOTrainer``; the
  constructor has the shape of TRL's: ``GRPOTrainer(model, reward_funcs, args=GRPOConfig(...),
  train_dataset=..., eval_dataset=..., processing_class=tokenizer, callbacks=...)``.
- Every step appends a diagnostics record (built by ``record``, apart from the algorithm): the quantities
  to watch instead of the loss, which starts near 0 by construction (on-policy the ratio is 1 and
  group-centred advantages average to 0; notebook 03).
- The learning-rate schedule is ``transformers.get_scheduler``, the one TRL's trainer builds, so the two
  backends follow the same curve for the same ``lr_scheduler_type`` and ``warmup_steps``.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from grpo_lab import grpo
from grpo_lab.config import GRPOConfig, check_reward_signature, validate_grpo_config
from grpo_lab.errors import ConfigError
from grpo_lab.loop import LoopTrainer, NonFiniteGuard, TrainResult, latest_checkpoint, make_scheduler, task_reward
from grpo_lab.models.devices import autocast, grad_scaler
from grpo_lab.rollout import Rollout, completion_logps, sample_groups
from grpo_lab.tasks import Task

# Re-exported: notebooks and older code import these from here.
__all__ = [
    "ConfigError",
    "GRPOConfig",
    "GRPOTrainer",
    "TrainResult",
    "Update",
    "check_reward_signature",
    "latest_checkpoint",
    "task_reward",
    "validate_config",
]
validate_config = validate_grpo_config


class Update(NamedTuple):
    """What ``GRPOTrainer.update`` returns: the last iteration's loss terms, gradient norm, per-token entropy
    [B, T] and completion mask [B, T], and how many fp16 updates the loss scaler skipped (inf/NaN gradients)."""

    terms: grpo.GRPOLossTerms
    grad_norm: torch.Tensor
    entropy: torch.Tensor
    completion_mask: torch.Tensor
    skipped: int


class GRPOTrainer(LoopTrainer):
    """The from-scratch GRPO trainer. ``train()`` runs ``max_steps`` of ``step()``; see the module docstring.

    ``reward_funcs``: TRL-signature functions (``task_reward(task)`` is a task's checker), weighted by
    ``args.reward_weights``. ``train_dataset``: a ``datasets.Dataset`` with a ``prompt`` column (the other
    columns go to the reward functions) or a list of ``Problem``s. ``eval_dataset`` and ``task``: held-out
    problems for greedy accuracy every ``eval_steps``. ``ref_model``: a frozen copy for the KL term (made
    from ``model`` when ``beta > 0`` and none is given; a peft model uses itself with adapters disabled).
    """

    desc = "GRPO"

    def __init__(
        self,
        model,
        reward_funcs: Callable | Sequence[Callable],
        args: GRPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        callbacks: Sequence | None = None,
        *,
        task: Task | None = None,
        ref_model=None,
    ):
        args = args or GRPOConfig()
        super().__init__(model, reward_funcs, args, train_dataset, eval_dataset, processing_class, callbacks, task)
        validate_grpo_config(args, self.reward_funcs, self.device)
        self.ref_model = ref_model
        if args.beta > 0 and ref_model is None and not hasattr(model, "disable_adapter"):
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.scaler = grad_scaler(self.device, args.compute_dtype)  # fp16 only
        self.opt = torch.optim.AdamW(
            model.parameters(),
            lr=args.learning_rate,
            weight_decay=args.weight_decay,
            betas=(args.adam_beta1, args.adam_beta2),
        )
        self.sched = make_scheduler(self.opt, args)
        self.weights = torch.tensor(args.reward_weights or [1.0] * len(self.reward_funcs), dtype=torch.float32)
        self.guard = NonFiniteGuard()  # stops a run whose loss stays non-finite or whose fp16 updates are skipped

    # ----------------------------------------------------------------------------------------------
    def step(self) -> dict:
        """One GRPO step: rollout -> reward -> advantages -> ``num_iterations`` x (loss -> update); returns its record."""
        cfg, G, t0 = self.args, self.args.num_generations, time.perf_counter()
        if torch.is_autocast_enabled(self.device.type):
            raise ConfigError(
                "step() ran inside a torch.autocast region: its weight cache would hide every update "
                "from later forwards. Remove the outer autocast and set compute_dtype instead"
            )
        # 1. Rollout: G completions for each drawn prompt, with the sampling policy's log-probs.
        batch = self.draw(cfg.per_device_train_batch_size // G)
        with self.autocast():
            rollout = sample_groups(
                self.model,
                self.tokenizer,
                self.prompts(batch),
                G,
                max_completion_length=cfg.max_completion_length,
                temperature=cfg.temperature,
                top_k=cfg.top_k,
                generator=self.gen,
                fast=cfg.fast_rollout,
                stop_after=self.stop_rule(),
            )
        t_rollout = time.perf_counter() - t0
        rows = [r for r in batch for _ in range(G)]  # [B]: each prompt's row, once per completion
        # 2. Reward, then 3. group-relative advantages. A group with equal rewards has A = 0 (no signal).
        rewards, per_func = self.score(rows, rollout.texts, self.weights)  # [B]
        adv = grpo.group_advantages(rewards, G, cfg.scale_rewards)  # [B]
        zero_std = (rewards.view(-1, G).std(dim=1) < 1e-6).repeat_interleave(G)  # [B]
        keep = ~zero_std if cfg.dynamic_sampling else torch.ones_like(zero_std)  # DAPO drops such groups
        mask = rollout.completion_mask.float()  # [B, T]
        if cfg.mask_truncated_completions:  # DAPO's overlong filtering: a cut-off answer teaches nothing
            mask = mask * (~rollout.truncated).float()[:, None]
        # 4. Loss and 5. update, num_iterations times on this rollout.
        update = None
        if bool(keep.any()):
            idx = keep.nonzero().squeeze(1)
            update = self.update(
                rollout.prompt_ids[idx],
                rollout.prompt_mask[idx],
                rollout.completion_ids[idx],
                mask[idx],
                adv[idx].to(self.device),
            )
        self.advance_schedule(updated=update is not None and update.skipped < cfg.num_iterations)
        self.step_idx += 1
        rec = self.record(rollout, rewards, per_func, zero_std, keep, update)
        rec["rollout_seconds"] = t_rollout  # sampling only; reward_seconds (scoring) is in the record too
        rec = self.log_step(rec, t0)  # logged (and checkpointed) first, so the failing step is in the history
        if update is not None:
            self.guard.observe(rec["loss"], update.skipped, cfg.num_iterations)
        return rec

    def update(self, pi, pm, ci, cm, adv) -> Update:
        """``num_iterations`` optimizer steps on one rollout; returns the last iteration's ``Update``
        (``skipped`` counts fp16 updates that ``torch.amp.GradScaler`` dropped and lowered its scale for, and, without
        a scaler, updates whose gradient norm was non-finite, which are not applied either).
        With ``micro_batch_size`` the gradient is accumulated over slices of rows (``_backward``)."""
        cfg, old, skipped = self.args, None, 0
        ref = self.ref_logps(pi, pm, ci, cm)
        self.model.train()
        for _ in range(cfg.num_iterations):
            self.opt.zero_grad(set_to_none=True)
            logps, ent = self._backward(pi, pm, ci, cm, adv, old, ref)
            old = logps if old is None else old  # the policy before this rollout's first update (module docstring)
            terms = self._terms(logps, old, adv, cm, ref)  # on detached log-probs: the whole batch's loss and metrics
            if self.scaler is None:
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                if torch.isfinite(grad_norm):
                    self.opt.step()
                else:  # as GradScaler does for fp16: a NaN/inf gradient would turn every weight into NaN
                    skipped += 1
                continue
            self.scaler.unscale_(self.opt)  # clip the true gradient, not the scaled one
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            scale = self.scaler.get_scale()
            self.scaler.step(self.opt)
            self.scaler.update()
            skipped += int(self.scaler.get_scale() < scale)  # the scale drops exactly when the step was skipped
        self.model.eval()
        return Update(terms, grad_norm, ent, cm, skipped)

    def _terms(self, logps, old, adv, cm, ref, num_items=None):
        cfg = self.args
        return grpo.grpo_loss_terms(
            logps,
            old if old is not None else logps.detach(),
            adv,
            cm,
            ref_logps=ref,
            beta=cfg.beta,
            epsilon=cfg.epsilon,
            epsilon_high=cfg.epsilon_high,
            loss_type=cfg.loss_type,
            max_completion_length=cfg.max_completion_length,
            importance_sampling_level=cfg.importance_sampling_level,
            num_items_in_batch=num_items,
        )

    def _backward(self, pi, pm, ci, cm, adv, old, ref):
        """Backward of the batch's loss, over slices of ``micro_batch_size`` rows (whole groups), each slice's
        loss weighted so the gradients add up to the whole batch's: dapo divides every slice by the batch's
        token count (TRL's ``num_items_in_batch``); bnpo weighs a slice by its share of the tokens, grpo and
        dr_grpo by its share of the rows. Each slice is cut to its own longest completion. Returns the
        detached log-probs and entropies [B, T]."""
        cfg, B, T = self.args, ci.shape[0], ci.shape[1]
        size = cfg.micro_batch_size or B
        tokens = cm.sum()
        logps, ents = torch.zeros(B, T, device=ci.device), torch.zeros(B, T, device=ci.device)
        for lo in range(0, B, size):
            sl = slice(lo, min(B, lo + size))
            w = max(int(cm[sl].sum(1).max()), 1)
            with self.autocast():
                lp, ent = completion_logps(
                    self.model,
                    pi[sl],
                    pm[sl],
                    ci[sl, :w],
                    cm[sl, :w],
                    cfg.temperature,
                    True,
                    cfg.num_generations,
                    fast=cfg.fast_rollout,
                )
            old_sl, ref_sl = (None if t is None else t[sl, :w] for t in (old, ref))
            dapo = cfg.loss_type == "dapo"
            terms = self._terms(lp, old_sl, adv[sl], cm[sl, :w], ref_sl, tokens if dapo else None)
            n_rows = sl.stop - sl.start
            share = {"bnpo": cm[sl].sum() / tokens.clamp(min=1), "dapo": 1.0}.get(cfg.loss_type, n_rows / B)
            loss = terms.loss * share
            (loss if self.scaler is None else self.scaler.scale(loss)).backward()
            logps[sl, :w], ents[sl, :w] = lp.detach().float(), ent.detach().float()
        return logps, ents

    def autocast(self):
        """A fresh autocast region in ``compute_dtype`` for one forward pass (a null context in fp32)."""
        return autocast(self.device, self.args.compute_dtype)

    def ref_logps(self, prompt_ids, prompt_mask, completion_ids, completion_mask) -> torch.Tensor | None:
        """The reference's per-token log-probs [B, T] for the KL term, or None when ``beta == 0``: the frozen
        copy, or for a LoRA (peft) model without one the base model with its adapters disabled (as TRL does)."""
        if self.args.beta <= 0:
            return None
        no_adapter = self.ref_model is None
        with (
            torch.no_grad(),
            self.autocast(),
            self.model.disable_adapter() if no_adapter else contextlib.nullcontext(),
        ):
            return completion_logps(
                self.model if no_adapter else self.ref_model,
                prompt_ids,
                prompt_mask,
                completion_ids,
                completion_mask,
                self.args.temperature,
                group_size=self.args.num_generations,
                fast=self.args.fast_rollout,
            )

    def advance_schedule(self, updated: bool) -> None:
        """One tick of the learning-rate schedule per GRPO step, whether or not this step updated the model.

        The lr is a function of the step (as in TRL), so a step that dynamic sampling emptied still moves the
        clock. torch warns when the first tick precedes the first ``optimizer.step()``; that is intended here.
        """
        if updated:
            self.sched.step()
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            self.sched.step()

    @torch.no_grad()
    def record(
        self,
        rollout: Rollout,
        rewards: torch.Tensor,
        per_func: dict[str, list[float]],
        zero_std: torch.Tensor,
        keep: torch.Tensor,
        update: Update | None,
    ) -> dict:
        """The diagnostics of one step: the quantities to watch instead of the loss (TRL's names where it has them).

        ``update`` is the last iteration's ``Update``, or None when no group was kept; then loss and grad_norm
        are 0 and entropy NaN. With fp16 the record also holds ``amp_scale`` (the loss scale for the next step)
        and ``amp_skipped_steps`` (updates skipped this step). ``learning_rate`` is the one the next step uses
        (read after the schedule's tick, as HF's Trainer logs it).
        """
        stats = {"loss": 0.0, "grad_norm": 0.0, "entropy": float("nan")}
        if update is not None:
            cm = update.completion_mask
            stats = {
                "loss": float(update.terms.loss),
                "grad_norm": float(update.grad_norm),
                "entropy": float((update.entropy * cm).sum() / cm.sum().clamp(min=1)),
                **update.terms.metrics(),
            }
        if self.scaler is not None:
            stats.update(amp_scale=float(self.scaler.get_scale()), amp_skipped_steps=update.skipped if update else 0)
        first = next(iter(per_func.values()))
        rec = {
            "step": self.step_idx,
            "reward": float(rewards.mean()),
            "reward_std": float(rewards.std()),
            "accuracy": float(sum(first) / len(first))
            if self.task is not None or len(per_func) == 1
            else float("nan"),
            "frac_reward_zero_std": float(zero_std.float().mean()),
            "completion_length": float(rollout.completion_mask.sum(1).float().mean()),
            "truncated_share": float(rollout.truncated.float().mean()),
            "learning_rate": self.opt.param_groups[0]["lr"],
            "kept_share": float(keep.float().mean()),
            **stats,
            **getattr(self, "reward_metrics", {}),
        }
        for name, vals in per_func.items():
            rec[f"rewards/{name}"] = sum(vals) / len(vals)
        return rec

    def postfix(self, rec: dict) -> dict:
        return {"reward": f"{rec['reward']:.2f}", "zero_std": f"{rec['frac_reward_zero_std']:.2f}"}
