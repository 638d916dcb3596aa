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
    "cpu.bench_step.grpo_lab": dict(
        value=dict(step_s=17.8, gen_s=9.2, update_s=8.4, peak_rss_gb=7.3),
        unit="s per step, s, s, GB (peak RSS of the process)",
        kind="measured",
        what="one step of the from-scratch trainer: SmolLM2-135M, 4 prompts x 8 completions of (36 + 64) tokens, fp32",
        source=(
            "benchmarks/step_times.md: `.venv/bin/python benchmarks/bench_step.py --steps 3` on the course's 2-core "
            "Xeon VM (AVX2, 2 threads, torch 2.13 CPU), speed check 42.6 / 41.2 ms (a fast phase)"
        ),
    ),
    "cpu.bench_step.trl": dict(
        value=dict(step_s=27.2, gen_s=11.4, update_s=15.7, peak_rss_gb=13.1),
        unit="s per step, s, s, GB (peak RSS of the process)",
        kind="measured",
        what="the same step on TRL 1.16's GRPOTrainer (fused LM head, torch fallback on the CPU)",
        source="benchmarks/step_times.md, the same command and machine",
    ),
    "cpu.nb06.smollm2_gsm8k": dict(
        value=dict(step_s=42.4),
        unit="s per step",
        kind="measured",
        what="cpu-smollm2-gsm8k (2 prompts x 4 completions, <= 160 tokens, fp32, from-scratch), 20 steps in 853.6 s",
        source=(
            "notebooks/06_capstone_gsm8k.ipynb as rendered on 2026-11-30 (its GPU-track cell then trained on a CPU; "
            "the notebook no longer does), stored output of that training cell (2 CPU threads)"
        ),
    ),
    "cpu.update_tflops": dict(
        value=0.21,
        unit="TFLOP/s",
        kind="measured",
        what=(
            "loss + backward of the cpu.bench_step.grpo_lab step: ~1.77 TFLOP (prompt once per group) in 8.4 s; "
            "step_times.md reads 200-290 GFLOP/s"
        ),
        source="derived from cpu.bench_step.grpo_lab",
    ),
    "cpu.gen_tflops": dict(
        value=0.08,
        unit="TFLOP/s",
        kind="measured",
        what="sampling 32 x (36 + 64) tokens: 0.86 TFLOP in 9.2 s (from scratch, 0.094) and 11.4 s (TRL, 0.075)",
        source="derived from cpu.bench_step.grpo_lab and cpu.bench_step.trl",
    ),
    "cpu.token_floor_ms": dict(
        value=144.0,
        unit="ms per generated token, 30 layers",
        kind="measured",
        what=(
            "an upper bound on one decoding step of SmolLM2-135M at small batch: 64 steps of 32 rows took 9.2 s "
            "(cpu.bench_step.grpo_lab); a step of fewer rows costs no more"
        ),
        source="derived from cpu.bench_step.grpo_lab",
    ),
    "cpu.hf_generate_batch1_ms": dict(
        value=149.0,
        unit="ms per generated token, 30 layers",
        kind="measured",
        what=(
            "model.generate of SmolLM2-135M, batch 1, 16 new tokens, fp32, 2 threads, on the development VM while "
            "other jobs shared its 2 cores (load average 6; speed checks 1324 and 1178 ms, against 42-55 in a fast "
            "phase); agrees with cpu.token_floor_ms. Earlier runs at load 6-9 read 439 and 877 ms: a shared "
            "machine's figure is only as good as its phase"
        ),
        source="OMP_NUM_THREADS=2 python benchmarks/decode_latency.py --model smollm2 --batch 1 --new 16, 2026-12-06",
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


def _value(key: str) -> float:
    return float(SOURCES[key]["value"])


DEVICES: dict[str, Device] = {
    "cpu": Device(
        "CPU (2 cores)",
        16.0,
        _value("cpu.update_tflops"),
        _value("cpu.gen_tflops"),
        20.0,
        0.0,
        False,
        _value("cpu.token_floor_ms"),
        30,
        cuda=False,
        sources=("cpu.update_tflops", "cpu.gen_tflops", "cpu.token_floor_ms", "cpu.bench_step.grpo_lab"),
    ),
    "t4": Device(
        "NVIDIA T4 16 GB",
        15.0,
        12.0,
        3.0,
        320.0,
        0.6,
        False,
        _value("t4.token_floor_ms"),
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
        _value("a100.token_floor_ms"),
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
        _value("a100.token_floor_ms"),
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
        _value("h100.token_floor_ms"),
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
