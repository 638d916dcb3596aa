"""``weights-move/<dtype>``: two steps of the from-scratch trainer in ``dtype`` change the weights AND what the model
computes afterwards (log-probs of a fixed probe). The second half is what catches stale weights: autocast caches the
low-precision copy of each weight until its outermost region exits, so a loop inside one long-lived region keeps
computing with the first step's weights while the fp32 weights move (``stale-weights`` re-creates it).

fp16: a fresh ``torch.amp.GradScaler`` starts at a loss scale of 2**16 and skips every step whose gradients overflow,
halving the scale each time, so two steps could both be skipped and the weights stay put for a reason that is no
bug. The check starts its scaler at 2**10 instead (the updates it guards are the same) and runs four steps."""

from __future__ import annotations

import time

import torch

from benchmarks.gpucheck.common import FAIL, PASS, Row, max_change, outer_region, snapshot
from benchmarks.gpucheck.learning import Setup
from benchmarks.gpucheck.shapes import ShapeTask


def weights_move_row(setup: Setup, compute_dtype: str) -> Row:
    """The check of the module docstring on a fresh copy of the learning setup's model."""
    from grpo_lab.rollout import completion_logps, encode_prompts
    from grpo_lab.trainer import GRPOConfig, GRPOTrainer, task_reward

    name, device, t0 = f"weights-move/{compute_dtype}", setup.device, time.perf_counter()
    model, tok = setup.fresh(), setup.tok
    task = ShapeTask(12)
    cfg = GRPOConfig(
        learning_rate=1e-3 if setup.smoke else 1e-4,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=8,
        max_steps=4,
        compute_dtype=compute_dtype,
        seed=0,
    )
    trainer = GRPOTrainer(
        model, [task_reward(task)], args=cfg, train_dataset=task.train(64, seed=1), processing_class=tok
    )
    if trainer.scaler is not None:  # a sane first loss scale (module docstring)
        trainer.scaler = torch.amp.GradScaler(device.type, init_scale=2.0**10)
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
            return Row(name, FAIL, f"{type(err).__name__}: {str(err)[:300]}", time.perf_counter() - t0)
        with torch.no_grad(), trainer.autocast():
            lp1 = completion_logps(model, pids, pmask, probe, pm)
    moved, out_moved = max_change(model, w0), (lp1 - lp0).abs().max().item()
    ok = moved > 0 and out_moved > 0
    detail = f"max |dw| {moved:.2e}, max |d logp| on a fixed probe {out_moved:.2e}"
    if trainer.scaler is not None:
        skipped = sum(r.get("amp_skipped_steps", 0) for r in trainer.state.log_history)
        detail += f"; loss scaler skipped {skipped} of {cfg.max_steps} steps"
    return Row(
        name,
        PASS if ok else FAIL,
        detail + ("" if ok else "  <- the model computes with stale weights"),
        time.perf_counter() - t0,
        {"weight_change": moved, "logp_change": out_moved},
    )
