"""Dry-run plans: what a preset will do, and its peak memory and time per GRPO step, by backend and device class.

``grpo-lab train --preset NAME --dry-run`` prints ``describe_plan(preset)``. Nothing is built or downloaded:
parameter counts come from ``KNOWN_ARCHS`` or the ``tiny:<size>`` configs (``plan.arch``); every number taken
from outside the arithmetic (throughputs, per-token latency floors) is in ``plan.devices.SOURCES`` with its kind
(measured, quoted, assumed) and its source. ``tests/test_plan.py`` compares the plan with measured numbers.

Memory, by phase (``plan.memory``). Peak = resident + the largest of three phases that do not overlap in time
(rollout, update, optimizer step) + a CUDA context allowance.

- Resident: weights, gradients, AdamW moments (full fine-tuning, stored dtype) or the frozen base + fp32 LoRA
  adapters; a reference copy only with ``beta > 0`` and full fine-tuning.
- Rollout: KV cache for every row at full length, the last position's logits, autocast's weight copies.
- Update, common to both backends: activations (checkpointed layer inputs + one layer recomputed, or every
  layer's), and autocast's low-precision copy of every weight it casts, which autograd keeps for the backward.
- Update, the from-scratch trainer (``grpo_lab.trainer``, ``rollout_fast.selective_logps``): the logits of the
  completion positions ``[rows, T + 1, V]`` and their gradient in the compute dtype, and fp32 temporaries of 8
  rows. ``micro_batch_size`` bounds ``rows``.
- Update, TRL 1.16 (``trl/trainer/grpo_trainer.py`` ``GRPOTrainer.__init__`` calls ``add_fused_lm_head`` of
  ``trl/trainer/utils.py`` unconditionally, on CPU and CUDA alike; ``_get_per_token_logps_and_entropies`` calls
  ``model(..., fused_lm_head=True)``): the LM head runs in ``[4096, 32768]`` tiles (``kernels/chunked_logprob.py``
  ``ChunkedLogProbFunction``) and never builds ``[B, T, V]`` logits. Its backward allocates an fp32 ``[V, h]``
  weight gradient (``grad_weight = torch.zeros(weight.shape, dtype=torch.float32)``): 0.51 GiB for Qwen2.5-0.5B
  (151,936 x 896 x 4 bytes), present when the head trains (full fine-tuning; Qwen2.5 ties it to the
  embeddings), and an fp32 gradient of the scored hidden states. On CUDA a Triton kernel folds each tile in place
  and only completion positions are scored; on a CPU every position is and the torch fallback copies tiles to fp32.
- Optimizer step: ``torch.optim.AdamW`` (TRL's ``optim="adamw_torch"``, and the from-scratch trainer's) takes its
  foreach path on CUDA, whose ``_multi_tensor_adam`` holds ``torch._foreach_sqrt(exp_avg_sqs)``: one more copy of
  the trainable parameters. On a CPU the per-tensor loop holds ~two copies of the largest tensor.
- Not counted: allocator fragmentation (``torch.cuda.memory_reserved`` minus allocated), the TRL reference
  model's own activations, the evaluation's KV cache (it runs between, not during, steps).

Time per step: FLOPs (Kaplan et al., arXiv 2001.08361): the body costs 2 x parameters x tokens forward and
6x with the backward (+2 recomputed under checkpointing, +2 for a reference forward, -2 for LoRA's frozen base,
which needs no weight gradient); the LM head is counted on the positions each backend projects (from-scratch:
``T + 1`` per row; TRL: completion tokens on CUDA, all positions on a CPU, with the tile recomputed in backward).
FLOPs are divided by an ASSUMED achievable throughput per device. Generation is the largest of its FLOPs, reading
every weight once per token (bandwidth), and a per-token latency floor (``Device.token_floor_ms``, scaled by the
number of layers): one decoding step launches every layer's kernels whatever the batch, which bounds a small
model's decoding on a GPU (the quoted T4 and H100 floors) and is measured on this course's CPU. Every completion
is taken at the length cap. Evaluation (``eval_seconds``): ``evaluation.evaluate``'s batches (32 prompts for
answers over 32 tokens; k samples of ``32 // k`` prompts for pass@k), each decoded to its token budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from grpo_lab.plan import memory as _mem
from grpo_lab.plan.arch import KNOWN_ARCHS, architecture, hf_config, lora_param_count, param_count
from grpo_lab.plan.devices import DEVICES, SOURCES, TOKEN_FLOOR_MS, Device

__all__ = [
    "DEVICES",
    "DTYPE_BYTES",
    "Device",
    "Estimate",
    "GiB",
    "KNOWN_ARCHS",
    "SOURCES",
    "TOKEN_FLOOR_MS",
    "architecture",
    "decode_seconds",
    "describe_plan",
    "estimate",
    "eval_seconds",
    "hf_config",
    "lora_param_count",
    "param_count",
    "runtime_of",
]

GiB = 1024**3
DTYPE_BYTES = {"fp32": 4, "float32": 4, "fp16": 2, "float16": 2, "bf16": 2, "bfloat16": 2}
EVAL_BATCH = 32  # evaluation.evaluate's batch for answers over 32 tokens


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
        """``steps`` training steps plus the evaluations before (with the generous baseline, if any) and after."""
        return steps * self.step_seconds + 2 * self.eval_seconds + self.baseline_eval_seconds


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
    batches of ``EVAL_BATCH`` and, with ``k >= 2`` (``runtime.eval_k``), k samples a problem in batches of
    ``EVAL_BATCH // k`` problems; every batch decoded to ``max_new_tokens`` (``runtime.eval_max_new_tokens``)."""
    rt = runtime_of(preset)
    dev = DEVICES[device or rt["device"]]
    arch = architecture(preset.model)
    P, c = param_count(arch), DTYPE_BYTES[rt["compute_dtype"] or rt["dtype"]]
    n, Lp = int(preset.eval_size), _prompt_length(preset, rt)
    new = int(max_new_tokens or rt.get("eval_max_new_tokens") or preset.grpo.get("max_completion_length", 256))
    k = int(rt.get("eval_k") or 0) if k is None else k
    batch = 512 if new <= 32 else EVAL_BATCH
    total = math.ceil(n / batch) * decode_seconds(arch, P, min(n, batch), Lp, new, c, dev)
    if k >= 2:
        per = max(1, batch // k)
        total += math.ceil(n / per) * decode_seconds(arch, P, min(n, per) * k, Lp, new, c, dev)
    return total


def _train_seconds(arch, P, s: _mem.Shape, g: dict, backend: str, dev: Device) -> float:
    """FLOPs of the update (module docstring) over ``train_tflops``."""
    head = arch["vocab_size"] * arch["hidden_size"]
    k = 6 + (2 if s.checkpointing else 0) + (2 if g.get("beta", 0.0) > 0 else 0) - (2 if s.lora else 0)
    body = k * (P - head) * s.B * s.L
    if backend == "trl":
        scored = s.B * s.T if dev.cuda else s.B * (s.L - 1)
        head_flops = (8 if not s.lora else 6) * head * scored  # the tile is recomputed in the backward
    else:
        head_flops = (6 if not s.lora else 4) * head * s.B * (s.T + 1)
    return (body + head_flops) * int(g.get("num_iterations", 1)) / (dev.train_tflops * 1e12)


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
    B = int(batch or g.get("per_device_train_batch_size", 8))
    G = int(num_generations or g.get("num_generations", 8))
    T = int(max_completion_length or g.get("max_completion_length", 256))
    if B % G:
        B = (B // G + 1) * G  # the trainers refuse it; estimate the next valid batch
    peft = bool(rt["use_peft"] if use_peft is None else use_peft)
    backend = backend or getattr(preset, "backend", "grpo_lab")
    rows = B if backend == "trl" else min(B, int(g.get("micro_batch_size") or B))
    w = DTYPE_BYTES[rt["dtype"]]
    s = _mem.Shape(
        B=B,
        rows=rows,
        Lp=_prompt_length(preset, rt),
        T=T,
        w=w,
        c=DTYPE_BYTES[rt["compute_dtype"] or rt["dtype"]],
        trainable=lora_param_count(arch, int(rt["lora_r"])) if peft else P,
        lora=peft,
        checkpointing=bool(rt["gradient_checkpointing"]),
    )
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
    gen = decode_seconds(arch, P, B, s.Lp, T, s.c, dev)
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


def describe_plan(preset, steps: int | None = None, device: str | None = None) -> str:
    """The text of ``grpo-lab train --preset NAME --dry-run``: ``plan.describe.describe_plan``."""
    from grpo_lab.plan.describe import describe_plan as _describe

    return _describe(preset, steps=steps, device=device)
