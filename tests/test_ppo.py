"""PPO from scratch: GAE and the clipped value loss against hand-computed numbers, the per-token reward, the
memory ledger, and a learning test (PPO raises held-out accuracy from a warm start; the critic learns)."""

import pytest
import torch

from grpo_lab import grpo
from grpo_lab.memory import SavedTensorMeter, training_bytes
from grpo_lab.ppo import (
    ConfigError,
    PPOConfig,
    PPOTrainer,
    ValueModel,
    explained_variance,
    gae,
    masked_whiten,
    per_token_rewards,
    validate_ppo_config,
    value_loss,
)

# One completion of three real tokens and one pad; the score (1) arrives on the last real token.
REWARDS = torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
VALUES = torch.tensor([[0.5, 0.2, 0.4, 9.0]], dtype=torch.float64)  # 9.0 sits on the pad: it must not leak in
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)


def _close(got, want):
    assert torch.allclose(got, torch.tensor([want], dtype=torch.float64), atol=1e-12), (got, want)


def test_gae_with_lambda_one_is_reward_to_go_minus_value():
    adv, ret = gae(REWARDS, VALUES, MASK, gamma=1.0, lam=1.0)
    _close(adv, [1 - 0.5, 1 - 0.2, 1 - 0.4, 0.0])  # reward-to-go is 1 at every token
    _close(ret, [1.0, 1.0, 1.0, 0.0])


def test_gae_with_lambda_zero_is_the_td_residual():
    adv, ret = gae(REWARDS, VALUES, MASK, gamma=1.0, lam=0.0)
    # delta_t = r_t + V_{t+1} - V_t, with V = 0 after the last real token
    _close(adv, [0.2 - 0.5, 0.4 - 0.2, 1.0 - 0.4, 0.0])
    _close(ret, [0.2, 0.4, 1.0, 0.0])  # R = A + V: the one-step bootstrapped target


def test_gae_discounts_and_mixes_by_hand():
    adv, _ = gae(REWARDS, VALUES, MASK, gamma=0.9, lam=0.5)
    d2, d1, d0 = 1.0 - 0.4, 0.9 * 0.4 - 0.2, 0.9 * 0.2 - 0.5
    a2 = d2
    a1 = d1 + 0.45 * a2
    _close(adv, [d0 + 0.45 * a1, a1, a2, 0.0])


def test_value_loss_clips_moves_toward_the_target_but_not_away():
    old, ret, m = torch.zeros(1, 3), torch.ones(1, 3), torch.ones(1, 3)
    # token 0 moved 0.5 toward R=1 (beyond the 0.2 clip); token 1 moved 0.1 (inside); token 2 moved away (-0.5).
    v = torch.tensor([[0.5, 0.1, -0.5]], requires_grad=True)
    loss, clipfrac = value_loss(v, old, ret, m, cliprange_value=0.2)
    # max((V-R)^2, (V_clip-R)^2): 0.8^2 (clipped at 0.2), 0.9^2 (same), 1.5^2 (unclipped is worse)
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.81 + 2.25) / 3)
    assert clipfrac.item() == pytest.approx(1 / 3)
    loss.backward()
    assert v.grad[0, 0] == 0  # the clipped branch is a constant: no gradient past the clip
    assert v.grad[0, 1] == pytest.approx((0.1 - 1) / 3) and v.grad[0, 2] == pytest.approx((-0.5 - 1) / 3)


def test_per_token_rewards_put_the_score_on_the_last_token_and_penalize_kl():
    logps = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, 0.0]])
    ref = torch.tensor([[-1.5, -2.0, -0.5], [-1.0, -3.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    r, kl = per_token_rewards(torch.tensor([1.0, 0.0]), logps, ref, mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, 0.0], [0.0, 2.0, 0.0]]))  # k1: logp - ref
    assert torch.allclose(r, torch.tensor([[-0.05, 0.0, 1.0], [0.0, -0.2, 0.0]]))
    r0, _ = per_token_rewards(torch.tensor([1.0, 0.0]), logps, None, mask, kl_coef=0.1)
    assert torch.equal(r0, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))


