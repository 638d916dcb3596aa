"""The same GRPO run as ``jobs.run_grpo``, on TRL 1.16's ``GRPOTrainer`` (notebook 05).

``train_with_trl(model, tokenizer, preset, out)`` reads the same preset, draws the same problems, scores with the
same reward and records a history with the from-scratch trainer's keys (and its progress bar): compare side by side.

Design notes:

- Knobs: ``preset.grpo`` already uses TRL's names, so ``trl_args`` copies them one to one into ``trl.GRPOConfig``.
  The grpo_lab-only keys become TRL equivalents (``save_steps`` -> TRL's own checkpointing) or a callback
  (``eval_steps``/``eval_size`` -> ``HeldoutEvalCallback``). ``dynamic_sampling=True`` has no counterpart in TRL
  1.16 (DAPO's "drop zero-std groups" is not in its ``GRPOConfig``), so it is refused instead of silently running a
  different algorithm.
- Data: TRL's ``Dataset`` rows cannot hold ``Problem`` objects, so each row carries the problem's fields
  (``prompt``, ``question``, ``answer`` and its ``meta`` as JSON); ``trl_reward`` is ``loop.task_reward(task)``, the
  from-scratch trainers' own function, which rebuilds the ``Problem`` from those columns. The pool of prompts is the
  same (``task.train(20000, seed + 1)``); the order differs: TRL walks a seeded shuffle of the dataset (its
  ``RepeatSampler``), the from-scratch trainer draws with replacement.
- Generation: TRL samples with ``model.generate`` at ``temperature`` for at most ``max_completion_length`` tokens
  and stops a row at any of its EOS ids (the tokenizer's EOS plus the model's generation-config EOS); ``trl_args``
  leaves ``top_p=1``, ``min_p=None`` and ``repetition_penalty=1`` so the distribution is the plain tempered softmax
  that ``rollout.sample_groups`` draws from.
- Precision: the preset's ``runtime["compute_dtype"]`` becomes TRL's ``bf16``/``fp16`` flags (HF Trainer autocasts
  each forward and scales fp16 losses with its GradScaler); ``use_cpu`` when the model sits on the CPU, no
  reporting, no hub.
- vLLM: ``runtime["use_vllm"]`` turns on TRL's vLLM generation in ``colocate`` mode (``vllm_kwargs``: refused on a
  T4, named when missing). One process, ``gradient_accumulation_steps=1``, ``steps_per_generation=1``: one optimizer
  step per generation batch, as in ``trainer.GRPOTrainer.step``.
- Reference model: with ``beta > 0`` TRL 1.16 builds the reference by loading ``model.config._name_or_path`` from
  disk. An in-memory model (a tiny model, an SFT warm start) is therefore saved to a temporary folder first and
  pointed at it, then the original name is restored.
- Tokenizer: always passed as ``processing_class``; otherwise TRL would call ``AutoTokenizer`` on the model folder,
  which for a char tokenizer rebuilds the wrong pipeline (see ``models.load_tokenizer``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from grpo_lab.config import GRPOConfig, validate_grpo_config
from grpo_lab.errors import ConfigError, MissingDependencyError
from grpo_lab.loop import NonFiniteStopCallback, model_device, scheduler_name, task_reward
from grpo_lab.models import save_model
from grpo_lab.models.devices import vllm_supported
from grpo_lab.progress import StepBar
from grpo_lab.tasks import Problem, Task, get_task

# grpo_lab knobs that TRL's GRPOConfig does not have, and what happens to each.
GRPO_LAB_ONLY = {
    "dynamic_sampling": "not in TRL 1.16: refused when True (the run would not be the same algorithm)",
    "eval_steps": "HeldoutEvalCallback: greedy held-out accuracy every eval_steps (and at the last step)",
    "eval_size": "HeldoutEvalCallback: number of held-out problems",
    "save_steps": "TRL save_strategy='steps' + save_steps (Trainer checkpoints in output_dir)",
    "output_dir": "TRL output_dir (out/checkpoints)",
    "fast_rollout": "ignored: TRL generates with model.generate (the flag picks the from-scratch rollout's path)",
    "micro_batch_size": "ignored: the from-scratch update's memory saving (TRL's is gradient_accumulation_steps)",
}

# TRL's logged names -> the from-scratch trainer's history names, where they differ.
_RENAME = {"completions/mean_length": "completion_length", "completions/clipped_ratio": "truncated_share"}
_KEEP = (
    "loss",
    "grad_norm",
    "learning_rate",
    "reward",
    "reward_std",
    "frac_reward_zero_std",
    "kl",
    "entropy",
    "clip_ratio/low_mean",
    "clip_ratio/high_mean",
    "clip_ratio/region_mean",
)


def problems_to_dataset(problems: Sequence[Problem]):
    """A ``datasets.Dataset`` with one row per problem: ``prompt`` (plain string), ``question``, ``answer``,
    ``meta`` (JSON text).

    TRL passes every column except ``prompt`` to the reward functions as a keyword with one value per
    completion (TRL 1.16 ``GRPOTrainer._calculate_rewards``), so these columns are what ``trl_reward`` sees.
    """
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [p.prompt for p in problems],
            "question": [p.question for p in problems],
            "answer": [p.answer for p in problems],
            "meta": [json.dumps(p.meta, sort_keys=True) for p in problems],
        }
    )


def trl_reward(task: Task) -> Callable:
    """``loop.task_reward(task)``, the from-scratch trainers' own reward, which reads these columns.

    Contract: called as TRL 1.16 calls reward functions, ``f(prompts=..., completions=..., answer=...,
    question=..., meta=..., **kwargs)`` with one value per completion; returns one float per completion
    (1.0 if ``task.check`` accepts the stripped completion). The ``Problem`` is rebuilt from the columns
    (``loop.problems_from_columns``); ``question``/``meta`` are optional, so a dataset with only ``prompt``
    and ``answer`` works for tasks whose check needs only the answer (addition). Its name is
    ``<task>_correct``, which TRL logs as ``rewards/<name>/mean``: the from-scratch history's name.
    """
    return task_reward(task)


def validate(knobs: dict, reward_funcs: Sequence[Callable], device: torch.device) -> GRPOConfig:
    """Refuse a configuration before TRL builds anything (``ConfigError`` naming the fix; returns the parsed
    config): ``config.validate_grpo_config``'s rules (unknown keys, TRL's ``bf16``/``fp16`` included: the setting is
    ``compute_dtype``; G < 2; batch not divisible by G; loss type; bf16 without native support; reward signature)
    and ``dynamic_sampling``. TRL raises most of these too, but later and about its own internals."""
    cfg = GRPOConfig.from_dict(dict(knobs))
    validate_grpo_config(cfg, list(reward_funcs), device)
    if cfg.dynamic_sampling:
        raise ConfigError(
            "dynamic_sampling=True has no TRL 1.16 equivalent: use backend 'grpo_lab' or set "
            "dynamic_sampling=False for the TRL run"
        )
    return cfg


VLLM_SETTINGS = ("vllm_gpu_memory_utilization", "vllm_enable_sleep_mode", "vllm_max_model_length")


def vllm_kwargs(use_vllm: bool, runtime=None, capability: tuple[int, int] | None = None) -> dict:
    """TRL's vLLM switches when asked, else ``{}``: ``use_vllm=True, vllm_mode="colocate"`` and the preset's
    ``VLLM_SETTINGS`` (TRL 1.16 ``GRPOConfig`` fields: colocate's memory share, default 0.3; sleep mode; max length).
    Refused before TRL builds anything: compute capability < 8 (a T4 is 7.5; None reads the CUDA device) is a
    ``ConfigError`` with the caveats; a missing vllm a ``MissingDependencyError`` naming the install line."""
    if not use_vllm:
        return {}
    vllm_supported(capability)  # a T4 is refused with the caveats (models.devices)
    if importlib.util.find_spec("vllm") is None:
        raise MissingDependencyError(
            'runtime["use_vllm"] is set but vllm is not installed: pip install "grpo-lab[vllm]" '
            "(a CUDA GPU is needed), or set use_vllm to False to generate with transformers"
        )
    rt = runtime or {}
    return {"use_vllm": True, "vllm_mode": "colocate", **{k: rt[k] for k in VLLM_SETTINGS if rt.get(k) is not None}}


def _optimisation(cfg: GRPOConfig) -> dict:
    """The optimisation and GRPO knobs of ``trl.GRPOConfig``: TRL's names are ours, one to one."""
    return dict(
        learning_rate=cfg.learning_rate,
        max_steps=cfg.max_steps,
        lr_scheduler_type=scheduler_name(cfg.lr_scheduler_type),
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        optim="adamw_torch",
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=cfg.num_iterations,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        importance_sampling_level=cfg.importance_sampling_level,
        mask_truncated_completions=cfg.mask_truncated_completions,
        reward_weights=cfg.reward_weights,
    )


def trl_args(
    knobs: dict,
    output_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
    use_vllm: bool = False,
    gradient_checkpointing: bool = False,
    runtime=None,
):
    """``trl.GRPOConfig`` for a preset's ``grpo`` dict (TRL names, mapped one to one).

    ``lr_scheduler_type`` goes through ``loop.scheduler_name`` (HF's plain "constant" ignores warmup, so it
    becomes ``constant_with_warmup``, as in the from-scratch trainers). Logging every step (``logging_steps=1``)
    so the history has one record per step; checkpoints only when ``save_steps`` is set. Contract: the returned
    config describes the same ``config.GRPOConfig`` on the same dict (AdamW with the same betas and weight decay,
    same clipping, one update per generation batch per ``num_iterations``). TRL defaults we override (TRL 1.16
    ``GRPOConfig``): ``bf16`` (on), ``gradient_checkpointing`` (on), ``logging_steps`` (10), ``learning_rate``
    (1e-6), ``max_completion_length`` (512), ``logging_nan_inf_filter`` (True would log a NaN loss as the running
    mean, hiding it from ``loop.NonFiniteStopCallback``). ``compute_dtype`` -> ``bf16``/``fp16``; ``use_vllm``
    adds ``vllm_kwargs(use_vllm, runtime)``. ``gradient_checkpointing``: on CUDA only, non-reentrant (as
    ``models.load_for_preset``); ``train_with_trl`` asks only when the model is not already checkpointing.
    """
    from trl import GRPOConfig as TRLConfig

    cfg = GRPOConfig.from_dict(dict(knobs))
    device = torch.device(device)
    with warnings.catch_warnings():  # TrainingArguments deprecation notices are noise here
        warnings.simplefilter("ignore")
        return TRLConfig(
            output_dir=str(output_dir),
            **_optimisation(cfg),
            # generation: plain tempered sampling, as rollout.sample_groups
            max_completion_length=cfg.max_completion_length,
            temperature=cfg.temperature,
            top_k=cfg.top_k or 0,
            top_p=1.0,
            min_p=None,
            repetition_penalty=1.0,
            # machine and bookkeeping
            bf16=cfg.compute_dtype == "bf16",
            fp16=cfg.compute_dtype == "fp16",
            use_cpu=device.type == "cpu",
            report_to=[],
            push_to_hub=False,
            logging_steps=1,
            disable_tqdm=not progress,
            log_completions=False,
            save_strategy="steps" if cfg.save_steps else "no",
            save_steps=cfg.save_steps or 500,
            disable_dropout=True,
            shuffle_dataset=True,
            logging_nan_inf_filter=False,
            gradient_checkpointing=bool(gradient_checkpointing and device.type == "cuda"),  # docstring
            gradient_checkpointing_kwargs={"use_reentrant": False},
            **vllm_kwargs(use_vllm, runtime),
        )


class HistoryCallback(TrainerCallback):
    """Builds the from-scratch trainer's history from TRL's logs, adding held-out accuracy and step time.

    Every ``eval_steps`` (and at ``max_steps``) it runs ``evaluation.evaluate`` (greedy, the task's checker) on
    ``eval_problems`` after the optimizer step and before TRL logs, the order of ``trainer.GRPOTrainer.step``.
    ``step_time`` is the wall time since the previous step ended (generation, scoring, update and evaluation, as in
    the from-scratch record). ``on_record`` callables receive each finished record (the from-scratch trainer's
    callback protocol). Relies on ``logging_steps=1`` and on the Trainer calling ``on_step_end`` before ``on_log``
    (transformers 5 ``Trainer._inner_training_loop``)."""

    def __init__(
        self,
        tokenizer,
        task: Task | None,
        eval_problems,
        eval_steps: int,
        max_steps: int,
        reward_name: str | None,
        on_record: Sequence[Callable] = (),
    ):
        self.tokenizer, self.task, self.eval_problems = tokenizer, task, eval_problems
        self.eval_steps, self.max_steps, self.reward_name = eval_steps, max_steps, reward_name
        self.on_record = list(on_record)
        self.history: list[dict] = []
        self._t: float | None = None
        self._pending: dict = {}

    def on_train_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kw):
        step = state.global_step
        if (
            self.eval_steps
            and self.eval_problems
            and self.task is not None
            and (step % self.eval_steps == 0 or step == self.max_steps)
        ):
            from grpo_lab.evaluation import evaluate

            self._pending["eval_accuracy"] = evaluate(model, self.tokenizer, self.task, self.eval_problems).accuracy

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        if "reward" not in logs:  # the end-of-training summary (train_runtime, ...)
            return
        rec = {"step": state.global_step}
        for k in _KEEP:
            if logs.get(k) is not None:
                rec[k] = float(logs[k])
        for src, dst in _RENAME.items():
            if logs.get(src) is not None:
                rec[dst] = float(logs[src])
        for k, v in logs.items():
            if k.startswith("rewards/") and k.endswith("/mean") and v is not None:
                rec[k[: -len("/mean")]] = float(v)
        if self.reward_name and f"rewards/{self.reward_name}" in rec:
            rec["accuracy"] = rec[f"rewards/{self.reward_name}"]
        rec.update(self._pending)
        self._pending = {}
        now = time.perf_counter()
        rec["step_time"] = now - (self._t or now)
        self._t = now
        self.history.append(rec)
        for cb in self.on_record:
            cb(rec)


