"""The body of ``benchmarks/gpu_check.sh``: run the shipped training code on this GPU and fail loudly.

Checks (each prints one line with PASS or FAIL; the exit status is 1 when any fails):

1. ``weights-move/<dtype>``: the from-scratch trainer's mixed-precision step (``GRPOConfig.compute_dtype``
   fp16 with its loss scaler, and bf16 where the device has it) changes the weights AND what the model
   computes afterwards. The second half is what catches stale weights: ``torch.autocast`` caches the
   low-precision copy of each weight until its outermost region exits, so a training loop inside one
   long-lived region keeps generating from the first step's weights while the fp32 weights move.
2. ``preset/<name>``: a preset's own configuration (its default backend, dtype, compute dtype, gradient
   checkpointing, LoRA, batch and completion length) for two optimizer steps on a randomly initialised
   model of its architecture, under an allocator cap of the preset's GPU (``--t4-cap-gib``, 14.5 GiB, for
   the T4 presets: ``torch.cuda.set_per_process_memory_fraction``). Passes when it runs without running out
   of memory and the weights (LoRA: the adapters) move; prints the peak allocated and reserved memory next
   to ``plan.estimate``'s figure for the same shapes.

No download: models are built from ``plan.KNOWN_ARCHS`` configs with random weights and a char-level
tokenizer (the vocabulary size, which sets the logits' memory, is the real one). A random model rarely
emits EOS, so every completion runs to ``max_completion_length``: the worst case for time and memory.
``--cpu-smoke`` runs the same checks on the CPU with toy shapes (2 layers, vocabulary 1,000, 8 completions
of 8 tokens), so the test suite proves the script works. ``GRPO_LAB_GPU_CHECK_INJECT=stale-weights``
re-creates the old bug on purpose (the whole loop inside one autocast region); the checks must then fail.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from grpo_lab import plan  # noqa: E402
from grpo_lab.presets import get_preset  # noqa: E402
from grpo_lab.tasks import Problem, Task  # noqa: E402

GiB = 1024**3
T4_PRESETS = ["t4-qwen2.5-0.5b-gsm8k", "t4-qwen2.5-0.5b-gsm8k-lora"]
BIG_PRESETS = ["a100-qwen2.5-0.5b-gsm8k", "a100-qwen2.5-0.5b-gsm8k-lora"]
SMOKE_ARCH = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=1000,
)


class ShapeTask(Task):
    """Prompts of a fixed length (``prompt_length`` characters, one token each for the char tokenizer) and a
    reward that is 1 for a random half of the completions, so every group has a signal to learn from."""

    name = "shape"

    def __init__(self, prompt_length: int):
        self.prompt_length = prompt_length

    def _random_problem(self, rng: random.Random) -> Problem:
        digits = "".join(rng.choice("0123456789") for _ in range(self.prompt_length - 1))
        return Problem(digits + "=", digits, "1")

    def check(self, problem: Problem, answer: str | None) -> bool:
        return random.random() < 0.5


def build_model(model_name: str, smoke: bool, device: torch.device, dtype: torch.dtype = torch.float32):
    """A randomly initialised causal LM with ``model_name``'s architecture (toy sizes when ``smoke``) and a char
    tokenizer; weights in ``dtype``."""
    from transformers import AutoModelForCausalLM

    from grpo_lab.models import build_char_tokenizer

    arch = plan.architecture(model_name)
    if smoke:
        arch.update(SMOKE_ARCH)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(plan.hf_config(arch, max_position_embeddings=4096, attention_dropout=0.0))
    tok = build_char_tokenizer()
    model.config.eos_token_id = model.generation_config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = model.generation_config.pad_token_id = tok.pad_token_id
    return model.to(device=device, dtype=dtype).eval(), tok


def stale_weights_injected() -> bool:
    return os.environ.get("GRPO_LAB_GPU_CHECK_INJECT", "") == "stale-weights"


def outer_region(device: torch.device, compute_dtype: str):
    """The injected bug: one autocast region around the whole loop (what an old job did); else nothing."""
    if not stale_weights_injected() or compute_dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if compute_dtype == "fp16" else torch.bfloat16)


def snapshot(model) -> dict:
    return {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}


def max_change(model, before: dict) -> float:
    return max((p.detach().float() - before[n]).abs().max().item() for n, p in model.named_parameters() if n in before)


def check_weights_move(compute_dtype: str, smoke: bool, device: torch.device) -> dict:
    """Two steps of ``trainer.GRPOTrainer`` in ``compute_dtype``: the trainable weights must change and so must
    the log-probs the trainer computes for a fixed probe afterwards (inside the loop's autocast context)."""
    from grpo_lab.rollout import completion_logps, encode_prompts
    from grpo_lab.trainer import GRPOConfig, GRPOTrainer, task_reward

    model, tok = _weights_model(smoke, device)
    task = ShapeTask(12)
    cfg = GRPOConfig(
        learning_rate=1e-3 if smoke else 1e-4,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=8,
        max_steps=2,
        compute_dtype=compute_dtype,
        seed=0,
    )
    trainer = GRPOTrainer(
        model, [task_reward(task)], args=cfg, train_dataset=task.train(64, seed=1), processing_class=tok
    )
    pids, pmask = encode_prompts(tok, [p.prompt for p in task.heldout(2)], device)
    probe = torch.randint(5, 40, (2, 8), device=device)
    pm = torch.ones_like(probe)
    w0 = snapshot(model)
    with outer_region(device, compute_dtype):
        with torch.no_grad(), trainer.autocast():
            lp0 = completion_logps(model, pids, pmask, probe, pm)
        try:
            trainer.train(progress=False)
        except Exception as err:  # the trainer refusing the injected outer region also counts as a catch
            return {"check": f"weights-move/{compute_dtype}", "ok": False, "detail": f"{type(err).__name__}: {err}"}
        with torch.no_grad(), trainer.autocast():
            lp1 = completion_logps(model, pids, pmask, probe, pm)
    moved, out_moved = max_change(model, w0), (lp1 - lp0).abs().max().item()
    ok = moved > 0 and out_moved > 0
    return {
        "check": f"weights-move/{compute_dtype}",
        "ok": ok,
        "weight_change": moved,
        "logp_change": out_moved,
        "detail": f"max |dw| {moved:.2e}, max |d logp| on a fixed probe {out_moved:.2e}"
        + ("" if ok else "  <- the model computes with stale weights"),
    }


def _weights_model(smoke: bool, device: torch.device):
    """SmolLM2-135M-Instruct from its offline package on a GPU when installed (a real model), else a random one."""
    if not smoke:
        from grpo_lab.models import load_smollm2, smollm2_available

        if smollm2_available():
            model, tok = load_smollm2(device=device, progress=False)
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            return model, tok
    return build_model("smollm2", smoke, device)


def memory_cap(gib: float | None, device: torch.device) -> None:
    """Cap this process's CUDA allocator at ``gib`` GiB (None: no cap) and reset the peak counters."""
    if device.type != "cuda":
        return
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, gib * GiB / total) if gib else 1.0, device)
    torch.cuda.reset_peak_memory_stats(device)


