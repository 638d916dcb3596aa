"""A run that cannot learn stops, in both backends: a loss non-finite for several steps in a row, or fp16's loss
scaler skipping most updates, ends the run with ``TrainingDivergedError`` naming the fixes (``loop.NonFiniteGuard``),
and the non-finite updates are not applied, so the weights stay finite."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from grpo_lab.errors import TrainingDivergedError
from grpo_lab.loop import NonFiniteGuard, NonFiniteStopCallback
from grpo_lab.models import build_tiny_model
from grpo_lab.tasks import AdditionTask
from grpo_lab.trainer import GRPOConfig, GRPOTrainer

FIXES = r"bf16.*learning_rate.*t4-qwen2\.5-0\.5b-gsm8k-lora"


def ones(prompts, completions, **kwargs):
    return [1.0] * len(completions)


def test_from_scratch_trainer_stops_on_a_nan_loss_and_keeps_its_weights():
    torch.manual_seed(0)
    model, tok = build_tiny_model("nano", seed=0)
    task = AdditionTask()
    cfg = GRPOConfig(
        learning_rate=1e-3,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=4,
        max_steps=6,
        seed=0,
    )
    tr = GRPOTrainer(model, [ones], args=cfg, train_dataset=task.train(50, seed=0), processing_class=tok)
    real = tr._terms  # the injected fault: every loss (and so every gradient) NaN, as an fp16 overflow makes it
    tr._terms = lambda *a, **k: dataclasses.replace(t := real(*a, **k), loss=t.loss * float("nan"))
    with pytest.raises(TrainingDivergedError, match=FIXES):
        tr.train(progress=False)
    assert tr.step_idx == tr.guard.patience  # stopped after exactly `patience` NaN steps, not at max_steps
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN updates were not applied


@pytest.mark.full
def test_trl_run_stops_on_a_nan_loss_and_keeps_its_weights(tmp_path, monkeypatch):
    pytest.importorskip("trl")
    from trl.trainer.grpo_trainer import GRPOTrainer as TRLTrainer

    from grpo_lab.presets import get_preset
    from grpo_lab.trl_backend import train_with_trl

    real = TRLTrainer._compute_loss
    monkeypatch.setattr(TRLTrainer, "_compute_loss", lambda self, m, i: real(self, m, i) * float("nan"))
    p = get_preset("cpu-addition")
    p.grpo.update(max_steps=6, per_device_train_batch_size=8, num_generations=4, eval_steps=0)
    torch.manual_seed(0)
    model, tok = build_tiny_model("nano", seed=0)
    with pytest.raises(TrainingDivergedError, match=FIXES):
        train_with_trl(model, tok, p, tmp_path, progress=False)
    assert all(torch.isfinite(q).all() for q in model.parameters())


def test_guard_judges_the_scaler_only_over_a_full_window():
    g = NonFiniteGuard(patience=3, window=10, max_skip_share=0.5)
    for _ in range(4):  # a fresh fp16 scaler halving its scale at the start: skipped, finite loss
        g.observe(0.1, skipped=1)
    for _ in range(6):
        g.observe(0.1, skipped=0)
    g.observe(float("nan"))
    g.observe(float("inf"))
    g.observe(0.2)  # two non-finite steps, then a finite one: the streak restarts
    g.observe(float("nan"))
    g.observe(float("nan"))
    with pytest.raises(TrainingDivergedError, match="non-finite"):
        g.observe(float("nan"))
    g = NonFiniteGuard(patience=3, window=10, max_skip_share=0.5)
    with pytest.raises(TrainingDivergedError, match="skipped 6 of the last 10"):
        for _ in range(10):
            g.observe(0.1, skipped=1 if len(g.skips) % 5 < 3 else 0)


def test_trl_callback_counts_fp16_skips_and_drops_nonfinite_gradients():
    cb = NonFiniteStopCallback(fp16=True, guard=NonFiniteGuard(window=4))
    log = {"loss": 0.1, "reward": 0.5}
    with pytest.raises(TrainingDivergedError, match="scaler skipped 4 of the last 4"):
        for _ in range(4):  # accelerate's AcceleratedOptimizer.step_was_skipped, as HF Trainer leaves it
            cb.on_optimizer_step(None, None, None, optimizer=SimpleNamespace(step_was_skipped=True))
            cb.on_log(None, None, None, logs=log)
    cb = NonFiniteStopCallback(fp16=False)
    model = torch.nn.Linear(2, 2)
    model.weight.grad = torch.tensor([[1.0, float("nan")], [0.0, 0.0]])
    model.bias.grad = torch.zeros(2)
    cb.on_pre_optimizer_step(None, None, None, model=model)
    assert model.weight.grad is None and model.bias.grad is None  # AdamW skips them: the weights stay finite
    cb.on_log(None, None, None, logs={"train_runtime": 1.0})  # the end-of-training summary is not a step
    cb.on_log(None, None, None, logs=log)
    assert cb.guard.skips == [1]
