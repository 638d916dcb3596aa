"""Notebook 03: the clipped per-token GRPO loss with its aggregation, and the k3 KL estimator.

- ``03-clipped-loss``: ``fn(logps, old_logps, advantages, completion_mask, epsilon=0.2, epsilon_high=None,
  loss_type="dapo", max_completion_length=None) -> scalar tensor`` (no KL term: beta = 0), graded against
  ``grpo_lab.grpo.grpo_loss`` and hand values. Inputs are float64, masks ragged (with an empty completion), and
  ratios leave the clip range so the clip matters.
- ``03-k3-kl``: ``fn(logps, ref_logps) -> Tensor``, elementwise ``exp(d) - d - 1`` with ``d = ref_logps - logps``
  clamped at 20 (Schulman, "Approximating KL divergence"), graded against stored values and the identity
  ``sum_v pi(v) k3(v) = KL(pi || pi_ref)``.
"""

import math

import torch

from grpo_lab.course.registry import exercise_test
from grpo_lab.grpo import grpo_loss

ID = "03-clipped-loss"
D = torch.float64
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


def _batch(seed, B=6, T=5, lengths=(5, 2, 4, 1, 5, 0)):
    g = torch.Generator().manual_seed(seed)
    lp = -2 * torch.rand(B, T, generator=g, dtype=D) - 0.1
    old = lp + 0.4 * torch.randn(B, T, generator=g, dtype=D)
    adv = torch.randn(B, generator=g, dtype=D)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).to(D)
    return lp, old, adv, mask


def _value(x, what):
    x = torch.as_tensor(x)
    assert x.numel() == 1, f"{what}: the loss must be a scalar, got shape {tuple(x.shape)}"
    assert torch.isfinite(x).all(), f"{what}: got {x.item()}"
    return x.reshape(()).to(D)


def _agree(fn, lp, old, adv, mask, what, **kw):
    want = grpo_loss(lp, old, adv, mask, **kw)
    got = _value(fn(lp.clone(), old.clone(), adv.clone(), mask.clone(), **kw), what)
    assert abs(got.item() - want.item()) < 1e-8, f"{what}: expected {want.item():.6f}, got {got.item():.6f}"


@exercise_test(
    ID,
    title="Clipped GRPO loss with aggregation",
    forbid=(
        "grpo_lab.grpo.grpo_loss",
        "grpo_lab.grpo.grpo_loss_terms",
        "grpo_lab.grpo.aggregate",
        "grpo_lab.grpo.importance_ratio",
    ),
    hint="At ratio 1 the per-token loss is -A; for 'grpo' average each row over its real tokens, then over rows.",
)
def test_on_policy_equal_lengths(fn):
    lp = torch.full((2, 3), -1.0, dtype=D)
    adv = torch.tensor([1.0, -0.5], dtype=D)
    mask = torch.ones(2, 3, dtype=D)
    for lt in ("grpo", "dapo"):
        got = _value(fn(lp, lp.clone(), adv, mask, loss_type=lt), lt)
        assert abs(got.item() + 0.25) < 1e-9, (
            f"{lt}: ratio 1, A=(1, -0.5): expected -mean(A) = -0.25, got {got.item():.4f}"
        )


@exercise_test(
    ID, hint="loss = -min(r*A, clamp(r, 1-epsilon, 1+epsilon_high)*A): with A>0 and r=2 the clipped branch wins."
)
def test_clipping_by_hand(fn):
    lp = torch.log(torch.tensor([[2.0, 0.5]], dtype=D))
    old = torch.zeros(1, 2, dtype=D)
    mask = torch.ones(1, 2, dtype=D)
    got = _value(
        fn(lp, old, torch.tensor([1.0], dtype=D), mask, epsilon=0.2, epsilon_high=0.28, loss_type="bnpo"), "A=+1"
    )
    assert abs(got.item() + (1.28 + 0.5) / 2) < 1e-9, (
        f"A=+1, r=(2, 0.5): expected {-(1.28 + 0.5) / 2:.4f}, got {got.item():.4f}"
    )
    got = _value(
        fn(lp, old, torch.tensor([-1.0], dtype=D), mask, epsilon=0.2, epsilon_high=0.28, loss_type="bnpo"), "A=-1"
    )
    assert abs(got.item() - (2.0 + 0.8) / 2) < 1e-9, (
        f"A=-1, r=(2, 0.5): expected {(2.0 + 0.8) / 2:.4f}, got {got.item():.4f}"
    )


