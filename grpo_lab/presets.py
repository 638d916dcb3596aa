"""Named training presets: a model, a task, the SFT warm start and the GRPO knobs (TRL names), in one place.

A preset is plain data so that both backends (``trainer`` and ``trl_backend``) read the same knobs, and so
that ``grpo-lab train --preset NAME --dry-run`` can print the plan without building anything.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field


@dataclass
class Preset:
    name: str
    description: str
    model: str  # a grpo_lab.models.load_model name: "tiny:<size>", "smollm2", a hub id
    task: str  # a grpo_lab.tasks.get_task name, or "gsm8k"
    grpo: dict  # GRPOConfig fields (TRL names)
    sft: dict = field(default_factory=dict)  # sft_train keyword arguments; empty = no warm start
    eval_size: int = 500
    hardware: str = "cpu"
    notes: str = ""

    def copy(self, **grpo_overrides) -> "Preset":
        p = copy.deepcopy(self)
        p.grpo.update({k: v for k, v in grpo_overrides.items() if v is not None})
        return p


PRESETS: dict[str, Preset] = {}


def register(p: Preset) -> Preset:
    PRESETS[p.name] = p
    return p


register(Preset(
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
))


def get_preset(name: str) -> Preset:
    """A copy of a registered preset; an unknown name lists the known ones."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)} (grpo-lab train --list-presets)")
    return copy.deepcopy(PRESETS[name])
import grpo_lab.capstone  # noqa: E402,F401  (registers the GSM8K capstone presets, issue 7)
