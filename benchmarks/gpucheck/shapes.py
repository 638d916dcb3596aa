"""The GPU presets at their real shapes: a randomly initialised model of the preset's architecture (Qwen2.5-0.5B:
the real vocabulary of 151,936 tokens), the preset's batch and completion cap, a few optimizer steps.

- ``memory/<preset>/<backend>``: runs under an allocator cap of the preset's GPU (``--t4-cap-gib``, 14.5 GiB for
  a T4: ``torch.cuda.set_per_process_memory_fraction``), the weights (LoRA: the adapters) move, and prints the
  peak allocated and reserved memory and the seconds of the last step next to ``plan.estimate`` (called as it
  exists; its figures are estimates and do not decide PASS or FAIL).
- ``scratch-checkpointing/<preset>``: the from-scratch trainer (``backend="grpo_lab"``) on a preset that turns
  gradient checkpointing on, with checkpointing on, as ``models.load_for_preset`` sets it up on CUDA. Besides
  running, the grouped log-probs of the update (the prompt run once per group, ``rollout_fast.completion_logps``)
  must equal the flat ones in train mode under checkpointing, where the prompt pass returns no cache (issue #30,
  defect 2: the completions were scored without their prompt, or the step crashed).

A random model rarely emits EOS, so every completion runs to the cap: the worst case for time and memory. The
tokenizer is the char-level one (the reward does not read the text: ``ShapeTask`` pays a random half), and on the
CPU (``--cpu-smoke``) the shapes are toy ones (2 layers, vocabulary 1,000, 8 completions of 8 tokens).
"""

from __future__ import annotations

import random
import tempfile
import time

import torch

from benchmarks.gpucheck.common import FAIL, PASS, GiB, Row, device_key, max_change, memory_cap, snapshot
from grpo_lab.tasks import Problem, Task

SMOKE_ARCH = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=1000,
)
SHAPE_STEPS = 2


class ShapeTask(Task):
    """Prompts of ``prompt_length`` characters (one token each for the char tokenizer) and a reward of 1 for a
    random half of the completions, so every group carries a gradient."""

    name = "shape"

    def __init__(self, prompt_length: int):
        self.prompt_length = prompt_length
        self.coin = random.Random(0)

    def _random_problem(self, rng: random.Random) -> Problem:
        digits = "".join(rng.choice("0123456789") for _ in range(self.prompt_length - 1))
        return Problem(digits + "=", digits, "1")

    def check(self, problem: Problem, answer: str | None) -> bool:
        return self.coin.random() < 0.5


