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
