"""Devices and dtypes: where a model runs, in which precision, and the error every loader raises.

- ``pick_device``: CUDA, then Apple MPS, then the CPU (``GRPO_LAB_DEVICE`` overrides).
- ``pick_dtype``: bf16 where the GPU supports it natively (Ampere+), fp16 on older GPUs (a T4), fp32 elsewhere.
- ``autocast_for``: the mixed-precision context of a preset's ``runtime`` (fp32 master weights, fp16/bf16
  matmuls) on CUDA, a no-op elsewhere.
"""

from __future__ import annotations

import contextlib
import os

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
    """bfloat16 is worth using only on CUDA GPUs that support it natively (Ampere and newer; not the T4)."""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def pick_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 where natively supported, fp16 on older CUDA GPUs (T4), fp32 on CPU and MPS."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if bf16_supported(device) else torch.float16
    return torch.float32


def autocast_for(model, runtime: dict):
    """Mixed precision for the from-scratch trainer on a GPU: fp32 master weights, ``runtime["compute_dtype"]``
    matmuls (``torch.autocast``, Micikevicius et al., arXiv 1710.03740); a null context on the CPU, without a
    ``compute_dtype``, or when it equals the storage ``dtype``.

    No loss scaling: the from-scratch trainer calls ``backward`` itself. With fp16 (T4) tiny gradients can
    underflow; the TRL backend (HF Trainer's GradScaler) is the safer choice there.
    """
    device = next(model.parameters()).device
    comp, store = runtime.get("compute_dtype"), runtime.get("dtype", "fp32")
    if device.type != "cuda" or not comp or comp == store:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=getattr(torch, TORCH_DTYPES[comp]))