def build_model(model_name: str, smoke: bool, device: torch.device, dtype: torch.dtype = torch.float32):
    """A randomly initialised causal LM of ``model_name``'s architecture (``plan.KNOWN_ARCHS``; toy sizes when
    ``smoke``), built on ``device`` in ``dtype``, and a char tokenizer whose EOS/pad ids the model uses."""
    from transformers import AutoModelForCausalLM

    from grpo_lab import plan
    from grpo_lab.models import build_char_tokenizer

    arch = plan.architecture(model_name)
    if smoke:
        arch.update(SMOKE_ARCH)
    torch.manual_seed(0)
    with torch.device(device):
        cfg = plan.hf_config(arch, max_position_embeddings=4096, attention_dropout=0.0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    tok = build_char_tokenizer()
    model.config.eos_token_id = model.generation_config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = model.generation_config.pad_token_id = tok.pad_token_id
    return model.eval(), tok


def shape_preset(name: str, smoke: bool):
    """The preset ``name`` for ``SHAPE_STEPS`` steps, no checkpoints; toy shapes, fp32 and a 16-token prompt on the
    CPU (the smoke run proves the code path, not the memory)."""
    from grpo_lab.presets import get_preset

    p = get_preset(name).replace(grpo=dict(max_steps=SHAPE_STEPS, save_steps=0, eval_steps=0))
    if smoke:
        p = p.replace(
            grpo=dict(per_device_train_batch_size=8, max_completion_length=8),
            runtime=dict(compute_dtype="fp32", dtype="fp32", prompt_length=16),
        )
    return p


def grouped_equals_flat(model, device: torch.device, G: int) -> tuple[bool, float]:
    """In train mode, with the model's gradient checkpointing on, the grouped log-probs of two prompts x ``G``
    completions (the prompt run once per group) against the flat ones (a full forward per row):
    ``(equal to 1e-3, max difference)``. Dropout is off in these configs, so train mode is deterministic; gradients
    are on, as in the update (transformers keeps the cache under checkpointing when they are off)."""
    from grpo_lab.rollout import completion_logps

    g = torch.Generator().manual_seed(0)
    pi = torch.randint(5, 60, (2, 12), generator=g).repeat_interleave(G, 0).to(device)
    ci = torch.randint(5, 60, (2 * G, 6), generator=g).to(device)
    pm, cm = torch.ones_like(pi), torch.ones_like(ci)
    was = model.training
    model.train()
    try:
        # With gradients on, as in the update: transformers drops the cache under checkpointing only then.
        flat = completion_logps(model, pi, pm, ci, cm, group_size=1).detach()
        grouped = completion_logps(model, pi, pm, ci, cm, group_size=G).detach()
    finally:
        model.train(was)
    gap = (flat - grouped).abs().max().item()
    return gap <= 1e-3, gap


def shape_row(name: str, backend: str, smoke: bool, device: torch.device, cap_gib: float | None, check: str) -> Row:
    """One preset run (module docstring); ``check`` is ``memory`` or ``scratch-checkpointing``."""
    from grpo_lab import plan
    from grpo_lab.jobs import train_preset
    from grpo_lab.models import apply_lora
    from grpo_lab.models.devices import TORCH_DTYPES

    label = f"{check}/{name}" + (f"/{backend}" if check == "memory" else "")
    p = shape_preset(name, smoke)
    rt, g = p.runtime, p.grpo
    memory_cap(cap_gib, device)
    t0 = time.perf_counter()
    model = None
    try:
        model, tok = build_model(p.model, smoke, device, getattr(torch, TORCH_DTYPES[rt.get("dtype") or "fp32"]))
        extra = ""
        if rt.get("gradient_checkpointing"):
            model.gradient_checkpointing_enable()
            model.config.use_cache = False  # as models.load_for_preset: the rollout asks for its cache itself
        if check == "scratch-checkpointing":
            ok, gap = grouped_equals_flat(model, device, int(g["num_generations"]))
            extra = f"; grouped vs flat log-probs under checkpointing: max diff {gap:.1e}"
            if not ok:
                return Row(label, FAIL, extra[2:] + "  <- completions scored without their prompt (defect 2)")
        if rt.get("use_peft"):
            model = apply_lora(model, rt)
        w0 = snapshot(model)
        with tempfile.TemporaryDirectory() as out:
            task = ShapeTask(int(rt.get("prompt_length") or 160))
            _, hist = train_preset(model, tok, p, out, task=task, backend=backend, progress=False)
        moved = max_change(model, w0)
    except torch.cuda.OutOfMemoryError as err:
        return Row(label, FAIL, f"out of memory under a {cap_gib} GiB cap ({str(err).splitlines()[0][:120]})")
    except Exception as err:
        return Row(label, FAIL, f"{type(err).__name__}: {str(err)[:300]}", time.perf_counter() - t0)
    finally:
        del model
    secs = hist[-1].get("step_time", float("nan"))
    detail = (
        f"{backend}, {g['per_device_train_batch_size']} x {g['max_completion_length']} tokens, "
        f"checkpointing {bool(rt.get('gradient_checkpointing'))}, LoRA {bool(rt.get('use_peft'))}; "
        f"last step {secs:.1f} s; max |dw| {moved:.1e}{extra}"
    )
    nums = {"step_seconds": secs, "weight_change": moved, "cap_gib": cap_gib}
    try:
        est = plan.estimate(p, backend=backend)
        here = device_key(device)
        est_here = plan.estimate(p, backend=backend, device=here) if here else est
        nums.update(plan_peak_gib=est.peak_gib, plan_step_seconds_here=est_here.step_seconds)
        what = "plan.estimate" + (", real architecture at these toy shapes" if smoke else "")
        detail += f" [{what}: {est.peak_gib:.2f} GiB on a {p.hardware}, {est_here.step_seconds:.1f} s/step on {here}]"
    except Exception as err:  # the plan is an estimate; a change in its signature must not hide the measurement
        detail += f" [plan.estimate failed: {type(err).__name__}: {err}]"
    if device.type == "cuda":
        nums["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / GiB
        nums["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / GiB
        detail += (
            f"; peak allocated {nums['peak_allocated_gib']:.2f} GiB, reserved {nums['peak_reserved_gib']:.2f} GiB"
        )
    else:
        detail += "; peak memory not measured on a CPU"
    ok = moved > 0
    return Row(label, PASS if ok else FAIL, detail + ("" if ok else "  <- the weights did not move"), numbers=nums)
