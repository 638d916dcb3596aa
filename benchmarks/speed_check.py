"""The machine's speed check printed beside every timing in ``benchmarks/``: 300 SFT steps of the demo's model
(the 0.8M-parameter char-level Qwen2 of ``cpu-addition``, batch 64), in ms a step.

On the course's 2-core test machines 42-55 ms is a fast phase and 60-86 a slow one (``step_times.md``), so a
training time quoted with its speed check can be compared across days and machines.

    python -m benchmarks.speed_check
"""

from __future__ import annotations

from grpo_lab.env import set_threads
from grpo_lab.models import build_tiny_model
from grpo_lab.sft import sft_train
from grpo_lab.tasks import get_task

STEPS = 300


def speed_check(steps: int = STEPS) -> float:
    """Milliseconds per SFT step of the demo's model (``cpu-addition``'s, batch 64, no validation)."""
    set_threads()
    model, tok = build_tiny_model("tiny", seed=0)
    res = sft_train(model, tok, get_task("addition"), max_steps=steps, batch_size=64, eval_every=10**9, progress=False)
    return 1000 * res.seconds / res.steps


if __name__ == "__main__":
    print(f"speed check: {speed_check():.1f} ms a step ({STEPS} SFT steps of the demo's model)")
