"""The architectures a plan knows without a download (``KNOWN_ARCHS``, ``tiny:<size>``) and the parameter counts
of a Llama/Qwen2-style decoder, full and LoRA."""

from __future__ import annotations

from grpo_lab.errors import UnknownNameError

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
