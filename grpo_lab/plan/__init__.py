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

from grpo_lab.plan.arch import KNOWN_ARCHS, architecture, hf_config, lora_param_count, param_count
from grpo_lab.plan.core import (
    DTYPE_BYTES,
    Estimate,
    GiB,
    decode_seconds,
    estimate,
    eval_seconds,
    runtime_of,
)
from grpo_lab.plan.describe import describe_plan
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
