"""The from-scratch GRPO trainer: it learns, it refuses bad configs, and it resumes exactly."""

import json
import math
import warnings

import pytest
import torch

from grpo_lab.models import build_tiny_model
from grpo_lab.tasks import AdditionTask
from grpo_lab.trainer import (
    ConfigError,
    GRPOConfig,
    GRPOTrainer,
    check_reward_signature,
    latest_checkpoint,
    task_reward,
)


def sevens(prompts, completions, **kwargs):
    """Share of '7' characters: a dense reward a random model can climb."""
    return [c.count("7") / max(len(c), 1) for c in completions]


def length(prompts, completions, **kwargs):
    """Varies within almost every group of a random model, so every step has a gradient."""
    return [float(len(c)) for c in completions]


def _trainer(cfg, seed=0, reward=sevens):
    torch.manual_seed(seed)
    model, tok = build_tiny_model("nano", seed=seed)
    task = AdditionTask()
    return GRPOTrainer(
        model,
        [reward],
        args=cfg,
        train_dataset=task.train(200, seed=seed),
        eval_dataset=task.heldout(20),
        processing_class=tok,
        task=task,
    )


def test_grpo_raises_the_reward_of_a_random_model():
    cfg = GRPOConfig(
        learning_rate=3e-3,
        num_generations=8,
        per_device_train_batch_size=64,
        max_completion_length=4,
        max_steps=40,
        temperature=1.0,
        seed=0,
        eval_steps=20,
        eval_size=20,
    )
    tr = _trainer(cfg)
    first = tr.step()["reward"]
    tr.train(progress=False)
    last = sum(r["reward"] for r in tr.history[-5:]) / 5
    assert first < 0.1 and last > first + 0.3, (first, last)
    keys = {
        "reward",
        "reward_std",
        "frac_reward_zero_std",
        "entropy",
        "clip_ratio/low_mean",
        "clip_ratio/high_mean",
        "completion_length",
        "truncated_share",
        "learning_rate",
        "step_time",
        "grad_norm",
        "eval_accuracy",
    }
    assert keys <= set(tr.history[-1]), keys - set(tr.history[-1])


def test_beta_and_multiple_iterations_report_kl_and_clipping():
    cfg = GRPOConfig(
        learning_rate=3e-3,
        num_generations=4,
        per_device_train_batch_size=16,
        max_completion_length=4,
        max_steps=3,
        beta=0.04,
        num_iterations=3,
        seed=1,
    )
    tr = _trainer(cfg, reward=length)
    tr.train(progress=False)
    last = tr.history[-1]
    assert last["kl"] > 0  # the policy moved away from the frozen reference
    # three updates on one rollout at a high learning rate push ratios out of [1 - eps, 1 + eps]
    assert any(r["clip_ratio/region_mean"] > 0 for r in tr.history)
    assert tr.ref_model is not None and all(not p.requires_grad for p in tr.ref_model.parameters())


def test_dynamic_sampling_skips_groups_without_signal():
    def constant(prompts, completions, **kwargs):
        return [1.0] * len(completions)

    cfg = GRPOConfig(
        num_generations=4,
        per_device_train_batch_size=16,
        max_completion_length=3,
        max_steps=4,
        dynamic_sampling=True,
        lr_scheduler_type="linear",
    )
    tr = _trainer(cfg, reward=constant)
    before = [p.detach().clone() for p in tr.model.parameters()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = tr.step()
    assert rec["frac_reward_zero_std"] == 1.0 and rec["kept_share"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))
    # the skipped step still advanced the schedule (lr is a function of the step), without torch's warning
    assert rec["learning_rate"] == pytest.approx(cfg.learning_rate * 3 / 4)
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]


