"""Device classes for the plan, and every number the plan takes from outside its own arithmetic, with its source.

``SOURCES`` is the ledger: each entry says what the number is, its value, whether it was MEASURED (a command on a
named machine), QUOTED (a figure someone else published or wrote down, not checked by the course) or ASSUMED (a
guess the course makes, e.g. a share of a spec-sheet peak), and where it comes from. ``Device`` fields point into it,
so ``describe_plan`` can say which of its inputs were measured. ``tests/test_plan.py`` compares the plan against the
measured and quoted entries.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES: dict[str, dict] = {
    "cpu.update_tflops": dict(
        value=0.15,
        unit="TFLOP/s",
        kind="measured",
        what="the update (forward + backward) of 32 x (36 + 64) SmolLM2-135M tokens, fp32, 2 threads, ~17 s",
        source="benchmarks/bench_step.py on a 2-core Xeon VM (AVX2), 2026-12; the course's development machine",
    ),
    "cpu.gen_tflops": dict(
        value=0.07,
        unit="TFLOP/s",
        kind="measured",
        what="sampling 32 completions of 64 tokens from SmolLM2-135M (prompt tokens counted once per row), ~12 s",
        source="benchmarks/bench_step.py on the same 2-core Xeon VM",
    ),
    "cpu.token_floor_ms": dict(
        value=440.0,
        unit="ms per generated token, 30 layers",
        kind="measured",
        what="model.generate of SmolLM2-135M (30 layers), KV cache, greedy, batch 1, 48 new tokens, fp32",
        source=(
            "OMP_NUM_THREADS=2 python benchmarks/decode_latency.py --model smollm2 --batch 1 8 32 --new 48 on the "
            "2-core development VM shared with other jobs (load ~2), 2026-12-06: 439 ms/token at batch 1"
        ),
    ),
    "t4.token_floor_ms": dict(
        value=45.0,
        unit="ms per generated token, 24 layers",
        kind="quoted",
        what="HF generate of Qwen2.5-0.5B on a T4: decoding is launch-bound, 40-50 ms a token (midpoint)",
        source="issue #30 of this repository (filed by a course session; not measured by the course)",
    ),
    "h100.token_floor_ms": dict(
        value=22.5,
        unit="ms per generated token, 24 layers",
        kind="quoted",
        what="HF generate of Qwen2.5-0.5B on an H100: launch-bound, 20-25 ms a token (midpoint)",
        source="issue #30 of this repository (filed by a course session; not measured by the course)",
    ),
    "a100.token_floor_ms": dict(
        value=22.5,
        unit="ms per generated token, 24 layers",
        kind="assumed",
        what="taken equal to the H100's: a launch-bound decode is paced by the host and kernel launches, not the GPU",
        source="assumption of grpo_lab/plan (no A100 figure on file)",
    ),
    "t4.tflops": dict(
        value=(12.0, 3.0),
        unit="TFLOP/s update, generation",
        kind="assumed",
        what="~20% of the T4's 65 TFLOP/s fp16 tensor-core peak for the update; less for batched decoding",
        source="NVIDIA T4 datasheet (65 TFLOP/s fp16, 320 GB/s); the share is the course's guess",
    ),
    "a100.tflops": dict(
        value=(80.0, 20.0),
        unit="TFLOP/s update, generation",
        kind="assumed",
        what="~25% of the A100's 312 TFLOP/s bf16 peak",
        source="NVIDIA A100 datasheet (312 TFLOP/s bf16, 1.6-2.0 TB/s); the share is the course's guess",
    ),
    "h100.tflops": dict(
        value=(200.0, 50.0),
        unit="TFLOP/s update, generation",
        kind="assumed",
        what="~20% of the H100 SXM's 989 TFLOP/s dense bf16 peak",
        source="NVIDIA H100 datasheet (989 TFLOP/s bf16 dense, 3.35 TB/s); the share is the course's guess",
    ),
    "qwen2.5-0.5b.head_grad_gib": dict(
        value=0.5,
        unit="GiB",
        kind="quoted",
        what="fp32 gradient buffer of TRL's chunked LM head for Qwen2.5-0.5B (151,936 x 896 x 4 bytes = 0.507 GiB)",
        source=(
            "issue #30; checked in trl 1.16 kernels/chunked_logprob.py ChunkedLogProbFunction.backward "
            "(grad_weight = torch.zeros(weight.shape, dtype=torch.float32))"
        ),
    ),
}


@dataclass(frozen=True)
class Device:
    """A device class for estimates. ``train_tflops``/``gen_tflops``: achievable (not peak) throughput of the update
    and of batched decoding; ``bandwidth_gbs``: memory bandwidth (GB/s, spec sheet); ``memory_gib``: usable memory;
    ``overhead_gib``: CUDA context and allocator slack; ``token_floor_ms``: the time of one decoding step of a
    ``floor_layers``-layer model at small batch (launch-bound on a GPU), scaled by layer count in the plan;
    ``cuda``: whether TRL's Triton kernels and torch's foreach AdamW apply; ``sources``: ``SOURCES`` keys."""

    name: str
    memory_gib: float
    train_tflops: float
    gen_tflops: float
    bandwidth_gbs: float
    overhead_gib: float
    bf16: bool
    token_floor_ms: float = 0.0
    floor_layers: int = 24
    cuda: bool = True
    sources: tuple = ()


def _floor(key: str) -> float:
    return float(SOURCES[key]["value"])


DEVICES: dict[str, Device] = {
    "cpu": Device(
        "CPU (2 cores)",
        16.0,
        0.15,
        0.07,
        20.0,
        0.0,
        False,
        _floor("cpu.token_floor_ms"),
        30,
        cuda=False,
        sources=("cpu.update_tflops", "cpu.gen_tflops", "cpu.token_floor_ms"),
    ),
    "t4": Device(
        "NVIDIA T4 16 GB",
        15.0,
        12.0,
        3.0,
        320.0,
        0.6,
        False,
        _floor("t4.token_floor_ms"),
        sources=("t4.tflops", "t4.token_floor_ms"),
    ),
    "a100-40": Device(
        "NVIDIA A100 40 GB",
        39.5,
        80.0,
        20.0,
        1555.0,
        0.8,
        True,
        _floor("a100.token_floor_ms"),
        sources=("a100.tflops", "a100.token_floor_ms"),
    ),
    "a100": Device(
        "NVIDIA A100 80 GB",
        79.0,
        80.0,
        20.0,
        2039.0,
        0.8,
        True,
        _floor("a100.token_floor_ms"),
        sources=("a100.tflops", "a100.token_floor_ms"),
    ),
    "h100": Device(
        "NVIDIA H100 80 GB",
        79.0,
        200.0,
        50.0,
        3350.0,
        0.8,
        True,
        _floor("h100.token_floor_ms"),
        sources=("h100.tflops", "h100.token_floor_ms"),
    ),
}
TOKEN_FLOOR_MS = {k: (d.token_floor_ms, d.floor_layers) for k, d in DEVICES.items()}


def source_kinds(dev: Device) -> str:
    """``"measured: a, b; quoted: c; assumed: d"`` for the ``SOURCES`` entries a device's figures come from."""
    by: dict[str, list[str]] = {}
    for key in dev.sources:
        by.setdefault(SOURCES[key]["kind"], []).append(key)
    return "; ".join(f"{kind}: {', '.join(keys)}" for kind, keys in by.items())