def test_whitening_and_explained_variance():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    m = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = masked_whiten(x, m)
    assert torch.allclose(w, torch.tensor([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-6)  # mean 2, std 1 (N-1), pad 0
    assert masked_whiten(x, m, shift_mean=False)[0, :3].mean().item() == pytest.approx(2.0)
    assert explained_variance(x, x, m) == pytest.approx(1.0)
    assert explained_variance(torch.full_like(x, 2.0), x, m) == pytest.approx(0.0)


def test_policy_loss_is_the_clipped_surrogate_with_per_token_advantages():
    """PPO's policy loss is grpo_loss_terms with [B, T] advantages and a token mean: check it by hand."""
    lp = torch.tensor([[0.0, 0.5]])
    old = torch.zeros(1, 2)
    adv = torch.tensor([[1.0, 1.0]])
    loss = grpo.grpo_loss(lp, old, adv, torch.ones(1, 2), epsilon=0.2, loss_type="bnpo")
    assert loss.item() == pytest.approx(-(1.0 + 1.2) / 2)  # ratio e^0.5 = 1.65 is clipped to 1.2


def test_memory_ledger_counts_weights_gradients_and_adam_moments():
    policy, frozen = torch.nn.Linear(10, 10), torch.nn.Linear(10, 10).requires_grad_(False)
    b = training_bytes({"policy": policy}, {"reference": frozen})
    assert b == {"weights": 2 * 110 * 4, "gradients": 110 * 4, "adam": 2 * 110 * 4, "total": 5 * 110 * 4}
    x = torch.randn(64, 10)
    with SavedTensorMeter([policy]) as meter:
        loss = torch.tanh(policy(x)).pow(2).sum()
        held = meter.current
        loss.backward()
    assert held >= 64 * 10 * 4 and meter.peak >= held  # at least tanh's output is kept for backward
    assert meter.current == 0  # backward freed every saved activation


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="multiple of"):
        validate_ppo_config(PPOConfig(num_generations=3, per_device_train_batch_size=8))
    with pytest.raises(ConfigError, match="lam"):
        validate_ppo_config(PPOConfig(lam=1.5))
    with pytest.raises(ConfigError, match="unknown PPO setting"):
        PPOConfig.from_dict({"beta": 0.04})  # a GRPO knob: PPO's is kl_coef


@pytest.fixture(scope="module")
def warm_start():
    """A nano model stopped early in SFT on addition over 0..19: right on some problems, so rewards vary."""
    from grpo_lab.models import build_tiny_model
    from grpo_lab.sft import sft_train
    from grpo_lab.tasks import AdditionTask

    torch.manual_seed(0)
    model, tok = build_tiny_model("nano", seed=0)
    task = AdditionTask(0, 19)
    sft_train(
        model,
        tok,
        task,
        max_steps=600,
        batch_size=64,
        learning_rate=3e-3,
        warmup_steps=10,
        eval_every=25,
        val_size=128,
        target_accuracy=0.3,
        progress=False,
    )
    return model, tok, task


def test_ppo_raises_heldout_accuracy_from_a_warm_start(warm_start):
    from grpo_lab.evaluation import evaluate
    from grpo_lab.trainer import task_reward

    model, tok, task = warm_start
    heldout = task.heldout(300, seed=7)
    before = evaluate(model, tok, task, heldout).accuracy
    cfg = PPOConfig(
        learning_rate=3e-4,
        value_learning_rate=1e-3,
        per_device_train_batch_size=64,
        max_completion_length=4,
        max_steps=30,
        kl_coef=0.0,
        seed=0,
    )
    value = ValueModel.from_policy(model)
    head = value.v_head.weight.detach().clone()
    tr = PPOTrainer(
        model,
        [task_reward(task)],
        args=cfg,
        train_dataset=task.train(2000, seed=1),
        processing_class=tok,
        task=task,
        value_model=value,
    )
    tr.train(progress=False)
    after = evaluate(model, tok, task, heldout).accuracy
    assert after > before + 0.03, (before, after)
    assert not torch.equal(head, value.v_head.weight)  # the critic's head learned
    assert tr.ref_model is None  # kl_coef = 0: no reference model held
    keys = {
        "reward",
        "accuracy",
        "kl",
        "value_loss",
        "policy_loss",
        "explained_variance",
        "clip_fraction",
        "value_clip_fraction",
        "entropy",
        "grad_norm",
        "step_time",
    }
    assert keys <= set(tr.history[-1])
    # The fresh critic says V = 0; by the end its mean prediction has moved toward the mean reward.
    mean_reward = sum(r["reward"] for r in tr.history[-10:]) / 10
    assert tr.history[0]["value_mean"] == 0.0
    # Closer to it than the fresh critic's 0 was (a tighter bound depends on the warm start's exact numbers).
    assert abs(tr.history[-1]["value_mean"] - mean_reward) < mean_reward, (tr.history[-1]["value_mean"], mean_reward)
