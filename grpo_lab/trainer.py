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
  adds a ``GradScaler`` (unscaled before clipping; skipped updates are counted in the record).
- With ``beta > 0`` the reference is a frozen copy of the model, or, for a LoRA (peft) model, the same
  model with its adapters disabled (``model.disable_adapter()``): no second copy of the base weights.
- Dynamic sampling (DAPO, arXiv 2503.14476) is implemented by dropping groups with zero reward std from
  the update; DAPO also resamples to refill the batch, which costs extra generation we skip on a CPU.
- Checkpoints hold the model, optimizer, scheduler and both random generators (prompt order, sampling),
  so a resumed run continues bit-for-bit like an uninterrupted one (tested).
- Every step appends a diagnostics record (built by ``record``, apart from the algorithm): the quantities
  to watch instead of the loss, which starts near 0 by construction (on-policy the ratio is 1 and
  group-centred advantages average to 0; notebook 03).
- The learning-rate schedule is ``transformers.get_scheduler``, the one TRL's trainer builds, so the two
  backends follow the same curve for the same ``lr_scheduler_type`` and ``warmup_steps``.
"""

from __future__ import annotations

import contextlib
import inspect
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from transformers import get_scheduler

from grpo_lab import grpo
from grpo_lab.env import reuse_freed_memory
from grpo_lab.errors import GrpoLabError
from grpo_lab.models.devices import autocast, compute_dtype_problem, grad_scaler
from grpo_lab.rollout import Rollout, completion_logps, sample_groups
from grpo_lab.tasks import Problem, Task


class ConfigError(ValueError, GrpoLabError):
    """A trainer configuration that cannot work; the message names the fix."""


@dataclass
class GRPOConfig:
    """The knobs of the from-scratch trainer, named and defaulted as in TRL 1.16's ``GRPOConfig`` where it has them.

    ``per_device_train_batch_size`` counts completions (not prompts), as in TRL: a step draws
    ``per_device_train_batch_size // num_generations`` prompts. TRL defaults we change for tiny models on a
    CPU: ``learning_rate`` (TRL: 1e-6), ``max_completion_length`` (512), ``num_generations`` (8 kept).
    Extra knobs: ``dynamic_sampling`` (DAPO), ``eval_steps``/``eval_size`` (held-out greedy accuracy),
    ``save_steps`` (checkpoints into ``output_dir``), ``compute_dtype`` ("fp32" | "bf16" | "fp16": the
    autocast dtype of the forward passes; weights and optimizer stay in their own dtype). TRL spells the
    last one as two booleans, ``bf16``/``fp16`` (on by default there); ``trl_backend.trl_args`` maps it.
    """

    learning_rate: float = 1e-4
    num_generations: int = 8
    per_device_train_batch_size: int = 64
    max_completion_length: int = 8
    max_steps: int = 100
    temperature: float = 1.0
    top_k: int | None = None
    beta: float = 0.0
    epsilon: float = 0.2
    epsilon_high: float | None = None
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    importance_sampling_level: str = "token"
    num_iterations: int = 1
    max_grad_norm: float = 1.0
    mask_truncated_completions: bool = False
    dynamic_sampling: bool = False
    reward_weights: list[float] | None = None
    lr_scheduler_type: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    seed: int = 0
    eval_steps: int = 0
    eval_size: int = 200
    save_steps: int = 0
    output_dir: str | None = None
    compute_dtype: str = "fp32"

    @classmethod
    def from_dict(cls, d: dict) -> GRPOConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if {"bf16", "fp16"} & set(unknown):
            raise ConfigError(
                "bf16/fp16 are TRL's flags; here the precision is one setting: compute_dtype='bf16', "
                "'fp16' or 'fp32' (a preset's runtime['compute_dtype'])"
            )
        if unknown:
            raise ConfigError(f"unknown GRPO setting(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


def validate_config(cfg: GRPOConfig, reward_funcs: Sequence[Callable], device: torch.device) -> None:
    """Reject configurations that cannot work, before any compute: the errors TRL would raise, and ours."""
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
    problem = compute_dtype_problem(device, cfg.compute_dtype)
    if problem:
        raise ConfigError(problem)
    if cfg.num_iterations < 1:
        raise ConfigError(f"num_iterations={cfg.num_iterations}: use 1 (on-policy) or more updates per rollout")
    if cfg.temperature <= 0:
        raise ConfigError(f"temperature={cfg.temperature}: GRPO needs sampling (> 0) so that a group's rewards differ")
    if cfg.lr_scheduler_type not in ("constant", "linear", "cosine"):
        raise ConfigError(f"lr_scheduler_type={cfg.lr_scheduler_type!r}: use 'constant', 'linear' or 'cosine'")
    if cfg.reward_weights is not None and len(cfg.reward_weights) != len(reward_funcs):
        raise ConfigError(f"{len(cfg.reward_weights)} reward_weights for {len(reward_funcs)} reward functions")
    if not reward_funcs:
        raise ConfigError("pass at least one reward function")
    for f in reward_funcs:
        check_reward_signature(f)


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


def task_reward(task: Task) -> Callable:
    """A TRL-style correctness reward for a char-level task: 1.0 if ``task.check`` accepts the completion.

    Reads the ``problem`` column (one ``Problem`` per completion) that the trainer passes along.
    """

    def correctness(prompts, completions, problem, **kwargs) -> list[float]:
        return [float(task.check(p, c.strip())) for p, c in zip(problem, completions)]

    correctness.__name__ = f"{task.name}_correct"
    return correctness


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


class GRPOTrainer:
    """The from-scratch GRPO trainer. ``train()`` runs ``max_steps`` of ``step()``; see the module docstring.

    ``train_problems``: the prompts to draw from (``Problem`` objects; their ``prompt`` is what the model
    continues and every field travels to the reward functions as a column). ``eval_problems``: held-out
    problems for greedy accuracy every ``eval_steps``. ``ref_model``: a frozen copy for the KL term (made
    from ``model`` when ``beta > 0`` and none is given).
    """

    def __init__(
        self,
        model,
        tokenizer,
        reward_funcs: Callable | Sequence[Callable],
        train_problems: list[Problem],
        config: GRPOConfig | None = None,
        *,
        task: Task | None = None,
        eval_problems: list[Problem] | None = None,
        ref_model=None,
        callbacks: Sequence[Callable] = (),
    ):
        self.cfg = config or GRPOConfig()
        self.model, self.tokenizer = model, tokenizer
        self.reward_funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
        self.device = next(model.parameters()).device
        validate_config(self.cfg, self.reward_funcs, self.device)
        reuse_freed_memory()  # each step's large CPU tensors reuse the last step's pages (same results)
        if not train_problems:
            raise ConfigError("train_problems is empty")
        self.train_problems, self.eval_problems, self.task = list(train_problems), eval_problems, task
        self.callbacks = list(callbacks)
        self.ref_model = ref_model
        if self.cfg.beta > 0 and self.ref_model is None and not hasattr(model, "disable_adapter"):
            import copy

            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.scaler = grad_scaler(self.device, self.cfg.compute_dtype)  # fp16 only
        self.opt = torch.optim.AdamW(
            model.parameters(),
            lr=self.cfg.learning_rate,
            weight_decay=self.cfg.weight_decay,
            betas=(self.cfg.adam_beta1, self.cfg.adam_beta2),
        )
        # transformers' schedules, as TRL builds them. Their warmup starts at lr 0 on step 0 (lr_t = t / warmup,
        # so the first update is a no-op) where our own schedule used to start at 1 / warmup: with
        # warmup_steps > 0 every warmup step now runs one notch lower; after warmup the two are the same.
        # HF's plain "constant" ignores warmup, so it becomes "constant_with_warmup" (equal when warmup is 0).
        name = {"constant": "constant_with_warmup"}.get(self.cfg.lr_scheduler_type, self.cfg.lr_scheduler_type)
        self.sched = get_scheduler(
            name, self.opt, num_warmup_steps=self.cfg.warmup_steps, num_training_steps=self.cfg.max_steps
        )
        self.rng = random.Random(self.cfg.seed)
        self.gen = torch.Generator(device="cpu" if self.device.type != "cuda" else self.device).manual_seed(
            self.cfg.seed
        )
        self.step_idx = 0
        self.history: list[dict] = []
        self.eval_at_start: float | None = None
        self.weights = torch.tensor(self.cfg.reward_weights or [1.0] * len(self.reward_funcs), dtype=torch.float32)

    # ----------------------------------------------------------------------------------------------
    def score(self, rollout: Rollout, problems: list[Problem]) -> tuple[torch.Tensor, dict[str, list[float]]]:
        """Weighted sum of the reward functions for each completion, and each function's raw scores."""
        prompts = [p.prompt for p in problems]
        columns = {"problem": problems, "answer": [p.answer for p in problems]}
        per_func = {}
        total = torch.zeros(len(problems))
        for w, f in zip(self.weights, self.reward_funcs):
            scores = f(prompts=prompts, completions=rollout.texts, **columns)
            if len(scores) != len(problems):
                raise ConfigError(
                    f"reward function {f.__name__} returned {len(scores)} scores for {len(problems)} completions"
                )
            vals = torch.tensor([0.0 if s is None else float(s) for s in scores])
            per_func[getattr(f, "__name__", "reward")] = vals.tolist()
            total += w * vals
        return total, per_func

    def step(self) -> dict:
        """One GRPO step: rollout -> reward -> advantages -> ``num_iterations`` x (loss -> update); returns its record."""
        cfg, G, t0 = self.cfg, self.cfg.num_generations, time.perf_counter()
        if torch.is_autocast_enabled(self.device.type):
            raise ConfigError(
                "step() ran inside a torch.autocast region: its weight cache would hide every update "
                "from later forwards. Remove the outer autocast and set compute_dtype instead"
            )
        # 1. Rollout: G completions for each drawn prompt, with the sampling policy's log-probs.
        batch = [self.rng.choice(self.train_problems) for _ in range(cfg.per_device_train_batch_size // G)]
        with self.autocast():
            rollout = sample_groups(
                self.model,
                self.tokenizer,
                [p.prompt for p in batch],
                G,
                max_completion_length=cfg.max_completion_length,
                temperature=cfg.temperature,
                top_k=cfg.top_k,
                generator=self.gen,
            )
        problems = [p for p in batch for _ in range(G)]  # [B]: each prompt's problem, once per completion
        # 2. Reward, then 3. group-relative advantages. A group with equal rewards has A = 0 (no signal).
        rewards, per_func = self.score(rollout, problems)  # [B]
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
        self.advance_schedule(updated=update is not None and update[-1] < cfg.num_iterations)
        self.step_idx += 1
        return self.log_step(self.record(rollout, rewards, per_func, zero_std, keep, update), t0)

    def update(self, pi, pm, ci, cm, adv) -> tuple:
        """``num_iterations`` optimizer steps on one rollout; returns ``(terms, grad_norm, entropy, mask,
        skipped)`` of the last iteration, ``skipped`` counting fp16 updates the loss scaler dropped (inf/NaN
        gradients; ``torch.amp.GradScaler`` skips them and lowers its scale)."""
        cfg, old, skipped = self.cfg, None, 0
        ref = self.ref_logps(pi, pm, ci, cm)
        self.model.train()
        for _ in range(cfg.num_iterations):
            with self.autocast():
                logps, ent = completion_logps(self.model, pi, pm, ci, cm, cfg.temperature, True, cfg.num_generations)
            if old is None:  # the policy before this rollout's first update (module docstring)
                old = logps.detach()
            terms = grpo.grpo_loss_terms(
                logps,
                old,
                adv,
                cm,
                ref_logps=ref,
                beta=cfg.beta,
                epsilon=cfg.epsilon,
                epsilon_high=cfg.epsilon_high,
                loss_type=cfg.loss_type,
                max_completion_length=cfg.max_completion_length,
                importance_sampling_level=cfg.importance_sampling_level,
            )
            self.opt.zero_grad(set_to_none=True)
            if self.scaler is None:
                terms.loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                self.opt.step()
                continue
            self.scaler.scale(terms.loss).backward()
            self.scaler.unscale_(self.opt)  # clip the true gradient, not the scaled one
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            scale = self.scaler.get_scale()
            self.scaler.step(self.opt)
            self.scaler.update()
            skipped += int(self.scaler.get_scale() < scale)  # the scale drops exactly when the step was skipped
        self.model.eval()
        return terms, grad_norm, ent, cm, skipped

    def autocast(self):
        """A fresh autocast region in ``compute_dtype`` for one forward pass (a null context in fp32)."""
        return autocast(self.device, self.cfg.compute_dtype)

    def ref_logps(self, prompt_ids, prompt_mask, completion_ids, completion_mask) -> torch.Tensor | None:
        """The reference's per-token log-probs [B, T] for the KL term, or None when ``beta == 0``: the frozen
        copy, or for a LoRA (peft) model without one the base model with its adapters disabled (as TRL does)."""
        if self.cfg.beta <= 0:
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
                self.cfg.temperature,
                group_size=self.cfg.num_generations,
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
        update,
    ) -> dict:
        """The diagnostics of one step: the quantities to watch instead of the loss (TRL's names where it has them).

        ``update`` is ``(terms, grad_norm, entropy, mask, skipped)`` of the last iteration, or None when no
        group was kept; then loss and grad_norm are 0 and entropy NaN. With fp16 the record also holds
        ``amp_scale`` (the loss scale for the next step) and ``amp_skipped_steps`` (updates skipped this step). ``learning_rate`` is the one the next step uses
        (read after the schedule's tick, as HF's Trainer logs it).
        """
        stats = {"loss": 0.0, "grad_norm": 0.0, "entropy": float("nan")}
        if update is not None:
            terms, grad_norm, ent, cm, skipped = update
            stats = {
                "loss": float(terms.loss),
                "grad_norm": float(grad_norm),
                "entropy": float((ent * cm).sum() / cm.sum().clamp(min=1)),
                **terms.metrics(),
            }
        if self.scaler is not None:
            stats.update(amp_scale=float(self.scaler.get_scale()), amp_skipped_steps=update[-1] if update else 0)
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
        }
        for name, vals in per_func.items():
            rec[f"rewards/{name}"] = sum(vals) / len(vals)
        return rec

    def log_step(self, rec: dict, t0: float) -> dict:
        """Finish a step's record (held-out accuracy every ``eval_steps``, step time), keep it, tell the
        callbacks, and checkpoint every ``save_steps``."""
        cfg = self.cfg
        if (
            cfg.eval_steps
            and self.eval_problems
            and (self.step_idx % cfg.eval_steps == 0 or self.step_idx == cfg.max_steps)
        ):
            rec["eval_accuracy"] = self.evaluate()
        rec["step_time"] = time.perf_counter() - t0
        self.history.append(rec)
        for cb in self.callbacks:
            cb(rec)
        if cfg.save_steps and cfg.output_dir and self.step_idx % cfg.save_steps == 0:
            self.save_checkpoint(Path(cfg.output_dir) / f"checkpoint-{self.step_idx}")
        return rec

    def evaluate(self, problems: list[Problem] | None = None) -> float:
        """Greedy accuracy on held-out problems (the task's own checker)."""
        from grpo_lab.evaluation import evaluate

        problems = problems or self.eval_problems
        if self.task is None or not problems:
            raise ConfigError("evaluation needs task=... and eval_problems=...")
        with self.autocast():
            return evaluate(self.model, self.tokenizer, self.task, problems[: self.cfg.eval_size]).accuracy

    def train(self, progress: bool = True) -> TrainResult:
        """Run until ``max_steps`` (continuing from a resumed step), with a progress bar (``train_loop``)."""
        return train_loop(
            self,
            "GRPO",
            lambda r: {"reward": f"{r['reward']:.2f}", "zero_std": f"{r['frac_reward_zero_std']:.2f}"},
            progress,
        )

    # ----------------------------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> Path:
        """Write everything needed to resume exactly (written to a temp file, then renamed: a crash mid-write
        never leaves a half checkpoint under the final name)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "python_rng": self.rng.getstate(),
            "torch_gen": self.gen.get_state(),
            "step": self.step_idx,
            "history": self.history,
            "config": asdict(self.cfg),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }
        tmp = path / "trainer_state.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(path / "trainer_state.pt")
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a ``save_checkpoint`` folder into this trainer (same model architecture and config)."""
        f = Path(path) / "trainer_state.pt"
        if not f.exists():
            raise FileNotFoundError(
                f"no trainer_state.pt in {path}: pass a checkpoint-N folder written by save_checkpoint"
            )
        state = torch.load(f, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.rng.setstate(state["python_rng"])
        self.gen.set_state(state["torch_gen"])
        self.step_idx, self.history = state["step"], state["history"]
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``checkpoint-N`` folder with the largest N in ``output_dir``, or None."""
    cands = [p for p in Path(output_dir).glob("checkpoint-*") if (p / "trainer_state.pt").exists()]
    return max(cands, key=lambda p: int(p.name.split("-")[1]), default=None)


def train_loop(agent, desc: str, postfix: Callable[[dict], dict], progress: bool = True) -> TrainResult:
    """``agent.step()`` until ``agent.cfg.max_steps`` with a bar of ``postfix(record)`` (GRPO's and PPO's loop);
    held-out accuracy first when ``eval_steps`` is set: the algorithm's effect is the rise from there."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    if agent.step_idx == 0 and agent.cfg.eval_steps and agent.eval_problems and agent.task is not None:
        agent.eval_at_start = agent.evaluate()
    bar = tqdm(total=agent.cfg.max_steps, initial=agent.step_idx, desc=desc, disable=not progress)
    while agent.step_idx < agent.cfg.max_steps:
        rec = agent.step()
        bar.set_postfix(
            {**postfix(rec), **({"eval_acc": f"{rec['eval_accuracy']:.2f}"} if "eval_accuracy" in rec else {})}
        )
        bar.update(1)
    bar.close()
    return TrainResult(agent.history, time.perf_counter() - t0, agent.step_idx)
