"""The body of ``benchmarks/gpu_check.sh``: measured rollout tokens/s, seconds per GRPO step and peak memory at
a preset's shapes on a randomly initialised model with the Qwen2.5-0.5B architecture (built from
``plan.KNOWN_ARCHS``, no download), then the tiny pipeline's accuracy gain and wall time.

Measured, not estimated; the plan.py estimate for the same shapes is printed next to each number. A random
model rarely emits EOS, so every completion runs to ``max_completion_length``: the worst case for time and
memory. ``--cpu-smoke`` shrinks everything (a 2-layer model, 4 completions of 8 tokens, 2 GRPO steps of the
tiny pipeline) so that CI can run the same code on a CPU in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from grpo_lab import grpo, plan  # noqa: E402
from grpo_lab.presets import PRESETS, get_preset, register  # noqa: E402
from grpo_lab.rollout import completion_logps, generate  # noqa: E402


def bench_shapes(preset_name: str, smoke: bool, device: torch.device, steps: int = 2) -> dict:
    """Rollout + GRPO update at the preset's shapes on a random model of its architecture; returns measurements."""
    p = get_preset(preset_name)
    rt = p.runtime
    arch = plan.architecture(p.model)
    B, T, Lp = p.grpo["per_device_train_batch_size"], p.grpo["max_completion_length"], rt.get("prompt_length", 160)
    if smoke:  # same code, toy sizes
        arch.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16, vocab_size=1000)
        B, T, Lp = 4, 8, 16
    cfg = plan.hf_config(arch, max_position_embeddings=4096, attention_dropout=0.0)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).to(device)  # fp32 master weights
    amp = device.type == "cuda" and rt.get("compute_dtype") in ("fp16", "bf16")
    dtype = torch.float16 if rt.get("compute_dtype") == "fp16" else torch.bfloat16
    ctx = (lambda: torch.autocast("cuda", dtype=dtype)) if amp else contextlib.nullcontext
    if rt.get("gradient_checkpointing") and device.type == "cuda":
        model.gradient_checkpointing_enable()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    ids = torch.randint(10, arch["vocab_size"], (B, Lp), device=device)
    mask = torch.ones_like(ids)
    eos = arch["vocab_size"] - 1
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    gen_s, upd_s = [], []
    for _ in range(steps + 1):  # the first step warms up kernels and the allocator: not timed
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sync(); t0 = time.perf_counter()
        model.eval()
        with ctx():
            c_ids, c_mask, old, _ = generate(model, ids, mask, max_completion_length=T, eos_token_id=eos,
                                             pad_token_id=0, temperature=1.0)
        sync(); t1 = time.perf_counter()
        model.train()
        adv = torch.randn(B, device=device)
        with ctx():
            lp = completion_logps(model, ids, mask, c_ids, c_mask, 1.0)
            loss = grpo.grpo_loss(lp, lp.detach(), adv, c_mask.float(), loss_type=p.grpo["loss_type"],
                                  epsilon=p.grpo["epsilon"], epsilon_high=p.grpo["epsilon_high"],
                                  max_completion_length=T)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(); t2 = time.perf_counter()
        gen_s.append(t1 - t0); upd_s.append(t2 - t1)
    gen, upd = sum(gen_s[1:]) / steps, sum(upd_s[1:]) / steps
    tokens = int(c_mask.sum())
    est = plan.estimate(p, device="cpu" if device.type == "cpu" else None)
    return {"preset": preset_name, "smoke": smoke, "device": str(device), "params": sum(x.numel() for x in model.parameters()),
            "batch": B, "completion_length": T, "prompt_length": Lp,
            "rollout_tokens_per_s": tokens / gen, "rollout_s": gen, "update_s": upd, "grpo_step_s": gen + upd,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            "estimate_step_s": None if smoke else est.step_seconds, "estimate_peak_gib": None if smoke else est.peak_gib}


def bench_tiny_pipeline(smoke: bool) -> dict:
    """``jobs.run_demo`` (SFT warm start then GRPO on 2-digit addition): accuracy before/after and wall time."""
    from grpo_lab.jobs import run_demo

    name = "cpu-addition"
    if smoke:
        p = get_preset("cpu-addition")
        p.name = "cpu-addition-smoke"
        p.sft.update(max_steps=3, eval_every=3, val_size=16)
        p.grpo.update(max_steps=2, per_device_train_batch_size=16, eval_steps=0, eval_size=16)
        p.eval_size = 16
        register(p)
        name = p.name
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        rep = run_demo(d, name, progress=False)
    return {"pipeline": name, "accuracy_before": rep["accuracy_before"], "accuracy_after": rep["accuracy_after"],
            "gain": rep["accuracy_after"] - rep["accuracy_before"], "wall_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="reduced shapes on the CPU (CI)")
    ap.add_argument("--preset", default="t4-qwen2.5-0.5b-gsm8k")
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    if args.preset not in PRESETS:
        ap.error(f"unknown preset {args.preset}")
    device = torch.device("cpu") if args.cpu_smoke or not torch.cuda.is_available() else torch.device("cuda")
    if device.type == "cpu" and not args.cpu_smoke:
        print("no CUDA device: running the reduced --cpu-smoke mode instead")
        args.cpu_smoke = True
    torch.set_num_threads(2) if device.type == "cpu" else None
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(f"gpu_check on {name} (torch {torch.__version__}); all numbers below are MEASURED unless labelled estimate")
    res = {"device_name": name, "shapes": bench_shapes(args.preset, args.cpu_smoke, device)}
    s = res["shapes"]
    print(f"[shapes] {s['preset']}{' (smoke: toy sizes)' if s['smoke'] else ''}: {s['params'] / 1e6:.1f}M params, "
          f"{s['batch']} completions x {s['completion_length']} tokens after {s['prompt_length']} prompt tokens")
    print(f"  rollout tokens/s      {s['rollout_tokens_per_s']:.0f}")
    print(f"  seconds per GRPO step {s['grpo_step_s']:.3f}  (rollout {s['rollout_s']:.3f}, update {s['update_s']:.3f})"
          + (f"   [plan.py estimate {s['estimate_step_s']:.2f}]" if s["estimate_step_s"] else ""))
    if s["peak_memory_gib"] is not None:
        print(f"  peak memory           {s['peak_memory_gib']:.2f} GiB   [plan.py estimate {s['estimate_peak_gib']:.2f} GiB]")
    if not args.skip_pipeline:
        res["pipeline"] = bench_tiny_pipeline(args.cpu_smoke)
        q = res["pipeline"]
        print(f"[tiny pipeline] {q['pipeline']}: held-out accuracy {q['accuracy_before']:.3f} -> {q['accuracy_after']:.3f} "
              f"(gain {q['gain']:+.3f}) in {q['wall_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
