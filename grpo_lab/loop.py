"""What every from-scratch trainer shares, in TRL's shape: data, rewards, the loop, logging, checkpoints.

``GRPOTrainer`` (``trainer``) and ``PPOTrainer`` (``ppo``) subclass ``LoopTrainer`` and write only their
``step()``: one rollout, its rewards, its update, and the step's record. Everything around that lives here,
written once:

- Data: a ``datasets.Dataset`` with a ``prompt`` column (TRL's convention: every other column travels to
  the reward functions as a keyword list, one value per completion), or a list of ``tasks.Problem``
  (columns ``problem``, ``answer``, ``question``, ``meta``).
- Rewards: ``score`` calls each TRL-signature function ``f(prompts, completions, **columns) -> list[float |
  None]`` (None counts as 0) and sums them with ``reward_weights``; ``task_reward(task)`` is a task's
  checker as such a function, the one the TRL backend hands to TRL too.
- Sampling: ``make_generator``, one rule for every trainer: a ``torch.Generator`` on the model's device for
  CUDA and MPS (``torch.multinomial`` refuses a CPU generator there), a CPU one otherwise.
- The schedule: ``make_scheduler``, transformers' ``get_scheduler`` as TRL builds it.
- ``train()``: the loop, held-out accuracy, records in ``trainer.state.log_history`` (``trainer.history``),
  callbacks (transformers ``TrainerCallback`` objects get ``on_train_begin``/``on_step_end``/``on_log``/
  ``on_save``/``on_train_end``; plain callables get each record), checkpoints every ``save_steps``, and
  ``resume_from_checkpoint`` as in transformers' ``Trainer.train``.
- Checkpoints in Hugging Face's layout, written atomically (``checkpoint``).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, get_scheduler

from grpo_lab import checkpoint as ckpt
from grpo_lab.errors import ConfigError, TrainingDivergedError
from grpo_lab.progress import StepBar
from grpo_lab.rollout import make_generator  # noqa: F401  (the trainers' rule, kept importable from here)
from grpo_lab.tasks import Problem, Task

latest_checkpoint = ckpt.latest_checkpoint


@dataclass
class TrainResult:
    """What ``train()`` returns: the records (``trainer.state.log_history``), wall seconds and the last step."""

    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


# --------------------------------------------------------------------------------------------------
# Data and rewards
# --------------------------------------------------------------------------------------------------


def as_rows(data, name: str) -> list:
    """``Problem``s as given, or a ``datasets.Dataset`` (or list of dicts) as dict rows with a ``prompt``."""
    if data is None:
        return []
    rows = [dict(r) for r in data] if hasattr(data, "column_names") else list(data)
    for r in rows[:1]:
        if not isinstance(r, Problem) and not (isinstance(r, dict) and "prompt" in r):
            raise ConfigError(f"{name}: pass a datasets.Dataset with a 'prompt' column or a list of Problems")
    return rows


def prompt_text(row, processing_class=None) -> str:
    """The text the model continues: a ``Problem``'s prompt, a row's ``prompt`` string, or a conversational
    ``prompt`` (a list of messages) through the tokenizer's chat template, as TRL does."""
    if isinstance(row, Problem):
        return row.prompt
    p = row["prompt"]
    if isinstance(p, str):
        return p
    return processing_class.apply_chat_template(p, tokenize=False, add_generation_prompt=True)


def reward_columns(rows: list) -> dict[str, list]:
    """The keyword columns the reward functions get, one value per row (TRL: every column but ``prompt``)."""
    if rows and isinstance(rows[0], Problem):
        return {
            "problem": rows,
            "answer": [p.answer for p in rows],
            "question": [p.question for p in rows],
            "meta": [p.meta for p in rows],
        }
    return {k: [r[k] for r in rows] for k in (rows[0] if rows else {}) if k != "prompt"}