@pytest.mark.parametrize(
    "kind,warmup,factors",
    [
        ("constant", 0, [1, 1, 1, 1]),
        ("constant", 2, [0, 0.5, 1, 1]),  # HF's warmup starts at lr 0 on the first step
        ("linear", 1, [0, 1, 2 / 3, 1 / 3]),
        ("cosine", 0, [1, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))]),
    ],
)
def test_learning_rate_follows_the_transformers_schedule(kind, warmup, factors):
    cfg = GRPOConfig(
        learning_rate=1e-3,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=2,
        max_steps=4,
        lr_scheduler_type=kind,
        warmup_steps=warmup,
    )
    tr = _trainer(cfg, reward=length)
    used = []
    for _ in range(4):
        used.append(tr.opt.param_groups[0]["lr"])
        tr.step()
    assert used == pytest.approx([1e-3 * f for f in factors])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_generations=1), "num_generations"),
        (dict(num_generations=8, per_device_train_batch_size=12), "divisible|multiple"),
        (dict(loss_type="ppo"), "loss_type"),
        (dict(compute_dtype="float16"), "compute_dtype"),
        (dict(temperature=0.0), "temperature"),
    ],
)
def test_bad_configs_fail_before_training(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        _trainer(GRPOConfig(**{"per_device_train_batch_size": 16, "num_generations": 4, **kwargs}))


def test_reward_signature_is_checked():
    def no_kwargs(prompts, completions):
        return [0.0]

    def wrong_names(a, b, **kwargs):
        return [0.0]

    for bad, match in [(no_kwargs, r"\*\*kwargs"), (wrong_names, "prompts"), ("nope", "callable")]:
        with pytest.raises(ConfigError, match=match):
            check_reward_signature(bad)
    check_reward_signature(task_reward(AdditionTask()))
    with pytest.raises(ConfigError, match="unknown GRPO setting"):
        GRPOConfig.from_dict({"learning_rate": 1e-4, "num_generation": 8})


def test_interrupted_run_resumes_to_identical_parameters(tmp_path):
    base = dict(
        learning_rate=3e-3,
        num_generations=4,
        per_device_train_batch_size=16,
        max_completion_length=4,
        max_steps=6,
        num_iterations=2,
        seed=3,
        lr_scheduler_type="cosine",
        warmup_steps=2,
    )
    full = _trainer(GRPOConfig(**base))
    full.train(progress=False)

    part = _trainer(GRPOConfig(**base, save_steps=3, output_dir=str(tmp_path)))
    for _ in range(4):  # step 4 runs past the checkpoint and is lost in the "crash"
        part.step()
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.name == "checkpoint-3"
    # Hugging Face's layout: a from_pretrained folder plus the trainer's files
    for name in ("config.json", "model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        assert (ckpt / name).is_file(), name
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and [r["step"] for r in state["log_history"]] == [1, 2, 3]
    (tmp_path / "tmp-checkpoint-9").mkdir()  # what a process killed mid-save leaves: ignored, then cleaned

    resumed = _trainer(GRPOConfig(**base, save_steps=3, output_dir=str(tmp_path)))
    resumed.train(resume_from_checkpoint=True, progress=False)
    assert resumed.step_idx == full.step_idx == 6 and resumed.state.global_step == 6
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert [r["reward"] for r in resumed.history] == [r["reward"] for r in full.history]
    assert resumed.history is resumed.state.log_history
    assert latest_checkpoint(tmp_path).name == "checkpoint-6" and not (tmp_path / "tmp-checkpoint-9").exists()

    again = _trainer(GRPOConfig(**base))  # an explicit checkpoint folder resumes the same way
    again.train(resume_from_checkpoint=str(ckpt), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(full.model.parameters(), again.model.parameters()))
    loaded = type(full.model).from_pretrained(tmp_path / "checkpoint-6")  # the weights load with from_pretrained
    assert all(torch.equal(a, b) for a, b in zip(full.model.parameters(), loaded.parameters()))


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    tr = _trainer(GRPOConfig(num_generations=4, per_device_train_batch_size=8, max_steps=1, output_dir=str(tmp_path)))
    (tmp_path / "tmp-checkpoint-1").mkdir()  # an incomplete save is not a checkpoint
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        tr.train(resume_from_checkpoint=True, progress=False)


def test_old_logps_come_from_a_policy_forward_not_from_decoding(monkeypatch):
    """With num_iterations > 1 the ratio's denominator is the policy's own forward before the first update
    (as TRL recomputes ``old_per_token_logps``), so the decoding-time log-probs do not enter the update."""
    import grpo_lab.trainer as trainer_mod

    cfg = GRPOConfig(
        learning_rate=3e-3,
        num_generations=4,
        per_device_train_batch_size=16,
        max_completion_length=4,
        max_steps=2,
        num_iterations=3,
        seed=2,
    )
    plain = _trainer(cfg, reward=length)
    plain.train(progress=False)
    real = trainer_mod.sample_groups

    def noisy_decoding(*a, **k):  # as if decoding had run in a much lower precision
        r = real(*a, **k)
        r.logps = r.logps + 0.5 * torch.randn(r.logps.shape, generator=torch.Generator().manual_seed(0))
        return r

    monkeypatch.setattr(trainer_mod, "sample_groups", noisy_decoding)
    noisy = _trainer(cfg, reward=length)
    noisy.train(progress=False)
    for a, b in zip(plain.model.parameters(), noisy.model.parameters()):
        assert torch.equal(a, b)


def test_plain_rollout_path_trains_like_the_fast_one(monkeypatch):
    """``fast_rollout=False`` (the reading path of ``rollout``) samples the same completions and computes
    the same loss to float rounding: the switch changes speed, not the run."""
    cfg = dict(
        learning_rate=3e-3,
        num_generations=4,
        per_device_train_batch_size=16,
        max_completion_length=6,
        max_steps=3,
        temperature=1.0,
        seed=0,
        eval_steps=0,
    )
    from grpo_lab import rollout_fast

    calls = []
    for name in ("generate", "completion_logps"):
        real = getattr(rollout_fast, name)
        monkeypatch.setattr(rollout_fast, name, lambda *a, _f=real, _n=name, **k: calls.append(_n) or _f(*a, **k))
    runs, used = {}, {}
    for fast in (True, False):
        calls.clear()
        tr = _trainer(GRPOConfig(**cfg, fast_rollout=fast), reward=length)
        runs[fast] = [tr.step() for _ in range(3)]
        used[fast] = set(calls)
    assert used == {True: {"generate", "completion_logps"}, False: set()}, used
    for a, b in zip(runs[True], runs[False]):
        assert a["reward"] == b["reward"] and a["completion_length"] == b["completion_length"]
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-4, abs_tol=1e-6), (a["loss"], b["loss"])


@pytest.mark.parametrize("loss_type", ["dapo", "bnpo", "grpo", "dr_grpo"])
def test_micro_batches_add_up_to_the_whole_batch_update(loss_type):
    """``micro_batch_size``: the update runs over slices of whole groups, each cut to its own longest completion,
    and the accumulated gradient (so the parameters after the step, the loss and the clip metrics) equals the
    whole batch's to float rounding, for every loss_type; a size that splits a group is refused."""
    cfg = dict(
        learning_rate=3e-3,
        num_generations=4,
        per_device_train_batch_size=16,
        max_completion_length=6,
        max_steps=2,
        temperature=1.0,
        seed=0,
        eval_steps=0,
        loss_type=loss_type,
        beta=0.04,
        num_iterations=2,
    )
    runs, params = {}, {}
    for mb in (None, 4, 8):
        tr = _trainer(GRPOConfig(**cfg, micro_batch_size=mb), reward=length)
        runs[mb] = [tr.step() for _ in range(2)]
        params[mb] = torch.cat([p.detach().flatten() for p in tr.model.parameters()])
    whole = params[None]
    for mb in (4, 8):
        assert (params[mb] - whole).abs().max() < 1e-5, (mb, (params[mb] - whole).abs().max())
        for a, b in zip(runs[None], runs[mb]):
            assert math.isclose(a["loss"], b["loss"], rel_tol=1e-4, abs_tol=1e-6), (a["loss"], b["loss"])
            assert math.isclose(a["grad_norm"], b["grad_norm"], rel_tol=1e-4, abs_tol=1e-6)
    assert not torch.equal(
        whole, torch.cat([p.detach().flatten() for p in _trainer(GRPOConfig(**cfg)).model.parameters()])
    )
    with pytest.raises(ConfigError, match="micro_batch_size=6"):
        _trainer(GRPOConfig(**cfg, micro_batch_size=6))
