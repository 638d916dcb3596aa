"""Notebook 08: a token-level KD loss, graded against ``grpo_lab.distill.kd_loss`` (TRL 1.16's generalized JSD).

The student writes ``fn(student_logits, teacher_logits, beta, temperature=1.0, mask=None) -> scalar Tensor``:
``beta=0`` is KL(teacher || student), ``beta=1`` KL(student || teacher), in between the generalized JSD with
mixture ``beta * teacher + (1 - beta) * student``; both sides softened by ``temperature``; the per-token
divergence (summed over the vocabulary) is averaged over the tokens where ``mask`` is 1 (all when None).
"""

import math

import torch

from grpo_lab.course.registry import exercise_test
from grpo_lab.distill import kd_loss

ID = "08-kd-loss"
D = torch.float64


def _pair(seed, shape=(2, 5, 9)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=D, generator=g) * 2, torch.randn(*shape, dtype=D, generator=g) * 2


def _agree(fn, s, t, what, **kw):
    got = fn(s, t, **kw)
    assert torch.is_tensor(got) and got.dim() == 0, (
        f"{what}: return a scalar tensor, got {type(got).__name__} {getattr(got, 'shape', '')}"
    )
    want = kd_loss(s, t, **kw)
    assert torch.isfinite(got), f"{what}: got {got.item()}, expected {want.item():.6f}"
    assert abs(got.item() - want.item()) < 1e-6, f"{what}: expected {want.item():.6f}, got {got.item():.6f}"


def _by_hand(fn, beta, want, note=""):
    """Teacher (0.5, 0.5), student (0.9, 0.1) as log-probabilities: a two-word vocabulary, one token."""
    t, s = torch.log(torch.tensor([0.5, 0.5], dtype=D)), torch.log(torch.tensor([0.9, 0.1], dtype=D))
    got = float(fn(s, t, beta=beta))
    assert abs(got - want) < 1e-6, (
        f"teacher (0.5, 0.5), student (0.9, 0.1), beta={beta:g}: expected {want:.5f}, got {got:.5f}{note}"
    )


@exercise_test(
    ID,
    title="A token-level KD loss",
    forbid=(
        "grpo_lab.distill.kd_loss",
        "grpo_lab.distill.divergence_per_token",
        "grpo_lab.distill.forward_kl",
        "grpo_lab.distill.reverse_kl",
        "grpo_lab.distill.generalized_jsd",
    ),
    hint="beta=0 is the forward KL: sum_v p_teacher * (log p_teacher - log p_student).",
)
def test_forward_kl_by_hand(fn):
    _by_hand(fn, 0.0, 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1))


@exercise_test(ID, hint="beta=1 swaps the roles: KL(student || teacher), weighted by the student's probabilities.")
def test_reverse_kl_by_hand(fn):
    _by_hand(fn, 1.0, 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5), " (did you compute the forward KL?)")


@exercise_test(
    ID,
    hint="Mixture M = beta * p_teacher + (1 - beta) * p_student; loss = beta KL(t||M) + (1-beta) KL(s||M). Use logsumexp for log M.",
)
def test_generalized_jsd(fn):
    s, t = _pair(1)
    for beta in (0.5, 0.1, 0.9):
        _agree(fn, s, t, f"beta={beta}", beta=beta)


@exercise_test(
    ID, hint="Divide BOTH student and teacher logits by the temperature before the softmax (no T^2 factor)."
)
def test_temperature(fn):
    s, t = _pair(2)
    for beta in (0.0, 0.5, 1.0):
        _agree(fn, s, t, f"beta={beta}, temperature=2", beta=beta, temperature=2.0)


@exercise_test(ID, hint="Sum the divergence over the vocabulary, then average over the tokens where mask is 1.")
def test_mask_and_padding(fn):
    s, t = _pair(3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    _agree(fn, s, t, "masked mean", beta=0.0, mask=mask)
    s2 = s.clone()
    s2[0, 4] = 50.0
    _agree(fn, s2, t, "junk logits at a masked position", beta=0.5, mask=mask)
    _agree(fn, s, t, "mask=None (all tokens)", beta=0.0)


@exercise_test(
    ID,
    hint="Keep everything in torch (no .item(), no numpy) so the loss has a gradient with respect to the student logits.",
)
def test_gradient(fn):
    s, t = _pair(4)
    a, b = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    got = fn(a, t, beta=0.5)
    assert got.requires_grad, "the loss is not connected to the student logits"
    (ga,) = torch.autograd.grad(got, a)
    (gb,) = torch.autograd.grad(kd_loss(b, t, beta=0.5), b)
    assert (ga - gb).abs().max().item() < 1e-6, "the gradient differs from the reference"