def problems_from_columns(prompts, answer, question=None, meta=None) -> list[Problem]:
    """``Problem``s rebuilt from dataset columns (``meta`` as JSON text or a dict; ``question`` optional)."""
    n = len(prompts)
    question = question if question is not None else [""] * n
    meta = meta if meta is not None else ["{}"] * n
    return [
        Problem(p, q, str(a), json.loads(m) if isinstance(m, str) else dict(m or {}))
        for p, q, a, m in zip(prompts, question, answer, meta)
    ]


def as_problems(rows: list, processing_class=None) -> list[Problem]:
    """Held-out rows as ``Problem``s for ``evaluation.evaluate`` (a dataset row needs an ``answer``)."""
    if not rows or isinstance(rows[0], Problem):
        return list(rows)
    if "answer" not in rows[0]:
        raise ConfigError("eval_dataset needs an 'answer' column for held-out accuracy")
    cols = reward_columns(rows)
    prompts = [prompt_text(r, processing_class) for r in rows]
    return problems_from_columns(prompts, cols["answer"], cols.get("question"), cols.get("meta"))


def task_reward(task: Task) -> Callable:
    """A TRL-style correctness reward for a task: 1.0 if ``task.check`` accepts the stripped completion
    (computed for the whole batch by ``task.check_many``, which the code task runs in parallel; what the last
    batch's checks counted, ``task.batch_metrics()``, is left in the function's ``last_metrics``).

    Reads the ``problem`` column (one ``Problem`` per completion) when the trainer passes one; otherwise it
    rebuilds the problems from the ``answer`` (and optional ``question``/``meta``) columns of a dataset, as
    TRL passes them, so the same function serves both trainers and the TRL backend.
    """

    def correctness(prompts, completions, problem=None, answer=None, question=None, meta=None, **kwargs):
        if problem is None:
            if answer is None:
                raise ConfigError(f"{task.name}_correct needs a 'problem' or an 'answer' column")
            problem = problems_from_columns(prompts, answer, question, meta)
        scores = [float(ok) for ok in task.check_many(list(problem), [c.strip() for c in completions])]
        correctness.last_metrics = task.batch_metrics()
        return scores

    correctness.__name__ = f"{task.name}_correct"
    return correctness


def score(
    reward_funcs: Sequence[Callable],
    weights: torch.Tensor,
    prompts: list,
    completions: list[str],
    columns: dict,
    metrics: dict | None = None,
) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """Weighted sum of the reward functions for each completion [B], and each function's raw scores by name.

    Each function is called as TRL calls it, ``f(prompts=..., completions=..., **columns)``; a None score
    counts as 0. The names are the functions' ``__name__`` (made unique), logged as ``rewards/<name>``.
    ``metrics`` (a dict, filled when given): ``reward_seconds``, the wall time spent in the functions, and
    each function's ``last_metrics`` (a dict it may set during the call, e.g. the code reward's counts of
    programs stopped for a forbidden operation) under ``<name>/<key>``.
    """
    t0 = time.perf_counter()
    per_func: dict[str, list[float]] = {}
    total = torch.zeros(len(completions))
    for w, f in zip(weights, reward_funcs):
        scores = f(prompts=prompts, completions=completions, **columns)
        name = getattr(f, "__name__", "reward")
        if len(scores) != len(completions):
            raise ConfigError(
                f"reward function {name} returned {len(scores)} scores for {len(completions)} completions"
            )
        vals = torch.tensor([0.0 if s is None else float(s) for s in scores])
        while name in per_func:
            name += "_"
        per_func[name] = vals.tolist()
        total += w * vals
        if metrics is not None:
            for k, v in (getattr(f, "last_metrics", None) or {}).items():
                metrics[f"{name}/{k}"] = v
    if metrics is not None:
        metrics["reward_seconds"] = time.perf_counter() - t0
    return total, per_func


# --------------------------------------------------------------------------------------------------
# Devices, generators, schedules
# --------------------------------------------------------------------------------------------------


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def scheduler_name(lr_scheduler_type: str) -> str:
    """transformers' name for a schedule. Its plain ``"constant"`` ignores warmup, so it becomes
    ``"constant_with_warmup"`` (the same schedule when ``warmup_steps`` is 0). Used by every backend."""
    return {"constant": "constant_with_warmup"}.get(lr_scheduler_type, lr_scheduler_type)


