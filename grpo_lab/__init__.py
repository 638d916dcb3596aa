"""grpo-lab: the companion library of a course on the new reasoning stack.

One module per concept, mirroring the notebooks:

- ``tasks``: verifiable tasks (addition, mixed arithmetic, Countdown, GSM8K) and prompt formatting.
- ``models``: tiny char-level Qwen2-style models, the offline SmolLM2-135M-Instruct, hub loaders, devices.
- ``rewards``: answer extraction and equivalence, TRL-style reward functions, a code sandbox.
- ``grpo``: group-relative advantages and the GRPO loss, numerically equal to TRL 1.16.
- ``rollout``: batched sampling of groups with log-probs and masks.
- ``config``: the trainers' settings (``GRPOConfig``, ``PPOConfig``; TRL's names); ``loop``: what every
  from-scratch trainer shares (data, rewards, callbacks, ``train()``); ``checkpoint``: resumable checkpoints.
- ``trainer``: a from-scratch GRPO loop; ``sft``: the supervised warm start.
- ``ppo``: the PPO loop GRPO simplified (a critic, GAE); ``memory``: what training holds, counted and measured.
- ``trl_backend``: the same runs on TRL's ``GRPOTrainer``.
- ``ensemble``, ``distill``, ``hygiene``: voting and consensus, distillation, the synthetic ceiling.
- ``widgets``: interactive explorers; ``grading``: ``check(...)`` for exercises; ``cli``: ``grpo-lab``.

Submodules are imported lazily (``import grpo_lab.grpo``) so that ``import grpo_lab`` stays fast.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"


def test_mode() -> bool:
    """True when ``GRPO_LAB_TEST_MODE`` is set to a truthy value (tiny models, few steps, CPU-fast).

    Notebooks read this once at the top and scale every experiment with it, so the test suite can execute them all in minutes.
    """
    return os.environ.get("GRPO_LAB_TEST_MODE", "").strip().lower() not in ("", "0", "false", "no")


__all__ = ["__version__", "test_mode"]