@exercise_test(ID, hint="epsilon_high=None means the upper bound uses epsilon (symmetric clip).")
def test_epsilon_high_defaults_to_epsilon(fn):
    lp, old, adv, mask = _batch(0)
    _agree(fn, lp, old, adv, mask, "epsilon_high=None", epsilon=0.1)


@exercise_test(ID, hint="Multiply by the mask before summing; padded tokens must not count (and rows can be empty).")
def test_each_loss_type_on_ragged_masks(fn):
    for seed in (1, 2):
        lp, old, adv, mask = _batch(seed)
        for lt in LOSS_TYPES:
            _agree(
                fn,
                lp,
                old,
                adv,
                mask,
                f"loss_type={lt!r}",
                epsilon=0.2,
                epsilon_high=0.28,
                loss_type=lt,
                max_completion_length=8,
            )


@exercise_test(ID, hint="dr_grpo divides by B * max_completion_length (the config), not by the tensor width T.")
def test_dr_grpo_uses_max_completion_length(fn):
    lp, old, adv, mask = _batch(3)
    _agree(fn, lp, old, adv, mask, "dr_grpo, L_max=32", loss_type="dr_grpo", max_completion_length=32)


@exercise_test(ID, hint="Padding positions may hold any number; the mask must remove them from every sum.")
def test_padding_values_do_not_leak(fn):
    lp, old, adv, mask = _batch(4)
    lp2 = torch.where(mask.bool(), lp, torch.full_like(lp, 3.0))
    for lt in LOSS_TYPES:
        _agree(fn, lp2, old, adv, mask, f"{lt} with junk in padding", loss_type=lt, max_completion_length=8)


@exercise_test(ID, hint="Use torch ops only (no .item(), no numpy) so the loss stays differentiable in logps.")
def test_gradient_matches_reference(fn):
    lp, old, adv, mask = _batch(5)
    for lt in LOSS_TYPES:
        a = lp.clone().requires_grad_(True)
        b = lp.clone().requires_grad_(True)
        got = fn(a, old, adv, mask, epsilon=0.2, epsilon_high=0.28, loss_type=lt, max_completion_length=8)
        assert torch.is_tensor(got) and got.requires_grad, f"{lt}: the loss is not connected to logps (no gradient)"
        (ga,) = torch.autograd.grad(got.sum(), a)
        (gb,) = torch.autograd.grad(
            grpo_loss(b, old, adv, mask, epsilon=0.2, epsilon_high=0.28, loss_type=lt, max_completion_length=8), b
        )
        assert (ga - gb).abs().max().item() < 1e-8, f"{lt}: gradient differs from the reference"


# --------------------------------------------------------------------------------------------------
# 03-k3-kl: fn(logps, ref_logps) -> Tensor, elementwise
# --------------------------------------------------------------------------------------------------

K3 = "03-k3-kl"
E = math.e


def _k3(fn, lp, ref, what):
    got = fn(torch.as_tensor(lp, dtype=D), torch.as_tensor(ref, dtype=D))
    assert torch.is_tensor(got), f"{what}: return a tensor, got {type(got).__name__}"
    assert got.shape == torch.as_tensor(lp).shape, (
        f"{what}: k3 is elementwise: expected shape {tuple(torch.as_tensor(lp).shape)}, got {tuple(got.shape)}"
    )
    return got


