"""Devices and dtypes: where a model runs, in which precision, and the error every loader raises.

- ``pick_device``: CUDA, then Apple MPS, then the CPU (``GRPO_LAB_DEVICE`` overrides).
- ``pick_dtype``: bf16 where the GPU supports it natively (Ampere+), fp16 on older GPUs (a T4), fp32 elsewhere.
- Mixed precision for a trainer (``compute_dtype`` "fp32" | "bf16" | "fp16"): ``compute_dtype_problem`` says
  why a compute dtype cannot run on a device, ``autocast`` opens one fresh autocast region (to be used
  around one forward pass, never around an optimizer step), ``grad_scaler`` makes fp16's loss scaler.

Why autocast goes around each forward and not around a whole run: ``torch.autocast`` caches the
low-precision copy of every weight it casts until the outermost autocast region exits. An optimizer step
taken inside a long-lived region updates the fp32 weights, but later forwards in the same region keep
reading the cached copies of the old ones (PyTorch AMP docs, "Autocasting"; reproduced on a CPU in bf16).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from grpo_lab.errors import GrpoLabError

# A preset's short dtype names -> torch attribute names.
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class ModelLoadError(RuntimeError, GrpoLabError):
    """A model could not be loaded; the message names the fix (one line, no traceback needed)."""


def pick_device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU (or ``prefer`` if it is available).

    ``GRPO_LAB_DEVICE`` overrides the choice (e.g. ``cpu`` to keep a GPU free).
    """
    prefer = prefer or os.environ.get("GRPO_LAB_DEVICE")
    if prefer:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"device {prefer!r} asked for but CUDA is not available; use 'cpu'")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError(f"device {prefer!r} asked for but MPS is not available; use 'cpu'")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def bf16_supported(device: str | torch.device) -> bool:
    """bfloat16 is worth using only on CUDA GPUs that support it natively: compute capability >= 8 (Ampere and
    newer). ``torch.cuda.is_bf16_supported()`` counts emulation and says yes on a T4 (7.5), where it is slow."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device)[0] >= 8


def vllm_supported(capability: tuple[int, int] | None = None) -> None:
    """Raise ``ConfigError`` with the caveats when vLLM is asked for on a GPU of compute capability < 8 (a T4 is 7.5;
    ``capability`` None reads the current CUDA device, and a machine without CUDA passes): vLLM has no
    FlashAttention on sm75, Qwen2.5 in fp16 on vLLM has reported all-"!" outputs, and the ``[vllm]`` extra pins its
    own torch, which replaces Colab's (``trl_backend.vllm_kwargs`` calls this first)."""
    from grpo_lab.errors import ConfigError

    if capability is None and torch.cuda.is_available():
        capability = torch.cuda.get_device_capability()
    if capability is not None and capability[0] < 8:
        raise ConfigError(
            f"use_vllm on a GPU of compute capability {capability[0]}.{capability[1]} (a T4 is 7.5): vLLM has no "
            "FlashAttention there, Qwen2.5 in fp16 on vLLM has reported garbage (all-'!') outputs, and "
            '`pip install "grpo-lab[vllm]"` pins its own torch, replacing Colab\'s. Set runtime use_vllm=False '
            "(transformers generation) on this GPU, or use an Ampere or newer GPU (A100, L4, H100)"
        )


def pick_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 where natively supported, fp16 on older CUDA GPUs (T4), fp32 on CPU and MPS."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if bf16_supported(device) else torch.float16
    return torch.float32


COMPUTE_DTYPES = ("fp32", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    """True when the CPU advertises bfloat16 instructions (AVX512-BF16 or AMX-BF16, Linux ``/proc/cpuinfo``).

    Without them PyTorch still runs bf16 on the CPU, but by converting to fp32 and back, usually slower than
    plain fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def compute_dtype_problem(device: str | torch.device, compute_dtype: str) -> str | None:
    """Why ``compute_dtype`` cannot train on ``device`` (a one-line fix), or None when it can.

    - ``fp32``: everywhere. ``fp16``: CUDA, the CPU and MPS (with a loss scaler, ``grad_scaler``).
    - ``bf16``: on CUDA only with native support (``bf16_supported``: compute capability >= 8; a T4 emulates
      it); on the CPU allowed (``torch.autocast("cpu")`` supports it; slow without AVX512-BF16/AMX); not on MPS.
    """
    device = torch.device(device)
    if compute_dtype not in COMPUTE_DTYPES:
        return f"compute_dtype={compute_dtype!r}: use one of {COMPUTE_DTYPES}"
    if compute_dtype == "bf16" and device.type == "cuda" and not bf16_supported(device):
        return (
            "compute_dtype='bf16' needs a GPU with native bfloat16 (compute capability >= 8, Ampere or newer); "
            "this GPU emulates it: use compute_dtype='fp16' (loss-scaled) or 'fp32'"
        )
    if compute_dtype == "bf16" and device.type not in ("cuda", "cpu"):
        return f"compute_dtype='bf16' is not supported on {device.type}: use 'fp16' or 'fp32'"
    return None


def autocast(device: str | torch.device, compute_dtype: str):
    """A fresh mixed-precision region: fp32 master weights, ``compute_dtype`` matmuls (``torch.autocast``;
    Micikevicius et al., "Mixed Precision Training", arXiv 1710.03740); a null context for ``fp32``.

    Contract: wrap one forward pass (a rollout, a loss forward, a reference forward) and leave the region
    before ``optimizer.step()``, so the next region casts the updated weights (module docstring).
    """
    if compute_dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, TORCH_DTYPES[compute_dtype]))


def grad_scaler(device: str | torch.device, compute_dtype: str):
    """``torch.amp.GradScaler`` for fp16 (its 5-bit exponent underflows small gradients; the scaler multiplies
    the loss, unscales before clipping, and skips a step whose gradients overflowed), else None.

    bf16 has fp32's exponent range and needs no scaling (HF Trainer and TRL scale fp16 only, too).
    """
    if compute_dtype != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)
