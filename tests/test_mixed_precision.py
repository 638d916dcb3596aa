"""Mixed precision that trains: every forward sees the latest update (bf16), fp16 runs with a loss scaler.

The bug these tests pin down: ``torch.autocast`` caches the low-precision copy of each weight until the
outermost autocast region exits. One region around a whole training run therefore keeps every forward
after the first optimizer step on the first step's weights. The trainer opens one region per forward.
"""

import contextlib

import pytest
import torch

import grpo_lab.trainer as trainer_mod
from grpo_lab import models
from grpo_lab.models import build_tiny_model
from grpo_lab.rollout import completion_logps
from grpo_lab.tasks import AdditionTask
from grpo_lab.trainer import ConfigError, GRPOConfig, GRPOTrainer


def length(prompts, completions, **kwargs):
    """Varies within almost every group of a random model, so every step updates the weights."""
    return [float(len(c)) for c in completions]


def _trainer(compute_dtype, steps=3, lr=3e-2, seed=0):
    model, tok = build_tiny_model("nano", seed=seed)
    cfg = GRPOConfig(
        learning_rate=lr,
        num_generations=4,
        per_device_train_batch_size=16,
        max_completion_length=6,
        max_steps=steps,
        seed=seed,
        compute_dtype=compute_dtype,
    )
    return GRPOTrainer(
        model, [length], args=cfg, train_dataset=AdditionTask().train(64, seed=seed), processing_class=tok
    )


def check_updates_reach_every_forward(tr, forward_ctx, run, monkeypatch) -> None:
    """Train ``tr`` with ``run()``; after every step, a forward under ``forward_ctx()`` must match an fp32
    forward of the current weights, and the next rollout's log-probs must be those of the current weights.

    Written against the callables so that the same check can be pointed at a run wrapped in one outer
    autocast region (the old ``jobs.run_grpo``), where it fails.
    """
    rollouts, snaps, probes = [], [], []
    real = trainer_mod.sample_groups

    def spy(*a, **k):
        rollouts.append(real(*a, **k))
        return rollouts[-1]

    monkeypatch.setattr(trainer_mod, "sample_groups", spy)
    probe = torch.arange(3, 40)[None]

    def after_step(rec):
        snaps.append({k: v.detach().clone() for k, v in tr.model.state_dict().items()})
        with torch.no_grad():
            with forward_ctx():
                low = tr.model(probe).logits.float()
            with torch.autocast("cpu", enabled=False):
                full = tr.model(probe).logits.float()
        probes.append((low, full))

    tr.callbacks.append(after_step)
    start = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
    run()
    assert len(snaps) >= 3
    weights = [start, *snaps]
    for k in range(1, len(weights)):  # parameters change step to step
        assert any(not torch.equal(weights[k][n], weights[k - 1][n]) for n in start), f"step {k} changed nothing"
    for k in range(1, len(probes)):
        (low, full), (_, prev_full) = probes[k], probes[k - 1]
        moved = (full - prev_full).abs().max()
        # bf16 rounding stays well below what one update moves: a stale cast would sit on the old weights
        assert (low - full).abs().max() < moved / 4, (k, float((low - full).abs().max()), float(moved))
    ref = build_tiny_model("nano")[0].eval()
    for k in range(1, len(rollouts)):  # rollout k ran on the weights after step k (index k in `weights`)
        r = rollouts[k]
        m = r.completion_mask.float()
        gaps = []
        for w in (weights[k], weights[k - 1]):
            ref.load_state_dict(w)
            with torch.no_grad():
                lp = completion_logps(ref, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask)
            gaps.append(float(((lp - r.logps).abs() * m).sum() / m.sum()))
        assert gaps[0] < gaps[1] / 3, (k, gaps)


def test_bf16_every_forward_sees_the_latest_update(monkeypatch):
    tr = _trainer("bf16")
    check_updates_reach_every_forward(tr, tr.autocast, lambda: tr.train(progress=False), monkeypatch)


def test_an_outer_autocast_region_is_refused():
    tr = _trainer("fp32", steps=1)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(ConfigError, match="compute_dtype"):
        tr.step()


def _cpu_grad_scaler_or_skip():
    try:
        torch.amp.GradScaler("cpu")
    except (AttributeError, TypeError, RuntimeError) as e:
        pytest.skip(f"this torch has no CPU GradScaler ({e}); fp16 is checked on a GPU only")


def test_fp16_trains_on_cpu_with_a_grad_scaler(tmp_path):
    _cpu_grad_scaler_or_skip()
    tr = _trainer("fp16", steps=4, lr=1e-2)
    assert isinstance(tr.scaler, torch.amp.GradScaler)
    before = [p.detach().clone() for p in tr.model.parameters()]
    tr.train(progress=False)
    hist = tr.history
    assert all({"amp_scale", "amp_skipped_steps"} <= set(r) for r in hist)
    assert all(r["amp_scale"] > 0 and r["amp_skipped_steps"] in (0, 1) for r in hist)
    assert sum(r["amp_skipped_steps"] for r in hist) < len(hist)  # at least one update went through ...
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))  # ... and moved the weights
    # the scaler's state travels with a checkpoint (exact resume)
    ck = tr.save_checkpoint(tmp_path)
    assert ck.name == "checkpoint-4" and (ck / "scaler.pt").is_file()
    again = _trainer("fp16", steps=4, lr=1e-2)
    again.load_checkpoint(ck)
    assert again.scaler.get_scale() == tr.scaler.get_scale()


@pytest.mark.parametrize(
    "knobs,match",
    [
        (dict(compute_dtype="fp8"), "compute_dtype"),
        (dict(bf16=True), "compute_dtype='bf16'"),
        (dict(fp16=True), "compute_dtype"),
    ],
)
def test_precision_settings_are_checked(knobs, match):
    with pytest.raises(ConfigError, match=match):
        cfg = GRPOConfig.from_dict({"num_generations": 4, "per_device_train_batch_size": 8, **knobs})
        model, tok = build_tiny_model("nano")
        GRPOTrainer(model, [length], args=cfg, train_dataset=AdditionTask().train(8), processing_class=tok)


def test_bf16_needs_compute_capability_8_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # says yes on a T4 (emulation)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))  # a T4
    assert not models.bf16_supported("cuda")
    assert "fp16" in models.compute_dtype_problem("cuda", "bf16")
    assert models.compute_dtype_problem("cuda", "fp16") is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))  # an A100
    assert models.bf16_supported("cuda") and models.compute_dtype_problem("cuda", "bf16") is None
    assert models.compute_dtype_problem("cpu", "bf16") is None  # torch's CPU autocast runs bf16
    assert models.grad_scaler("cpu", "bf16") is None and models.grad_scaler("cpu", "fp32") is None


def test_run_grpo_passes_the_presets_compute_dtype(monkeypatch):
    from grpo_lab import jobs
    from grpo_lab.presets import get_preset

    seen = {}

    class Stop(Exception):
        pass

    def fake_train(self, resume_from_checkpoint=None, progress=True):
        seen["dtype"], seen["autocast"] = self.cfg.compute_dtype, torch.is_autocast_enabled("cpu")
        raise Stop

    monkeypatch.setattr(GRPOTrainer, "train", fake_train)
    preset = get_preset("cpu-tiny-gsm8k")
    preset.task, preset.grpo["eval_steps"] = "addition", 0
    preset.runtime["compute_dtype"] = "bf16"
    model, tok = build_tiny_model("nano")
    with contextlib.suppress(Stop):
        jobs.run_grpo(model, tok, preset, None, progress=False)
    assert seen == {"dtype": "bf16", "autocast": False}  # no whole-run autocast region any more