def make_scheduler(optimizer: torch.optim.Optimizer, args):
    """``transformers.get_scheduler`` as TRL builds it (warmup starts at lr 0 on step 0)."""
    return get_scheduler(
        scheduler_name(args.lr_scheduler_type),
        optimizer,
        num_warmup_steps=args.warmup_steps,
        num_training_steps=args.max_steps,
    )


# --------------------------------------------------------------------------------------------------
# The trainer scaffold
# --------------------------------------------------------------------------------------------------


class NonFiniteGuard:
    """Stops a run that cannot learn: its loss non-finite for ``patience`` consecutive steps, or more than
    ``max_skip_share`` of the last ``window`` optimizer updates skipped (fp16's ``torch.amp.GradScaler`` skips an
    update whose gradients overflowed and halves its scale; a fresh scaler at 2**16 may skip a few at the start, so
    the share is judged only once ``window`` updates were seen). Both trainers call ``observe`` once a step
    (``trainer.GRPOTrainer.step``, ``trl_backend.NonFiniteStopCallback``); it raises ``TrainingDivergedError``.

    Why: Qwen2.x was trained in bf16 and fp16 overflows are reported for it on pre-Ampere GPUs (a T4 has no
    bf16); an fp16 run whose every update is skipped otherwise runs to the end and reports "no learning"."""

    def __init__(self, patience: int = 3, window: int = 20, max_skip_share: float = 0.5):
        self.patience, self.window, self.max_skip_share = patience, window, max_skip_share
        self.streak = 0
        self.skips: list[int] = []

    def observe(self, loss: float, skipped: int = 0, updates: int = 1) -> None:
        """One step: its loss, and how many of its ``updates`` optimizer updates were skipped."""
        self.streak = self.streak + 1 if not math.isfinite(loss) else 0
        self.skips += [1] * min(skipped, updates) + [0] * max(0, updates - skipped)
        recent = self.skips[-self.window :]
        why = None
        if self.streak >= self.patience:
            why = f"the loss was non-finite ({loss}) for {self.streak} consecutive steps"
        elif len(recent) >= self.window and sum(recent) > self.max_skip_share * len(recent):
            why = f"the fp16 loss scaler skipped {sum(recent)} of the last {len(recent)} updates"
        if why:
            raise TrainingDivergedError(
                f"training stopped: {why}, so the model is not learning. Fixes: train in bf16 on a GPU that has it "
                "(compute capability >= 8, compute_dtype='bf16'), lower learning_rate (e.g. by 2-5x), or use the "
                "LoRA preset t4-qwen2.5-0.5b-gsm8k-lora (fp16 frozen base, fp32 adapters)"
            )


class NonFiniteStopCallback(TrainerCallback):
    """``loop.NonFiniteGuard`` for TRL: reads each step's loss from TRL's log (``trl_args`` turns HF Trainer's
    ``logging_nan_inf_filter`` off, so a NaN is logged as NaN) and whether the update was skipped: under fp16,
    accelerate's ``AcceleratedOptimizer.step_was_skipped`` (the GradScaler found inf/NaN gradients); otherwise,
    like the from-scratch trainer, a non-finite gradient is dropped before ``optimizer.step()``
    (``on_pre_optimizer_step``: AdamW skips a parameter whose grad is None), so one bad step does not turn every
    weight into NaN. Raises ``TrainingDivergedError`` from ``on_log``, which stops ``trainer.train``."""

    def __init__(self, fp16: bool, guard: NonFiniteGuard | None = None):
        self.fp16, self.guard, self._skipped = fp16, guard or NonFiniteGuard(), 0

    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        if self.fp16 or model is None:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads and not all(bool(torch.isfinite(g).all()) for g in grads):
            model.zero_grad(set_to_none=True)
            self._skipped = 1

    def on_optimizer_step(self, args, state, control, optimizer=None, **kw):
        if self.fp16 and getattr(optimizer, "step_was_skipped", False):
            self._skipped = 1

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs and "reward" in logs:  # a step's record, not the end-of-training summary
            skipped, self._skipped = self._skipped, 0
            self.guard.observe(float(logs["loss"]), skipped)


