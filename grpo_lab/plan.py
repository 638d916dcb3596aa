"""Dry-run plans: what a preset will do, and back-of-the-envelope peak memory and time per GRPO step.

``grpo-lab train --preset NAME --dry-run`` prints ``describe_plan(preset)``. Nothing is built or downloaded:
parameter counts come from a table of known architectures (``KNOWN_ARCHS``) or from the ``tiny:<size>``
configs in ``grpo_lab.models``.

Design notes (every number printed by this module is an ESTIMATE, and says so):

What is counted: the state the from-scratch trainer (``grpo_lab.trainer``) holds, phase by phase.

- Two phases that do not overlap in time: the rollout and the update. Peak = resident state + the larger
  phase + a fixed CUDA context allowance (``Device.overhead_gib``).
- Resident, full fine-tuning with AdamW: weights + gradients + two Adam moments, each in the dtype the
  trainable weights are stored in (``runtime["dtype"]``: fp32 master weights under mixed precision).
- Resident, LoRA (Hu et al., arXiv 2106.09685): the frozen base in its storage dtype, plus fp32 adapters
  with their gradients and Adam moments (16 bytes each).
- Reference model: only when ``beta > 0``. Full fine-tuning keeps a frozen copy in the storage dtype;
  LoRA keeps none (the reference is the same model with its adapters disabled, as TRL does).
- Mixed precision (``compute_dtype`` fp16/bf16 over fp32 weights): autocast holds a half-precision copy of
  every weight it casts for the duration of one forward pass, counted in both phases.
- Rollout: the KV cache (K and V of every layer, compute dtype) for every completion of ``L = prompt +
  completion`` tokens, and the last position's logits only (the prompt forward keeps one position).
- Update: saved activations (every layer's; with gradient checkpointing only layer inputs plus one layer
  recomputed) and the logits of the completion positions only (``logits_to_keep = T + 1``): the
  [B, T + 1, V] logits and their gradient in the compute dtype, plus the fp32 temporaries of the 8 rows
  that ``rollout_fast.selective_logps`` scores at a time (its backward is written by hand, so no fp32 copy of
  the whole logits is kept). Nothing of size [B, L, V] exists. Vocabularies dominate small models
  (Qwen2.5: 151,936 tokens), so this term sets how many completions fit.
- The TRL backend (``backend="trl"``) holds the same resident state; on CUDA TRL 1.16 computes the
  log-probs with a fused Triton kernel (``trl.trainer.utils.selective_log_softmax``), so its logits term is
  the compute-dtype logits and their gradient only.
- Time: the usual FLOP rules (Kaplan et al., arXiv 2001.08361): a forward pass costs ~2 x parameters x
  tokens, forward + backward ~6 x parameters x tokens (+2 for the recomputed forward under gradient
  checkpointing, +2 for a reference forward when ``beta > 0``). FLOPs are divided by an ASSUMED achievable
  throughput per device class (``DEVICES``), which is a guess, not a measurement. Decoding one token at a
  time is also bounded below by reading every weight once per token (memory bandwidth), so generation time
  is the larger of the two. Not counted: allocator fragmentation (compare with ``torch.cuda``'s reserved
  memory, which ``benchmarks/gpu_check.sh`` prints next to this estimate).
"""

from __future__ import annotations

from dataclasses import dataclass

from grpo_lab.errors import UnknownNameError

GiB = 1024**3
DTYPE_BYTES = {"fp32": 4, "float32": 4, "fp16": 2, "float16": 2, "bf16": 2, "bfloat16": 2}

