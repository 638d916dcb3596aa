"""The LoRA check: TRL trains LoRA adapters (peft) over a half-precision base, the adapters stay fp32, the base
does not move, and ``grpo-lab eval``'s loader (``models.load_model`` on the saved folder) rebuilds the same model.

Why fp32 adapters: with a half-precision base, peft keeps the adapters in fp32 (``get_peft_model``'s
``autocast_adapter_dtype=True``); fp16 trainable weights would make the fp16 loss scaler refuse to unscale their
gradients and would round Adam's small updates away. TRL 1.16 casts adapters to bf16 only for quantized bases
(``GRPOTrainer.__init__``), so a plain fp16/bf16 base must come back with fp32 adapters.

On a GPU: SmolLM2-135M-Instruct in fp16 with fp16 autocast (the T4 LoRA preset's dtypes); on the CPU (smoke):
the toy model in bf16 with bf16 autocast (accelerate does no fp16 on a CPU).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from benchmarks.gpucheck.common import FAIL, PASS, Row, snapshot
from benchmarks.gpucheck.learning import Setup

LORA_STEPS = 4


def _base_folder(model, tok, where: Path) -> str:
    """A folder the adapter's ``base_model_name_or_path`` can name: the model's own when it was loaded from one
    (SmolLM2's converted cache), else a fresh ``save_pretrained`` copy (a model built from a config). peft records
    the base's ``name_or_path`` attribute (``PeftModel.__init__``), which ``from_pretrained`` sets: set it too."""
    own = Path(str(model.config._name_or_path or ""))
    if not (own.is_dir() and (own / "config.json").exists()):
        model.save_pretrained(where)
        tok.save_pretrained(where)
        own = where
    model.config._name_or_path = model.name_or_path = str(own)
    return str(own)


def lora_rows(setup: Setup) -> list[Row]:
    """``lora/trl/<dtype>`` and ``lora-eval/<dtype>`` (module docstring)."""
    from grpo_lab.jobs import train_preset
    from grpo_lab.models import apply_lora, load_model

    dtype = "fp16" if setup.device.type == "cuda" else "bf16"
    half = torch.float16 if dtype == "fp16" else torch.bfloat16
    names = [f"lora/trl/{dtype}", f"lora-eval/{dtype}"]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            base = setup.fresh()
            _base_folder(base, setup.tok, Path(tmp) / "base")
            model = apply_lora(base.to(half), {"lora_r": 16, "lora_alpha": 32})
            trainable = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
            w0, frozen0 = (
                snapshot(model),
                {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n},
            )
            preset = setup.preset.replace(
                grpo=dict(max_steps=LORA_STEPS, learning_rate=1e-3 if setup.smoke else 1e-4),
                runtime=dict(compute_dtype=dtype, dtype=dtype, use_peft=True),
            )
            train_preset(model, setup.tok, preset, Path(tmp) / "run", task=setup.task, backend="trl", progress=False)
            after = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
            moved = max(
                (p.detach().float() - w0[n]).abs().max().item() for n, p in model.named_parameters() if n in w0
            )
            base_moved = any(not torch.equal(p, frozen0[n]) for n, p in model.named_parameters() if n in frozen0)
            bad = sorted({str(d) for d in [*trainable.values(), *after.values()] if d != torch.float32})
            problems = [f"trainable weights in {bad}"] if bad else []
            problems += [] if moved > 0 else ["the adapters did not move"]
            problems += ["the frozen base changed"] if base_moved else []
            detail = (
                f"{len(after)} adapter tensors in {sorted({str(d) for d in after.values()})} over a {half} base; "
                f"max |d adapter| {moved:.2e}; base unchanged: {not base_moved}"
            )
            rows = [
                Row(names[0], FAIL if problems else PASS, detail + ("  <- " + "; ".join(problems) if problems else ""))
            ]
        except Exception as err:
            return [Row(n, FAIL, f"{type(err).__name__}: {str(err)[:300]}", time.perf_counter() - t0) for n in names]
        try:
            rows.append(_reload_row(names[1], model, setup, Path(tmp) / "run" / "final", half, load_model))
        except Exception as err:
            rows.append(Row(names[1], FAIL, f"{type(err).__name__}: {str(err)[:300]}"))
    for r in rows:
        r.seconds = time.perf_counter() - t0
    return rows


def _reload_row(name: str, model, setup: Setup, folder: Path, half, load_model) -> Row:
    """The saved adapter folder, loaded as ``grpo-lab eval --model FOLDER`` loads it, holds the trained adapters
    exactly and computes what the trained model computes (same logits on held-out prompts, to half-precision
    rounding; the adapters' own effect can be that small after a few steps, hence the exact comparison too)."""
    from grpo_lab.rollout import encode_prompts

    if not (folder / "adapter_config.json").exists():
        return Row(name, FAIL, f"{folder} holds no adapter_config.json: the run did not save a LoRA adapter")
    loaded, tok = load_model(str(folder), dtype=half, device=setup.device)
    ids, mask = encode_prompts(setup.tok, [p.prompt for p in setup.heldout[:4]], setup.device)
    model.eval()
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask).logits.float()
        b = loaded(input_ids=ids, attention_mask=mask).logits.float()
    gap = (a - b).abs().max().item()
    scale = a.abs().max().item()
    mine = {n: p for n, p in model.named_parameters() if "lora_" in n}
    theirs = {n: p for n, p in loaded.named_parameters() if "lora_" in n}
    same = mine.keys() == theirs.keys() and all(torch.equal(mine[n].cpu(), theirs[n].cpu()) for n in mine)
    ok = same and bool(mine) and gap <= 1e-2 * max(scale, 1.0)
    detail = (
        f"reloaded {type(loaded).__name__} from {folder.name}/: {len(theirs)} adapter tensors "
        f"{'equal to' if same else 'DIFFERENT from'} the trained ones; max |logit difference| {gap:.2e} (of {scale:.1f})"
    )
    return Row(name, PASS if ok else FAIL, detail + ("" if ok else "  <- the reloaded model differs"))