def _is_trainer_callback(cb) -> bool:
    return isinstance(cb, TrainerCallback) or any(hasattr(cb, n) for n in ("on_log", "on_step_end"))


class LoopTrainer:
    """The shared half of the from-scratch trainers, with the constructor shape of TRL's trainers.

    A subclass sets ``self.opt``, ``self.sched`` (and ``self.scaler`` for fp16) and writes ``step()``, which
    returns its record through ``log_step``. ``state`` is a transformers ``TrainerState`` (``global_step``,
    ``log_history``); ``history`` is its ``log_history``. ``args`` is the config (``cfg`` the same object).
    """

    desc = "train"

    def __init__(self, model, reward_funcs, args, train_dataset, eval_dataset, processing_class, callbacks, task):
        if processing_class is None:
            raise ConfigError("pass processing_class=<the model's tokenizer>")
        self.model, self.args, self.task = model, args, task
        self.processing_class = self.tokenizer = processing_class
        self.reward_funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
        self.device = model_device(model)
        self.train_rows = as_rows(train_dataset, "train_dataset")
        if not self.train_rows:
            raise ConfigError("train_dataset is empty")
        self.eval_problems = as_problems(as_rows(eval_dataset, "eval_dataset"), processing_class) or None
        self.callbacks = list(callbacks or ())
        self.state = TrainerState(
            max_steps=args.max_steps, logging_steps=1, train_batch_size=args.per_device_train_batch_size
        )
        self.control = TrainerControl()
        self.rng = random.Random(args.seed)  # which prompts a step draws
        self.gen = make_generator(self.device, args.seed)  # the sampling (and PPO's minibatch order)
        self.scaler = None
        self.eval_at_start: float | None = None

    @property
    def cfg(self):
        return self.args

    @property
    def step_idx(self) -> int:
        return self.state.global_step

    @step_idx.setter
    def step_idx(self, value: int) -> None:
        self.state.global_step = value

    @property
    def history(self) -> list[dict]:
        return self.state.log_history

    def autocast(self):
        """The context of one forward pass (a null one here; the GRPO trainer autocasts to ``compute_dtype``)."""
        return contextlib.nullcontext()

    # data and rewards ------------------------------------------------------------------------------
    def draw(self, n: int) -> list:
        """``n`` training rows, drawn with replacement by the trainer's seeded ``random.Random``."""
        return [self.rng.choice(self.train_rows) for _ in range(n)]

    def prompts(self, rows: list) -> list[str]:
        return [prompt_text(r, self.processing_class) for r in rows]

    def score(self, rows: list, completions: list[str], weights: torch.Tensor | None = None):
        """``loop.score`` on these rows' prompts and columns; ``weights`` default to 1 per function. The
        step's reward metrics (seconds in the reward functions, and what they report) go to ``reward_metrics``."""
        if weights is None:
            weights = torch.ones(len(self.reward_funcs))
        prompts = [r.prompt if isinstance(r, Problem) else r["prompt"] for r in rows]
        self.reward_metrics = {}
        return score(self.reward_funcs, weights, prompts, completions, reward_columns(rows), self.reward_metrics)

    def stop_rule(self):
        """The task's extra stop rule for sampling (``Task.stop_after``: the code task's closing fence), or None."""
        if self.task is None:
            return None
        return self.task.stop_after(self.tokenizer)

    # logging, evaluation, callbacks ----------------------------------------------------------------
    def fire(self, event: str, logs: dict | None = None) -> None:
        """Tell the callbacks: a ``TrainerCallback``-like object gets ``event(args, state, control, ...)``
        (with ``logs`` for ``on_log``); a plain callable gets each record (``on_log`` only)."""
        for cb in self.callbacks:
            if _is_trainer_callback(cb):
                fn = getattr(cb, event, None)
                if fn is not None:
                    extra = {"logs": logs} if logs is not None else {}
                    kw = dict(
                        model=self.model, processing_class=self.tokenizer, optimizer=self.opt, lr_scheduler=self.sched
                    )
                    fn(self.args, self.state, self.control, **kw, **extra)
            elif event == "on_log":
                cb(logs)

    def log_step(self, rec: dict, t0: float) -> dict:
        """Finish a step's record (held-out accuracy every ``eval_steps`` and at the last step, step time),
        keep it in ``state.log_history``, tell the callbacks, and checkpoint every ``save_steps``."""
        args = self.args
        self.fire("on_step_end")
        if (
            args.eval_steps
            and self.eval_problems
            and (self.step_idx % args.eval_steps == 0 or self.step_idx == args.max_steps)
        ):
            rec["eval_accuracy"] = self.evaluate()
        rec["step_time"] = time.perf_counter() - t0
        self.state.log_history.append(rec)
        self.fire("on_log", rec)
        if args.save_steps and args.output_dir and self.step_idx % args.save_steps == 0:
            self.save_checkpoint()
            self.fire("on_save")
        return rec

    def evaluate(self, problems: list[Problem] | None = None) -> float:
        """Greedy accuracy on held-out problems (the task's own checker, ``evaluation.evaluate``)."""
        from grpo_lab.evaluation import evaluate

        problems = problems or self.eval_problems
        if self.task is None or not problems:
            raise ConfigError("evaluation needs task=... and eval_dataset=...")
        with self.autocast():
            return evaluate(self.model, self.tokenizer, self.task, problems[: self.args.eval_size]).accuracy

    # checkpoints -----------------------------------------------------------------------------------
    def save_checkpoint(self, output_dir: str | Path | None = None) -> Path:
        """``output_dir/checkpoint-N`` (default ``args.output_dir``), written atomically (``checkpoint.save``)."""
        return ckpt.save(self, Path(output_dir or self.args.output_dir))

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a ``checkpoint-N`` folder into this trainer (same architecture and config)."""
        ckpt.load(self, Path(path))

    def extra_state(self) -> dict:
        """Modules beyond ``model`` that a checkpoint must hold (PPO: the critic), by file stem."""
        return {}

    # the loop --------------------------------------------------------------------------------------
    def postfix(self, rec: dict) -> dict:
        return {"reward": f"{rec['reward']:.2f}"}

    def train(self, resume_from_checkpoint: str | Path | bool | None = None, progress: bool = True) -> TrainResult:
        """Run ``step()`` until ``max_steps`` (``train_loop``). ``resume_from_checkpoint``: a ``checkpoint-N``
        folder (or a folder of them: its latest), or True for the latest in ``args.output_dir``."""
        return train_loop(self, progress, resume_from_checkpoint)


def train_loop(trainer: LoopTrainer, progress: bool = True, resume_from_checkpoint=None) -> TrainResult:
    """``trainer.step()`` until ``args.max_steps`` with a progress bar, after an optional resume; held-out
    accuracy first when starting at step 0 with ``eval_steps`` set: the algorithm's effect is the rise from there."""
    args = trainer.args
    if resume_from_checkpoint is not None and resume_from_checkpoint is not False:
        trainer.load_checkpoint(ckpt.resolve(resume_from_checkpoint, args.output_dir))
    t0 = time.perf_counter()
    if trainer.step_idx == 0 and args.eval_steps and trainer.eval_problems and trainer.task is not None:
        trainer.eval_at_start = trainer.evaluate()
    trainer.control.should_training_stop = False
    trainer.fire("on_train_begin")
    bar = StepBar(args.max_steps, initial=trainer.step_idx, desc=trainer.desc, postfix=trainer.postfix, show=progress)
    while trainer.step_idx < args.max_steps and not trainer.control.should_training_stop:
        bar(trainer.step())
    bar.close()
    trainer.fire("on_train_end")
    return TrainResult(trainer.history, time.perf_counter() - t0, trainer.step_idx)