# Architectures of the models the course names (their config.json on the hub), so that a plan needs no
# download. Parameter counts computed from these match the published sizes (Qwen2.5-0.5B: 494,032,768).
KNOWN_ARCHS: dict[str, dict] = {
    "Qwen/Qwen2.5-0.5B-Instruct": dict(
        family="qwen2",
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        head_dim=64,
        tie_word_embeddings=True,
        qkv_bias=True,
    ),
    "Qwen/Qwen2.5-1.5B-Instruct": dict(
        family="qwen2",
        vocab_size=151936,
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        head_dim=128,
        tie_word_embeddings=True,
        qkv_bias=True,
    ),
    "HuggingFaceTB/SmolLM2-135M-Instruct": dict(
        family="llama",
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        tie_word_embeddings=True,
        qkv_bias=False,
    ),
    "HuggingFaceTB/SmolLM2-360M-Instruct": dict(
        family="llama",
        vocab_size=49152,
        hidden_size=960,
        intermediate_size=2560,
        num_hidden_layers=32,
        num_attention_heads=15,
        num_key_value_heads=5,
        head_dim=64,
        tie_word_embeddings=True,
        qkv_bias=False,
    ),
}
KNOWN_ARCHS["Qwen/Qwen2.5-0.5B"] = KNOWN_ARCHS["Qwen/Qwen2.5-0.5B-Instruct"]
_ALIASES = {
    "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
}


@dataclass(frozen=True)
class Device:
    """A device class for estimates. ``train_tflops``/``gen_tflops``: ASSUMED achievable (not peak)
    throughput of the update and of batched decoding; ``bandwidth_gbs``: memory bandwidth (GB/s, spec sheet);
    ``memory_gib``: usable memory; ``overhead_gib``: CUDA context and allocator slack."""

    name: str
    memory_gib: float
    train_tflops: float
    gen_tflops: float
    bandwidth_gbs: float
    overhead_gib: float
    bf16: bool


# GPU assumptions, chosen conservatively (roughly 20-30% of the spec-sheet dense peak for the update, less
# for decoding, which small batches cannot keep busy): T4 65 TFLOP/s fp16 peak, 320 GB/s; A100 312 TFLOP/s
# bf16, 1.6-2.0 TB/s; H100 SXM 989 TFLOP/s bf16, 3.35 TB/s. The CPU figures are measured, in this file's
# accounting (prompt tokens counted once per completion): benchmarks/bench_step.py on a 2-core Xeon VM
# (AVX2, fp32, 2 threads) ran the update of 32 x (36 + 64) SmolLM2 tokens in about 17 s (0.15 TFLOP/s)
# and their generation in about 12 s (0.07 TFLOP/s). A busy or older laptop can be 2x slower.
DEVICES: dict[str, Device] = {
    "cpu": Device("CPU (2 cores)", 16.0, 0.15, 0.07, 20.0, 0.0, False),
    "t4": Device("NVIDIA T4 16 GB", 15.0, 12.0, 3.0, 320.0, 0.6, False),
    "a100-40": Device("NVIDIA A100 40 GB", 39.5, 80.0, 20.0, 1555.0, 0.8, True),
    "a100": Device("NVIDIA A100 80 GB", 79.0, 80.0, 20.0, 2039.0, 0.8, True),
    "h100": Device("NVIDIA H100 80 GB", 79.0, 200.0, 50.0, 3350.0, 0.8, True),
}


def architecture(model: str) -> dict:
    """The architecture dict of a model name (``tiny:<size>``, ``smollm2``, a ``KNOWN_ARCHS`` hub id).

    Raises ``UnknownNameError`` (a ``KeyError``) naming the known models for anything else (a plan never
    downloads a config).
    """
    if model.startswith("tiny:"):
        from grpo_lab.models import DEFAULT_CHARS, SPECIAL_TOKENS, TINY_SIZES

        size = model.split(":", 1)[1]
        if size not in TINY_SIZES:
            raise UnknownNameError(f"unknown tiny size {size!r}; choose one of {sorted(TINY_SIZES)}")
        c = TINY_SIZES[size]
        vocab = len(SPECIAL_TOKENS) + len(dict.fromkeys(DEFAULT_CHARS))  # build_char_tokenizer's vocabulary
        return dict(
            family="qwen2",
            vocab_size=vocab,
            hidden_size=c["hidden_size"],
            intermediate_size=c["intermediate_size"],
            num_hidden_layers=c["num_hidden_layers"],
            num_attention_heads=c["num_attention_heads"],
            num_key_value_heads=c["num_key_value_heads"],
            head_dim=c["hidden_size"] // c["num_attention_heads"],
            tie_word_embeddings=True,
            qkv_bias=True,
        )
    name = _ALIASES.get(model.lower(), model)
    if name not in KNOWN_ARCHS:
        raise UnknownNameError(
            f"no architecture on file for {model!r} (a dry run downloads nothing); known: "
            f"tiny:<size>, smollm2, {', '.join(KNOWN_ARCHS)}"
        )
    return dict(KNOWN_ARCHS[name])


