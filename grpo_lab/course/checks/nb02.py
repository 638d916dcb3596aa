"""Notebook 02: group-relative advantages, graded against ``grpo_lab.grpo.group_advantages`` (TRL 1.16's rule).

The student writes ``fn(rewards: Tensor[B], num_generations: int, scale_rewards: str = "group") -> Tensor[B]``.
"""

import torch

from grpo_lab.course.registry import exercise_test
from grpo_lab.grpo import group_advantages

ID = "02-group-advantages"
D = torch.float64


def _close(got, want, what):
    got = torch.as_tensor(got)
    assert got.shape == want.shape, f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert torch.isfinite(got).all(), f"{what}: got non-finite values {got.tolist()}"
    err = (got.to(D) - want).abs().max().item()
    assert err < 1e-6, (
        f"{what}: expected {[round(x, 4) for x in want.tolist()]}, got {[round(x, 4) for x in got.tolist()]}"
    )


@exercise_test(
    ID,
    title="Group-relative advantages",
    forbid=("grpo_lab.grpo.group_advantages",),
    hint="A = (r - group mean) / (group std + 1e-4); torch.std uses Bessel's correction (N-1) by default.",
)
def test_documented_group(fn):
    r = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=D)
    _close(fn(r, 4, "group"), group_advantages(r, 4, "group"), "rewards (0,0,0,1)")


@exercise_test(
    ID, hint="Reshape to [B/G, G]: the G completions of a prompt are consecutive; each group has its own mean."
)
def test_two_groups_are_normalized_separately(fn):
    r = torch.tensor([0.0, 1.0, 1.0, 1.0, 5.0, 7.0, 5.0, 9.0], dtype=D)
    _close(fn(r, 4, "group"), group_advantages(r, 4, "group"), "two groups of 4")


@exercise_test(ID, hint="All rewards equal: std is 0, the numerator is 0, and the 1e-4 keeps 0/(0+1e-4) = 0 (no NaN).")
def test_zero_variance_group_gives_zeros(fn):
    r = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0], dtype=D)
    got = torch.as_tensor(fn(r, 4, "group"))
    assert torch.isfinite(got).all(), "a group with equal rewards must give advantage 0, not NaN"
    _close(got, group_advantages(r, 4, "group"), "a zero-variance group")


@exercise_test(ID, hint="scale_rewards='none' only subtracts the group mean (Dr. GRPO).")
def test_scale_none(fn):
    r = torch.tensor([0.0, 1.0, 2.0, 0.5, 0.5, 3.0], dtype=D)
    _close(fn(r, 3, "none"), group_advantages(r, 3, "none"), "scale_rewards='none'")


@exercise_test(ID, hint="scale_rewards='batch': subtract the GROUP mean, divide by the std of ALL rewards (+1e-4).")
def test_scale_batch(fn):
    r = torch.tensor([0.0, 1.0, 2.0, 0.5, 0.5, 3.0], dtype=D)
    _close(fn(r, 3, "batch"), group_advantages(r, 3, "batch"), "scale_rewards='batch'")


@exercise_test(ID, hint="Random groups of sizes 2 to 8 under each scale_rewards: no shape or size may be hard-coded.")
def test_random_inputs_match_reference(fn):
    g = torch.Generator().manual_seed(2)
    for n_groups, G in [(1, 2), (3, 4), (2, 8), (5, 3)]:
        r = torch.randint(0, 3, (n_groups * G,), generator=g).to(D) + 0.1 * torch.rand(
            n_groups * G, generator=g, dtype=D
        )
        for scale in ("group", "batch", "none"):
            _close(fn(r.clone(), G, scale), group_advantages(r, G, scale), f"{n_groups} groups of {G}, {scale!r}")
