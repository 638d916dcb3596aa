"""What training holds in memory, counted and measured: the bill PPO's extra models run up (notebook 04a).

- ``training_bytes`` counts, from the models themselves, what an AdamW run keeps between steps: the weights
  of every model held, one gradient and two moment buffers per trained weight (Kingma & Ba, arXiv
  1412.6980; Loshchilov & Hutter, arXiv 1711.05101). It is exact for float32 training and needs no run.
- ``SavedTensorMeter`` measures the other part, the activations autograd saves during a forward pass for
  the backward pass, through ``torch.autograd.graph.saved_tensors_hooks``: device-independent, unaffected by
  what else the process or the machine is doing (a process's peak RSS only ever grows, and the allocator
  keeps freed blocks), and it counts each storage once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _param_bytes(module: nn.Module, trainable_only: bool = False) -> int:
    params = {id(p): p for p in module.parameters() if p.requires_grad or not trainable_only}.values()
    return sum(p.numel() * p.element_size() for p in params)


def training_bytes(trained: dict[str, nn.Module], frozen: dict[str, nn.Module] | None = None) -> dict[str, int]:
    """The bytes an AdamW run keeps between steps, counted from the models (not measured from the process).

    ``weights``: every parameter of every model held (tied weights once); ``gradients``: one per trained
    parameter; ``adam``: AdamW's two moment buffers per trained parameter (``exp_avg``, ``exp_avg_sq``).
    A verifier holds no weights; a learned reward model would be one more entry in ``frozen``.
    """
    frozen = frozen or {}
    trained_bytes = sum(_param_bytes(m, trainable_only=True) for m in trained.values())
    weights = sum(_param_bytes(m) for m in [*trained.values(), *frozen.values()])
    return {
        "weights": weights,
        "gradients": trained_bytes,
        "adam": 2 * trained_bytes,
        "total": weights + 3 * trained_bytes,
    }


class _Held:
    """A saved tensor as the autograd graph holds it; freed with the graph, it stops counting."""

    __slots__ = ("t", "key", "meter")

    def __init__(self, t: torch.Tensor, key: int, meter: SavedTensorMeter):
        self.t, self.key, self.meter = t, key, meter
        entry = meter.live.setdefault(key, [0, t.untyped_storage().nbytes()])
        if entry[0] == 0:
            meter.current += entry[1]
            meter.peak = max(meter.peak, meter.current)
        entry[0] += 1

    def __del__(self):
        entry = self.meter.live.get(self.key)
        if entry is not None:
            entry[0] -= 1
            if entry[0] == 0:
                self.meter.current -= entry[1]
                del self.meter.live[self.key]


class SavedTensorMeter:
    """Peak bytes of the tensors autograd saves for backward (the activation memory), while the context is open.

    Uses ``torch.autograd.graph.saved_tensors_hooks``: each saved tensor's storage counts once while some
    graph holds it and stops counting when the graph is freed by ``backward``. Storages of the ``exclude``
    models' parameters (weights that linear layers save) are weights, not activations, and are skipped.
    ``peak``: the most bytes held at once; usage ``with SavedTensorMeter([model]) as m: ...; m.peak``.
    """

    def __init__(self, exclude: Sequence[nn.Module] = ()):
        self.skip = {p.untyped_storage().data_ptr() for m in exclude for p in m.parameters()}
        self.live: dict[int, list[int]] = {}
        self.current = self.peak = 0

    def _pack(self, t: torch.Tensor):
        key = t.untyped_storage().data_ptr()
        return t if key in self.skip else _Held(t, key, self)

    @staticmethod
    def _unpack(h):
        return h if isinstance(h, torch.Tensor) else h.t

    def __enter__(self) -> SavedTensorMeter:
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