def _restore_forward(model) -> None:
    """Undo accelerate's mixed-precision wrapper. ``Accelerator.prepare`` sets ``model.forward`` on the instance to
    an autocast wrapper that also casts the outputs to fp32 (``functools.wraps`` chains, ``__wrapped__`` leading
    back to the class's forward), and nothing removes it after training. Left in place, an evaluation after
    training would run under autocast while the one before it did not, and a before/after difference would
    include the change of precision. Only a chain of such wrappers around the class's own forward is removed."""
    model.__dict__.pop("_original_forward", None)
    fwd = model.__dict__.get("forward")
    fn = getattr(fwd, "__func__", fwd)
    while fn is not None and fn is not type(model).forward and hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    if fwd is not None and fn is type(model).forward:
        del model.__dict__["forward"]


def _fit(model, tokenizer, args, funcs, train, callbacks, *, beta: float, resume=None):
    """Build ``trl.GRPOTrainer`` and train (``resume``: TRL's own ``resume_from_checkpoint``); returns
    ``(trainer, seconds)``.

    With ``beta > 0`` TRL 1.16 reloads the reference model from ``model.config._name_or_path``: the current
    weights are saved to a temporary folder and the name pointed at it for the run, then restored.
    """
    from trl import GRPOTrainer

    old_name = model.config._name_or_path
    ref_dir = None
    try:
        if beta > 0 and not hasattr(model, "disable_adapter"):  # a peft model's reference is itself, adapters off
            ref_dir = tempfile.mkdtemp(prefix="grpo_lab_trl_ref_")
            model.save_pretrained(ref_dir)
            model.config._name_or_path = ref_dir
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = GRPOTrainer(
                model=model,
                reward_funcs=funcs,
                args=args,
                train_dataset=train,
                processing_class=tokenizer,
                callbacks=callbacks,
            )
        trainer.remove_callback(PrinterCallback)  # Trainer prints log dicts when tqdm is off; the StepBar shows steps
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trainer.train(resume_from_checkpoint=resume)
        finally:
            _restore_forward(model)
        return trainer, time.perf_counter() - t0
    finally:
        model.config._name_or_path = old_name
        if ref_dir:
            shutil.rmtree(ref_dir, ignore_errors=True)


