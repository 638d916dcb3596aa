"""Every named training preset, as plain data: a model, a task, the SFT warm start, the GRPO knobs (TRL
names) and the machine settings, in one place.

A preset is data so that both backends (``trainer`` and ``trl_backend``) read the same knobs, and so that
``grpo-lab train --preset NAME --dry-run`` (``plan.describe_plan``) can print the plan without building
anything. ``runtime`` holds what is not a GRPO knob: ``preset.grpo`` keeps only the keys both backends accept
under TRL 1.16's names, because the from-scratch ``GRPOConfig`` refuses keys it does not know.

- ``schema``: ``Preset`` (with ``replace``) and ``Runtime`` (typed machine settings).
- ``catalog``: the named presets (``PRESETS``) and the distillation teachers' recipe (``TEACHER_PRESET``).
- here: the registry look-ups, ``resolve`` (a name or a ``Preset`` -> a private copy, what every job calls)
  and ``choose_preset`` (the preset for this machine).

Why Python and not YAML recipes read by ``TrlParser`` (open-r1's layout): a preset is more than a
``GRPOConfig``: it names a model, a task with its settings, an SFT warm start and machine settings that
``plan`` reads without building anything, and the comments beside the numbers (where each learning rate comes
from) are the course's teaching. Every ``GRPOConfig`` field is still settable from the command line
(``grpo-lab train --set learning_rate=1e-5``, checked against the config's fields).
"""

from __future__ import annotations

import copy

from grpo_lab.errors import UnknownNameError, UsageError
from grpo_lab.presets.catalog import PRESETS, TEACHER_PRESET, TEST_PRESET
from grpo_lab.presets.schema import Preset, Runtime, check_grpo_names

__all__ = [
    "Preset",
    "Runtime",
    "PRESETS",
    "TEST_PRESET",
    "TEACHER_PRESET",
    "check_grpo_names",
    "register",
    "get_preset",
    "resolve",
    "choose_preset",
    "bf16_native",
]


def register(p: Preset) -> Preset:
    """Add a preset to the registry at run time; returns it. Prefer passing the ``Preset`` object to the jobs
    (``run_train(preset=p)``): the registry is global, and a test or notebook that edits it leaks into the next."""
    PRESETS[p.name] = p
    return p


def get_preset(name: str) -> Preset:
    """A copy of a registered preset; an unknown name lists the known ones."""
    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}; known: {', '.join(PRESETS)} (grpo-lab train --list-presets)")
    return copy.deepcopy(PRESETS[name])


def resolve(preset: str | Preset | None) -> Preset:
    """A private copy of ``preset``: a registered name (``get_preset``), a ``Preset`` (deep-copied, so a job never
    changes its caller's object) or None (``choose_preset()``, the one for this machine)."""
    if isinstance(preset, Preset):
        return copy.deepcopy(preset)
    if preset is None or isinstance(preset, str):
        return get_preset(preset or choose_preset())
    raise UsageError(f"a preset is a name or a presets.Preset, not {type(preset).__name__}")


def bf16_native(device_properties) -> bool:
    """True when a CUDA device runs bf16 natively: compute capability >= 8.0 (Ampere and newer), read from
    ``device_properties.major`` (what ``torch.cuda.get_device_properties`` returns). ``torch.cuda.is_bf16_supported()``
    without ``including_emulation=False`` says True on a T4 (7.5), where bf16 is emulated and slow."""
    return int(getattr(device_properties, "major", 0)) >= 8


def choose_preset(
    device_properties=None,
    *,
    test: bool | None = None,
    peft_available: bool | None = None,
    smollm2_available: bool | None = None,
) -> str:
    """The name of the preset for this machine.

    - test mode (``GRPO_LAB_TEST_MODE``): ``cpu-tiny-gsm8k``;
    - no CUDA: ``cpu-smollm2-gsm8k`` if SmolLM2 loads offline, else ``cpu-tiny-gsm8k``;
    - a GPU with >= 35 GiB and native bf16 (compute capability >= 8, ``bf16_native``): ``a100-qwen2.5-0.5b-gsm8k``;
    - any other GPU (a T4 reports ~14.7 GiB; a 32 GB V100 has no bf16): the LoRA preset
      ``t4-qwen2.5-0.5b-gsm8k-lora`` when peft is installed (~3.5 GiB by ``grpo_lab.plan``; the T4 default),
      else the full fine-tune ``t4-qwen2.5-0.5b-gsm8k`` when the GPU has >= 14 GiB (~12 GiB by the plan);
    - otherwise the CPU choice.

    ``device_properties``: an object with ``total_memory`` (bytes) and ``major`` (compute capability), as
    ``torch.cuda.get_device_properties(0)`` returns (tests pass a stand-in); None reads the real device.
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
    if gib >= 35 and bf16_native(device_properties):
        return "a100-qwen2.5-0.5b-gsm8k"
    peft = peft_available if peft_available is not None else importlib.util.find_spec("peft") is not None
    if peft:
        return "t4-qwen2.5-0.5b-gsm8k-lora"
    if gib >= 14:
        return "t4-qwen2.5-0.5b-gsm8k"
    return cpu_choice