def param_count(arch: dict) -> int:
    """Parameters of a Llama/Qwen2-style decoder: embeddings (once if tied), per layer q/k/v/o (+ biases on
    q/k/v for Qwen2), the gated MLP (3 matrices) and two RMSNorms, plus the final norm."""
    h, i, V = arch["hidden_size"], arch["intermediate_size"], arch["vocab_size"]
    q = arch["num_attention_heads"] * arch["head_dim"]
    kv = arch["num_key_value_heads"] * arch["head_dim"]
    attn = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if arch.get("qkv_bias") else 0)
    layer = attn + 3 * h * i + 2 * h
    emb = V * h * (1 if arch.get("tie_word_embeddings", True) else 2)
    return emb + arch["num_hidden_layers"] * layer + h


def lora_param_count(arch: dict, r: int) -> int:
    """Trainable LoRA parameters with rank ``r`` on all seven linear maps of every layer (q, k, v, o, gate,
    up, down): ``r * (fan_in + fan_out)`` each."""
    h, i = arch["hidden_size"], arch["intermediate_size"]
    q = arch["num_attention_heads"] * arch["head_dim"]
    kv = arch["num_key_value_heads"] * arch["head_dim"]
    per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)
    return r * per_layer * arch["num_hidden_layers"]


def hf_config(arch: dict, **overrides):
    """A ``transformers`` config (Qwen2Config or LlamaConfig) built from an architecture dict: for building
    a randomly initialised model of a known shape with no download (``benchmarks/gpu_check.sh``)."""
    from transformers import LlamaConfig, Qwen2Config

    kw = {k: v for k, v in arch.items() if k not in ("family", "qwen2", "qkv_bias")}
    kw.update(overrides)
    if arch.get("family") == "llama":
        return LlamaConfig(**kw)
    return Qwen2Config(**kw)


@dataclass
class Estimate:
    """Peak memory (bytes, by component) and seconds per step, ALL ESTIMATES; see the module docstring."""

    params: int
    trainable: int
    memory: dict  # component -> bytes
    peak_bytes: float
    gen_seconds: float
    train_seconds: float
    device: Device

    @property
    def step_seconds(self) -> float:
        return self.gen_seconds + self.train_seconds

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GiB


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


def _resident_memory(arch: dict, P: int, lora_r: int, w: int, c: int, reference: bool) -> tuple[int, dict]:
    """(trainable parameters, bytes by component) of the state that stays resident for the whole run, as the
    module docstring lists it: full fine-tuning keeps weights, gradients and two Adam moments in the storage
    dtype (``w`` bytes) and, when ``reference``, a frozen copy in it; LoRA (``lora_r > 0``) keeps the frozen
    base (``w`` bytes) and fp32 adapters with gradients and moments (16 bytes each), and no reference copy.
    The autocast copy in the compute dtype (``c`` bytes) is counted when ``c < w``."""
    mem: dict[str, float] = {}
    if lora_r:
        trainable = lora_param_count(arch, lora_r)
        mem["weights (frozen base)"] = P * w
        mem["LoRA weights+grads+Adam (fp32)"] = trainable * 16
    else:
        trainable = P
        mem["weights"] = P * w
        mem["gradients"] = P * w
        mem["Adam moments"] = 2 * P * w
        if reference:
            mem["reference model (frozen copy)"] = P * w
    if c < w:
        mem["autocast weight copy (one forward)"] = P * c
    return trainable, mem