def check_preset(name: str, smoke: bool, device: torch.device, cap_gib: float | None) -> dict:
    """Two optimizer steps of preset ``name`` exactly as ``jobs.train_preset`` runs it (its backend, machine
    settings and shapes; toy shapes and fp32 on the CPU) on a random model of its architecture."""
    from grpo_lab.jobs import train_preset
    from grpo_lab.models import apply_lora
    from grpo_lab.models.devices import TORCH_DTYPES

    p = get_preset(name)
    rt = p.runtime
    if rt.get("use_peft"):
        try:
            import peft  # noqa: F401
        except ImportError:
            return {
                "check": f"preset/{name}",
                "ok": smoke,
                "skipped": True,
                "detail": "peft is not installed (pip install peft)" + (": skipped in the smoke run" if smoke else ""),
            }
    p.grpo.update(max_steps=2, save_steps=0)
    if smoke:
        p.grpo.update(per_device_train_batch_size=8, max_completion_length=8)
        rt.update(compute_dtype="fp32", dtype="fp32", prompt_length=16)
    est = plan.estimate(p, device=None if not smoke else "cpu")
    memory_cap(cap_gib, device)
    t0 = time.perf_counter()
    try:
        model, tok = build_model(p.model, smoke, device, getattr(torch, TORCH_DTYPES[rt.get("dtype", "fp32")]))
        if rt.get("gradient_checkpointing") and device.type == "cuda":
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        if rt.get("use_peft"):
            model = apply_lora(model, rt)
        w0 = snapshot(model)
        task = ShapeTask(int(rt.get("prompt_length", 160)))
        with tempfile.TemporaryDirectory() as out, outer_region(device, rt.get("compute_dtype", "fp32")):
            train_preset(model, tok, p, out, task=task, backend=p.backend, progress=False)
        moved = max_change(model, w0)
    except torch.cuda.OutOfMemoryError as err:
        return {
            "check": f"preset/{name}",
            "ok": False,
            "estimate_gib": est.peak_gib,
            "detail": f"out of memory under a {cap_gib} GiB cap ({str(err).splitlines()[0][:120]})",
        }
    except Exception as err:
        return {"check": f"preset/{name}", "ok": False, "detail": f"{type(err).__name__}: {str(err)[:300]}"}
    res = {
        "check": f"preset/{name}",
        "ok": moved > 0,
        "backend": p.backend,
        "seconds": time.perf_counter() - t0,
        "weight_change": moved,
        "estimate_gib": est.peak_gib,
        "cap_gib": cap_gib,
        "completions": p.grpo["per_device_train_batch_size"],
        "completion_length": p.grpo["max_completion_length"],
    }
    detail = f"{p.backend}, {res['completions']} x {res['completion_length']} tokens, max |dw| {moved:.2e}"
    if device.type == "cuda":
        res["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / GiB
        res["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / GiB
        detail += (
            f"; peak allocated {res['peak_allocated_gib']:.2f} GiB, reserved {res['peak_reserved_gib']:.2f} GiB "
            f"[plan.py estimate {est.peak_gib:.2f} GiB]"
        )
    res["detail"] = detail + ("" if moved > 0 else "  <- the weights did not move")
    del model
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="toy shapes on the CPU (what the test suite runs)")
    ap.add_argument("--t4-cap-gib", type=float, default=14.5, help="allocator cap for the T4 presets")
    ap.add_argument("--big-cap-gib", type=float, default=39.5, help="allocator cap for the 40-80 GB presets")
    ap.add_argument("--skip-big", action="store_true", help="only the T4 presets")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    device = torch.device("cpu") if args.cpu_smoke or not torch.cuda.is_available() else torch.device("cuda")
    if device.type == "cpu" and not args.cpu_smoke:
        print("no CUDA device: running the reduced --cpu-smoke mode instead")
        args.cpu_smoke = True
    if device.type == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(
        f"gpu_check on {name} (torch {torch.__version__}){' [smoke: toy shapes]' if args.cpu_smoke else ''}"
        f"{' [INJECTED: stale weights]' if stale_weights_injected() else ''}"
    )
    dtypes = ["fp16"] + (["bf16"] if device.type == "cpu" or torch.cuda.get_device_capability(device)[0] >= 8 else [])
    results = [check_weights_move(d, args.cpu_smoke, device) for d in dtypes]
    presets = [(n, args.t4_cap_gib) for n in T4_PRESETS] + (
        [] if args.skip_big else [(n, args.big_cap_gib) for n in BIG_PRESETS]
    )
    if args.cpu_smoke:
        presets = presets[:2]  # the same code paths; the big presets differ only in shapes
    results += [check_preset(n, args.cpu_smoke, device, None if args.cpu_smoke else cap) for n, cap in presets]
    for r in results:
        print(f"{'PASS' if r['ok'] else 'FAIL'}  {r['check']:<40} {r['detail']}")
    failed = [r["check"] for r in results if not r["ok"]]
    print(
        f"{len(results) - len(failed)}/{len(results)} checks passed"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"device_name": name, "smoke": args.cpu_smoke, "checks": results}, indent=1)
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