def _callbacks(callbacks: Sequence, tokenizer, task: Task, cfg: GRPOConfig, funcs) -> tuple[HistoryCallback, list]:
    """The history recorder (with held-out problems ``task.heldout(eval_size, seed + 2)`` when ``eval_steps``)
    first, given plain callables as its listeners, then the caller's ``TrainerCallback`` objects."""
    evalp = task.heldout(cfg.eval_size, seed=cfg.seed + 2) if cfg.eval_steps else None
    plain = [c for c in callbacks if not isinstance(c, TrainerCallback)]
    hist = HistoryCallback(
        tokenizer, task, evalp, cfg.eval_steps, cfg.max_steps, getattr(funcs[0], "__name__", None), on_record=plain
    )
    guard = NonFiniteStopCallback(fp16=cfg.compute_dtype == "fp16")
    return hist, [hist, guard, *[c for c in callbacks if isinstance(c, TrainerCallback)]]


def _trl_config(model, knobs: dict, rt, out: Path, device, progress: bool):
    """``trl_args`` for ``train_with_trl`` after ``vllm_kwargs``' checks (a T4 or a missing vllm named before anything is
    built), with gradient checkpointing only when the preset asks and ``models.load_for_preset`` has not already
    turned it on (never enabled twice). TRL's own refusals (e.g. its num_generations/batch rule) -> ``ConfigError``."""
    vllm = bool(rt.get("use_vllm"))
    vllm_kwargs(vllm, rt)
    ckpt = bool(rt.get("gradient_checkpointing")) and not getattr(model, "is_gradient_checkpointing", False)
    try:
        return trl_args(
            knobs,
            out / "checkpoints",
            device=device,
            progress=progress,
            use_vllm=vllm,
            runtime=rt,
            gradient_checkpointing=ckpt,
        )
    except ValueError as e:
        raise ConfigError(f"TRL rejected the configuration: {e}") from None