def _step_memory(arch, B, L, T, c, checkpointing, trl, dev) -> tuple[float, float, float]:
    """Bytes of the rollout (KV cache + last-position logits), the update's saved activations, and the
    update's completion logits with their gradient, for B rows of L tokens (T of them completion)."""
    h, i, V = arch["hidden_size"], arch["intermediate_size"], arch["vocab_size"]
    layers = arch["num_hidden_layers"]
    kv = arch["num_key_value_heads"] * arch["head_dim"]
    # Rollout: KV cache (K and V, every layer) for B rows of L tokens + one position's logits per row.
    rollout = 2 * layers * kv * B * L * c + B * V * (c + 4 * 2)
    per_token_layer = (8 * h + 4 * i) * c  # q/k/v/o inputs, norms, residuals, MLP in/act/out (sdpa attention)
    if checkpointing:
        acts = B * L * h * c * layers + B * L * per_token_layer  # layer inputs + one layer recomputed
    else:
        acts = B * L * per_token_layer * layers
    if trl and dev.name != DEVICES["cpu"].name:  # fused log-prob kernel on CUDA (module docstring)
        logits = 2 * B * (T + 1) * V * c
    else:  # completion positions only and their gradient, plus fp32 temporaries of 8 rows (selective_logps)
        logits = 2 * B * (T + 1) * V * c + 2 * min(B, 8) * T * V * 4
    return rollout, acts, logits


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
    the preset's hardware) with ``backend`` (default ``preset.backend``). Keyword overrides let callers ask
    "what if" (LoRA, another batch, G, length, the other backend).

    Contract: monotone non-decreasing in ``batch``, ``max_completion_length`` (memory and time) and in the
    number of prompts; pure arithmetic, no model is built. Cites: see the module docstring.
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
    Lp = _prompt_length(preset, rt)
    L = Lp + T
    peft = rt["use_peft"] if use_peft is None else use_peft
    w = DTYPE_BYTES[rt["dtype"]]
    c = DTYPE_BYTES[rt["compute_dtype"] or rt["dtype"]]
    trainable, mem = _resident_memory(arch, P, int(rt["lora_r"]) if peft else 0, w, c, g.get("beta", 0.0) > 0)
    resident = sum(mem.values())
    backend = backend or getattr(preset, "backend", "grpo_lab")
    rollout, acts, logits = _step_memory(arch, B, L, T, c, rt["gradient_checkpointing"], backend == "trl", dev)
    update = acts + logits
    mem["rollout: KV cache + last-position logits"] = rollout
    mem["update: activations"] = acts
    mem["update: completion logits + grad"] = logits
    peak = resident + max(rollout, update) + dev.overhead_gib * GiB

    tokens = B * L
    gen_flops = 2 * P * tokens
    gen_s = max(gen_flops / (dev.gen_tflops * 1e12), T * P * c / (dev.bandwidth_gbs * 1e9))
    k = 6 + (2 if rt["gradient_checkpointing"] else 0) + (2 if g.get("beta", 0.0) > 0 else 0)
    if peft:
        k -= 2  # no weight gradients for the frozen base: roughly one matmul of three in the backward pass
    train_s = k * P * tokens * int(g.get("num_iterations", 1)) / (dev.train_tflops * 1e12)
    return Estimate(P, trainable, mem, peak, gen_s, train_s, dev)


def _fmt_bytes(b: float) -> str:
    return f"{b / GiB:7.2f} GiB" if b >= 0.1 * GiB else f"{b / 1024**2:7.1f} MiB"


def _fmt_s(s: float) -> str:
    return f"{s:.3g} s" if s >= 0.01 else f"{s * 1e3:.2g} ms"


