"""What every check of ``benchmarks/gpu_check.py`` shares: the result row, the injected defects, the dtype probe,
the statistics of "did it learn", and the machine's memory counters.

Injected defects (``GRPO_LAB_GPU_CHECK_INJECT``, comma-separated): each re-creates a bug on purpose, so that the
check that must catch it can be seen to fail.

- ``stale-weights``: the whole training loop inside one ``torch.autocast`` region. Autocast caches the
  low-precision copy of each weight until its outermost region exits, so later forwards keep the first step's
  weights (COURSE.md, "Mixed precision").
- ``forward-wrapper``: defect 1 of issue #30. ``trl_backend._restore_forward`` does nothing, so accelerate's
  autocast wrapper (``Accelerator.prepare_model``: ``model.forward = convert_outputs_to_fp32(autocast(...))``)
  stays on the model after TRL trained it and the evaluation after training runs in another precision.
- ``no-cache``: defect 2. Under gradient checkpointing in train mode transformers switches ``use_cache`` off and
  the prompt pass returns no cache; the grouped log-prob path of ``rollout_fast.completion_logps`` then takes its
  cache branch anyway, with an empty cache standing in (what other transformers versions return): the
  completions are scored without their prompt, silently.
- ``dtype``: a precision that did not take effect. ``trl_backend.trl_args`` is called without the compute dtype,
  so TRL gets neither ``bf16`` nor ``fp16``.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field

import torch

GiB = 1024**3
INJECTIONS = ("stale-weights", "forward-wrapper", "no-cache", "dtype")
PASS, FAIL, SKIP, NOT_RUN = "PASS", "FAIL", "SKIP", "NOT RUN"


@dataclass
class Row:
    """One line of the final table. ``status``: PASS, FAIL, SKIP (not applicable here, e.g. fp16 on a CPU) or
    NOT RUN (a required check that could not run: a missing package, a missing model); ``numbers`` go to JSON."""

    check: str
    status: str
    detail: str
    seconds: float = 0.0
    numbers: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in (FAIL, NOT_RUN)


def injected() -> set[str]:
    """The defects named in ``GRPO_LAB_GPU_CHECK_INJECT``; an unknown name raises ``SystemExit`` naming the known."""
    names = {n.strip() for n in os.environ.get("GRPO_LAB_GPU_CHECK_INJECT", "").split(",") if n.strip()}
    unknown = sorted(names - set(INJECTIONS))
    if unknown:
        raise SystemExit(f"GRPO_LAB_GPU_CHECK_INJECT: unknown defect(s) {unknown}; known: {', '.join(INJECTIONS)}")
    return names


def install_injections(names: set[str]) -> None:
    """Monkeypatch the library for the defects in ``names`` (module docstring); ``stale-weights`` is applied by
    ``outer_region`` around each training run instead."""
    if "forward-wrapper" in names:
        from grpo_lab import trl_backend

        trl_backend._restore_forward = lambda model: None
    if "no-cache" in names:
        from transformers import DynamicCache

        from grpo_lab import rollout_fast

        real = rollout_fast.cache_of
        rollout_fast.cache_of = lambda out: real(out) if real(out) is not None else DynamicCache()
    if "dtype" in names:
        from grpo_lab import trl_backend

        real_args = trl_backend.trl_args
        trl_backend.trl_args = lambda knobs, *a, **kw: real_args({**knobs, "compute_dtype": "fp32"}, *a, **kw)


def outer_region(device: torch.device, compute_dtype: str):
    """With ``stale-weights`` injected: one autocast region around a whole training run (the old bug); else none."""
    if "stale-weights" not in injected() or compute_dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if compute_dtype == "fp16" else torch.bfloat16)


def snapshot(model) -> dict:
    """fp32 copies of the trainable parameters, by name."""
    return {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}


def max_change(model, before: dict) -> float:
    """The largest absolute change of any parameter in ``before`` since the snapshot."""
    return max((p.detach().float() - before[n]).abs().max().item() for n, p in model.named_parameters() if n in before)


class DtypeProbe:
    """A forward hook on one linear map of the first decoder layer that counts the dtypes of its outputs, by
    phase (``probe.phase = "before" | "train" | "after"``). Under ``torch.autocast`` a linear map returns the
    autocast dtype whatever its weights' dtype, so the training phase shows whether mixed precision really ran,
    and the evaluations before and after training must show the same dtype (same precision on both sides)."""

    def __init__(self, model):
        self.phase = "idle"
        self.seen: dict[str, dict[str, int]] = {}
        name, module = next(
            (n, m)
            for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and ".layers.0." in f".{n}" and n.endswith(("q_proj", "base_layer"))
        )
        self.where = name
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, out):
        counts = self.seen.setdefault(self.phase, {})
        key = str(out.dtype).replace("torch.", "")
        counts[key] = counts.get(key, 0) + 1

    def dtypes(self, phase: str) -> set[str]:
        return set(self.seen.get(phase, {}))

    def close(self) -> None:
        self.handle.remove()


def rise(values: list[float]) -> tuple[float, float]:
    """``(mean of the last third - mean of the first third, its standard error)`` of a per-step series, the
    error from each third's step-to-step spread (a trend inside a third only widens it: conservative)."""
    k = max(1, len(values) // 3)
    first, last = values[:k], values[-k:]

    def var(xs):
        m = sum(xs) / len(xs)
        return sum((x - m) ** 2 for x in xs) / max(1, len(xs) - 1)

    diff = sum(last) / k - sum(first) / k
    return diff, math.sqrt(var(first) / k + var(last) / k)


def beyond_noise(diff: float, se: float, z: float = 2.0) -> bool:
    """True when ``diff`` is positive and at least ``z`` standard errors from zero (about 97.7% one-sided)."""
    return diff > 0 and diff >= z * se


def memory_cap(gib: float | None, device: torch.device) -> None:
    """Cap this process's CUDA allocator at ``gib`` GiB (None: no cap) and reset the peak counters
    (``torch.cuda.set_per_process_memory_fraction``); nothing on a CPU."""
    if device.type != "cuda":
        return
    import gc

    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, gib * GiB / total) if gib else 1.0, device)
    torch.cuda.reset_peak_memory_stats(device)


def device_key(device: torch.device) -> str | None:
    """The ``plan.DEVICES`` key of this GPU, for the estimate of its step time; None when the plan has none."""
    if device.type != "cuda":
        return "cpu"
    name = torch.cuda.get_device_name(device).upper()
    gib = torch.cuda.get_device_properties(device).total_memory / GiB
    for tag, key in (("H100", "h100"), ("H200", "h100"), ("T4", "t4")):
        if tag in name:
            return key
    if "A100" in name:
        return "a100" if gib > 60 else "a100-40"
    return None