def train_with_trl(
    model,
    tokenizer,
    preset,
    out: Path,
    progress: bool = True,
    callbacks: Sequence = (),
    *,
    reward_funcs: Callable | Sequence[Callable] | None = None,
    task: Task | None = None,
    resume_from_checkpoint: str | Path | bool | None = None,
) -> tuple[dict, list[dict]]:
    """GRPO with ``trl.GRPOTrainer`` on ``preset``: the TRL twin of ``jobs.run_grpo``. Returns ``(summary,
    history)``; ``summary`` has ``seconds`` and ``steps``; ``history`` one record per step with the
    from-scratch keys (step, reward, accuracy, eval_accuracy, frac_reward_zero_std, kl, entropy,
    clip_ratio/*, completion_length, truncated_share, learning_rate, step_time, ...).

    ``model`` is trained in place (TRL wraps nothing in one process) and saved with the tokenizer to
    ``out/final``. ``task``: the task to train on, passed in by the caller (a GSM8K task built with the
    tokenizer, for chat prompts); default ``get_task(preset.task)``. Data: ``task.train(20000, seed + 1)``,
    held-out ``task.heldout(eval_size, seed + 2)``, the seeds ``run_grpo`` uses. ``reward_funcs`` defaults
    to ``[trl_reward(task)]``; any TRL-style reward function (``f(prompts, completions, **kwargs)``; columns
    ``answer``, ``question``, ``meta``) may be passed instead. ``callbacks``: plain callables get each
    history record (as with the from-scratch trainer); ``transformers.TrainerCallback`` objects go to TRL
    unchanged. Bad configurations raise ``ConfigError`` before TRL builds anything.
    ``resume_from_checkpoint`` goes to TRL's ``trainer.train`` unchanged: a ``checkpoint-N`` folder, or True
    for the latest in ``out/checkpoints`` (weights, optimizer, scheduler, RNG and step counter restored);
    the history then holds the steps run after the checkpoint.
    """
    out = Path(out)
    task = task or get_task(preset.task)
    funcs = [trl_reward(task)] if reward_funcs is None else reward_funcs
    funcs = list(funcs) if isinstance(funcs, (list, tuple)) else [funcs]
    device = model_device(model)
    rt = getattr(preset, "runtime", {}) or {}
    knobs = {"compute_dtype": rt.get("compute_dtype") or "fp32", **preset.grpo}  # an explicit grpo key wins
    cfg = validate(knobs, funcs, device)
    # TRL's display off: in Jupyter it is NotebookProgressCallback, an HTML table with a row per logged step.
    args = _trl_config(model, knobs, rt, out, device, progress=False)
    train = problems_to_dataset(task.train(20000, seed=cfg.seed + 1))
    bar = StepBar(cfg.max_steps, show=progress)
    hist, trl_cbs = _callbacks([*callbacks, bar], tokenizer, task, cfg, funcs)
    try:
        trainer, seconds = _fit(
            model, tokenizer, args, funcs, train, trl_cbs, beta=cfg.beta, resume=resume_from_checkpoint
        )
    finally:
        bar.close()
    model.eval()
    save_model(model, tokenizer, out / "final")
    return {"seconds": seconds, "steps": trainer.state.global_step}, hist.history
