"""The estimator: ``estimate`` (memory by phase, seconds per step), ``eval_seconds``, ``decode_seconds``; what it
counts and why is ``grpo_lab.plan``'s docstring."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import grpo_lab.plan.memory as _mem
from grpo_lab.evaluation import eval_batch_size
from grpo_lab.plan.arch import architecture, lora_param_count, param_count
from grpo_lab.plan.devices import DEVICES, Device

GiB = 1024**3
DTYPE_BYTES = {"fp32": 4, "float32": 4, "fp16": 2, "float16": 2, "bf16": 2, "bfloat16": 2}


@dataclass
class Estimate:
    """Peak memory (bytes, by component and by phase) and seconds per step, ALL ESTIMATES (module docstring).
    ``eval_seconds``: one evaluation of the held-out set as the job runs it (before, and again after)."""

    params: int
    trainable: int
    memory: dict  # component -> bytes
    peak_bytes: float
    gen_seconds: float
    train_seconds: float
    device: Device
    backend: str = "grpo_lab"
    phases: dict = field(default_factory=dict)  # resident / rollout / update / optimizer -> bytes
    gen_floor_seconds: float = 0.0
    eval_seconds: float = 0.0
    baseline_eval_seconds: float = 0.0

    @property
    def step_seconds(self) -> float:
        return self.gen_seconds + self.train_seconds

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GiB

    def total_seconds(self, steps: int) -> float:
        """``steps`` training steps plus the evaluations before and after, each also at the generous baseline budget
        when the preset has one (``jobs.train``'s ``_evaluate_before`` / ``_evaluate_after``)."""
        return steps * self.step_seconds + 2 * (self.eval_seconds + self.baseline_eval_seconds)


def runtime_of(preset) -> dict:
    """The machine settings of a preset: ``preset.runtime`` over CPU defaults (fp32, no checkpointing, no
    LoRA) and ``device=preset.hardware``."""
    rt = dict(
        dtype="fp32",
        compute_dtype=None,
        gradient_checkpointing=False,
        use_peft=False,
        lora_r=16,
        lora_alpha=32,
        prompt_length=None,
        device=preset.hardware,
    )
    rt.update(preset.runtime)
    return rt


def _prompt_length(preset, rt: dict) -> int:
    if rt.get("prompt_length"):
        return int(rt["prompt_length"])
    # Typical prompt lengths: "12+35=" is 6 characters; a GSM8K question in a chat template is ~150 subword
    # tokens (about 400 characters for a char-level model).
    if preset.task == "gsm8k":
        return 400 if preset.model.startswith("tiny:") else 160
    return 12


def decode_seconds(arch: dict, P: int, rows: int, prompt: int, new: int, c: int, dev: Device) -> float:
    """Seconds to decode ``new`` tokens for ``rows`` rows after a ``prompt``-token prefill: the largest of the
    FLOPs (``2 P rows (prompt + new)`` at ``gen_tflops``), reading the weights once a token (``new P c`` bytes at
    the bandwidth) and the per-token floor (``new x token_floor_ms x layers / floor_layers``)."""
    flops = 2 * P * rows * (prompt + new) / (dev.gen_tflops * 1e12)
    bandwidth = new * P * c / (dev.bandwidth_gbs * 1e9)
    floor = new * dev.token_floor_ms / 1e3 * arch["num_hidden_layers"] / dev.floor_layers
    return max(flops, bandwidth, floor)


def eval_seconds(preset, device: str | None = None, max_new_tokens: int | None = None, k: int | None = None) -> float:
    """One evaluation of ``preset.eval_size`` held-out problems as ``evaluation.evaluate`` batches it: greedy in
    batches of ``evaluation.eval_batch_size`` (the same function) and, with ``k >= 2`` (``runtime.eval_k``), k
    samples a problem in batches of a k-th as many problems; every batch decoded to ``max_new_tokens`` (``runtime.eval_max_new_tokens``)."""
    rt = runtime_of(preset)
    dev = DEVICES[device or rt["device"]]
    arch = architecture(preset.model)
    P, c = param_count(arch), DTYPE_BYTES[rt["compute_dtype"] or rt["dtype"]]
    n, Lp = int(preset.eval_size), _prompt_length(preset, rt)
    new = int(max_new_tokens or rt.get("eval_max_new_tokens") or preset.grpo.get("max_completion_length", 256))
    k = int(rt.get("eval_k") or 0) if k is None else k
    batch = eval_batch_size(new, dev.cuda)
    total = math.ceil(n / batch) * decode_seconds(arch, P, min(n, batch), Lp, new, c, dev)
    if k >= 2:
        per = max(1, batch // k)
        total += math.ceil(n / per) * decode_seconds(arch, P, min(n, per) * k, Lp, new, c, dev)
    return total


def _train_seconds(arch, P, s: _mem.Shape, g: dict, backend: str, dev: Device) -> float:
    """FLOPs of the update (module docstring) over ``train_tflops``."""
    head = arch["vocab_size"] * arch["hidden_size"]
    k = 6 + (2 if s.checkpointing else 0) + (2 if g.get("beta", 0.0) > 0 else 0) - (2 if s.lora else 0)
    body = k * (P - head) * s.tokens(s.B)
    if backend == "trl":
        scored = s.B * s.T if dev.cuda else s.B * (s.L - 1)
        head_flops = (8 if not s.lora else 6) * head * scored  # the tile is recomputed in the backward
    else:
        head_flops = (6 if not s.lora else 4) * head * s.B * (s.T + 1)
    return (body + head_flops) * int(g.get("num_iterations", 1)) / (dev.train_tflops * 1e12)


def _shape(preset, rt: dict, arch: dict, P: int, backend: str, peft: bool, batch, num_generations, length):
    """The ``memory.Shape`` of one step: the preset's sizes, or the caller's "what if" overrides."""
    g = preset.grpo
    B = int(batch or g.get("per_device_train_batch_size", 8))
    G = int(num_generations or g.get("num_generations", 8))
    if B % G:
        B = (B // G + 1) * G  # the trainers refuse it; estimate the next valid batch
    return _mem.Shape(
        B=B,
        rows=B if backend == "trl" else min(B, int(g.get("micro_batch_size") or B)),
        Lp=_prompt_length(preset, rt),
        T=int(length or g.get("max_completion_length", 256)),
        w=DTYPE_BYTES[rt["dtype"]],
        c=DTYPE_BYTES[rt["compute_dtype"] or rt["dtype"]],
        trainable=lora_param_count(arch, int(rt["lora_r"])) if peft else P,
        lora=peft,
        checkpointing=bool(rt["gradient_checkpointing"]),
        G=G,
        # rollout_fast runs a group's prompt once, unless checkpointing leaves the prompt pass without a cache
        shared_prompt=backend != "trl" and not rt["gradient_checkpointing"],
    )


def estimate(
    preset,
    *,
    device: str | None = None,
    use_peft: bool | None = None,
    batch: int | None = None,
    num_generations: int | None = None,
    max_completion_length: int | None = None,
    backend: str | None = None,
) -> Estimate:
    """Estimated peak memory and time per GRPO step of ``preset`` on ``device`` (a ``DEVICES`` key; default
    the preset's hardware) with ``backend`` (``"grpo_lab"`` or ``"trl"``; default ``preset.backend``). Keyword
    overrides let callers ask "what if" (LoRA, another batch, G, length, the other backend).

    Contract: monotone non-decreasing in ``batch`` and ``max_completion_length`` (memory and time); pure
    arithmetic, no model is built. What each backend holds: the module docstring.
    """
    rt = runtime_of(preset)
    dev = DEVICES[device or rt["device"]]
    g = preset.grpo
    arch = architecture(preset.model)
    P = param_count(arch)
    backend = backend or getattr(preset, "backend", "grpo_lab")
    peft = bool(rt["use_peft"] if use_peft is None else use_peft)
    s = _shape(preset, rt, arch, P, backend, peft, batch, num_generations, max_completion_length)
    B, G, T = s.B, s.G, s.T
    res = _mem.resident(arch, P, s, g.get("beta", 0.0) > 0)
    roll = _mem.rollout(arch, P, s)
    upd = {"update: activations": _mem.activations(arch, s)}
    if s.c < s.w:
        upd["update: autocast weight copies (kept for backward)"] = P * s.c
    upd.update(_mem.head_trl(arch, s, dev.cuda) if backend == "trl" else _mem.head_grpo_lab(arch, s))
    opt = _mem.optimizer(arch, P, s, dev.cuda)
    phases = {
        k: sum(v.values()) for k, v in (("resident", res), ("rollout", roll), ("update", upd), ("optimizer", opt))
    }
    peak = phases["resident"] + max(phases["rollout"], phases["update"], phases["optimizer"]) + dev.overhead_gib * GiB
    # rollout_fast.sample_groups decodes from one prompt pass per group; TRL's generate runs every row's prompt
    gen = decode_seconds(arch, P, B, s.Lp // G if backend != "trl" else s.Lp, T, s.c, dev)
    floor = T * dev.token_floor_ms / 1e3 * arch["num_hidden_layers"] / dev.floor_layers
    generous = rt.get("baseline_max_new_tokens")
    return Estimate(
        params=P,
        trainable=s.trainable,
        memory={**res, **roll, **upd, **opt},
        peak_bytes=peak,
        gen_seconds=gen,
        train_seconds=_train_seconds(arch, P, s, g, backend, dev),
        device=dev,
        backend=backend,
        phases=phases,
        gen_floor_seconds=floor,
        eval_seconds=eval_seconds(preset, device),
        baseline_eval_seconds=eval_seconds(preset, device, max_new_tokens=generous, k=0) if generous else 0.0,
    )