@exercise_test(
    K3,
    title="The k3 KL estimator",
    forbid=("grpo_lab.grpo.k3_kl", "grpo_lab.grpo.grpo_loss_terms", "grpo_lab.grpo.grpo_loss"),
    hint="d = ref_logps - logps (log pi_ref/pi at the sampled token); k3 = exp(d) - d - 1.",
)
def test_stored_values(fn):
    # d = 0, 1, -1.5: k3 = 0, e - 2, e^-1.5 + 0.5
    got = _k3(fn, [-1.0, -2.0, -0.5], [-1.0, -1.0, -2.0], "three tokens")
    want = torch.tensor([0.0, E - 2, math.exp(-1.5) + 0.5], dtype=D)
    assert (got.to(D) - want).abs().max() < 1e-9, (
        f"logps (-1, -2, -0.5), ref (-1, -1, -2): expected {[round(x, 6) for x in want.tolist()]}, got {[round(x, 6) for x in got.tolist()]}"
    )


@exercise_test(
    K3,
    hint="The sign matters: d is ref minus policy. With d = -1 the value is e^-1 = 0.3679, with d = +1 it is e - 2 = 0.7183.",
)
def test_direction(fn):
    got = _k3(fn, [[0.0, -1.0]], [[-1.0, 0.0]], "d = -1 and d = +1")
    want = torch.tensor([[math.exp(-1), E - 2]], dtype=D)
    assert (got.to(D) - want).abs().max() < 1e-9, (
        f"expected {[round(x, 6) for x in want[0].tolist()]}, got {[round(x, 6) for x in got[0].tolist()]}"
    )


@exercise_test(
    K3, hint="Averaged over tokens sampled from pi, k3 equals KL(pi || pi_ref) exactly: sum_v pi(v) k3(v) = KL."
)
def test_unbiased_for_kl(fn):
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        lp = torch.randn(7, generator=g, dtype=D).log_softmax(0)
        ref = torch.randn(7, generator=g, dtype=D).log_softmax(0)
        k3 = _k3(fn, lp, ref, "a 7-token vocabulary").to(D)
        exact = (lp.exp() * (lp - ref)).sum()
        got = (lp.exp() * k3).sum()
        assert abs(got - exact) < 1e-9, f"sum_v pi(v) k3(v) should equal KL(pi || pi_ref) = {exact:.6f}, got {got:.6f}"


@exercise_test(
    K3, hint="Clamp d at 20 before exp (torch.clamp(d, max=20)): exp(100) overflows float32 and the loss becomes inf."
)
def test_clamped_against_overflow(fn):
    got = fn(torch.tensor([-100.0, -0.1]), torch.tensor([0.0, -0.1]))
    assert torch.isfinite(got).all(), f"logps -100, ref 0 (d = 100): got {got.tolist()}; clamp d at 20"
    want = math.exp(20) - 21
    assert abs(got[0].item() - want) / want < 1e-5 and abs(got[1].item()) < 1e-6, (
        f"expected ({want:.6g}, 0), got {tuple(round(x, 6) for x in got.tolist())}"
    )


@exercise_test(K3, hint="Torch operations only, so that the gradient d k3 / d logps = 1 - exp(d) reaches the policy.")
def test_gradient(fn):
    g = torch.Generator().manual_seed(4)
    lp = (-2 * torch.rand(3, 4, generator=g, dtype=D)).requires_grad_(True)
    ref = -2 * torch.rand(3, 4, generator=g, dtype=D)
    out = fn(lp, ref)
    assert out.requires_grad, "the result is not connected to logps (no gradient)"
    (grad,) = torch.autograd.grad(out.sum(), lp)
    want = 1 - torch.exp(ref - lp.detach())
    assert (grad - want).abs().max() < 1e-9, "d k3 / d logps should be 1 - exp(ref - logps)"