def describe_plan(preset, steps: int | None = None, device: str | None = None) -> str:
    """The text of ``grpo-lab train --preset NAME --dry-run``: model, task, GRPO knobs (TRL names), machine
    settings, then ESTIMATED peak memory by component (full fine-tuning and LoRA) and time per step.

    Builds and downloads nothing; works for every registered preset on a CPU. ``steps`` overrides
    ``max_steps`` for the total-time line; ``device`` estimates on another ``DEVICES`` class.
    """
    rt = runtime_of(preset)
    g = dict(preset.grpo)
    if steps is not None:
        g["max_steps"] = steps
    est = estimate(preset, device=device)
    alt = estimate(preset, device=device, use_peft=not rt["use_peft"])
    full, lora = (alt, est) if rt["use_peft"] else (est, alt)
    dev = est.device
    n_prompts = g.get("per_device_train_batch_size", 0) // max(1, g.get("num_generations", 1))
    lines = [
        f"preset      {preset.name}  ({preset.hardware})",
        f"            {preset.description}",
        f"model       {preset.model}  ({est.params / 1e6:.2f}M parameters; trainable {est.trainable / 1e6:.2f}M"
        f"{' with LoRA r=' + str(rt['lora_r']) if rt['use_peft'] else ''})",
        f"task        {preset.task}  (held-out eval subset: {preset.eval_size} problems)",
        f"GRPO        {n_prompts} prompts x G={g.get('num_generations')} = {g.get('per_device_train_batch_size')} "
        f"completions/step, max_completion_length={g.get('max_completion_length')}, steps={g.get('max_steps')}",
        f"            learning_rate={g.get('learning_rate')}, beta={g.get('beta')}, loss_type={g.get('loss_type')}, "
        f"scale_rewards={g.get('scale_rewards', 'group')}, epsilon={g.get('epsilon', 0.2)}/"
        f"{g.get('epsilon_high') or g.get('epsilon', 0.2)}, temperature={g.get('temperature', 1.0)}",
        f"backend     {getattr(preset, 'backend', 'grpo_lab')} (grpo-lab train --backend overrides it)",
        f"machine     weights {rt['dtype']}, compute {rt['compute_dtype'] or rt['dtype']}, gradient_checkpointing="
        f"{rt['gradient_checkpointing']}, LoRA={'on (peft)' if rt['use_peft'] else 'off'}",
    ]
    if preset.sft:
        lines.append(f"SFT         warm start: {preset.sft}")
    if preset.notes:
        lines.append(f"notes       {preset.notes}")
    lines += ["", f"ESTIMATES for {dev.name} (arithmetic from the model size, not measurements; grpo_lab/plan.py):"]
    for k, v in est.memory.items():
        lines.append(f"  {k:<42}{_fmt_bytes(v)}")
    if dev.overhead_gib:
        lines.append(f"  {'CUDA context + allocator slack':<42}{_fmt_bytes(dev.overhead_gib * GiB)}")
    fits = "fits" if est.peak_gib <= dev.memory_gib else "DOES NOT FIT"
    lines.append(
        f"  peak memory (estimate)                    {est.peak_gib:7.2f} GiB  ({fits} in {dev.memory_gib:g} GiB)"
    )
    lines.append(
        f"  full fine-tune vs LoRA r={rt['lora_r']} peak (estimate)  {full.peak_gib:.2f} GiB vs {lora.peak_gib:.2f} GiB"
    )
    lines.append(
        f"  time per step (estimate)                  {_fmt_s(est.step_seconds)}  (generation {_fmt_s(est.gen_seconds)}, "
        f"update {_fmt_s(est.train_seconds)}; assumed {dev.train_tflops:g}/{dev.gen_tflops:g} TFLOP/s "
        f"update/generation, {dev.bandwidth_gbs:g} GB/s; every completion at the length cap)"
    )
    lines.append(
        f"  total for {g.get('max_steps')} steps (estimate)         ~{est.step_seconds * g.get('max_steps', 0) / 60:.1f} min "
        "(+ evaluation and model loading)"
    )
    return "\n".join(lines)
