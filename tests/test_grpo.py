"""grpo_lab.grpo on hand-checked values: advantages, k3 KL, clipping, the four aggregations, presets, validation.

The comparison with TRL's own code lives in test_grpo_trl.py; these tests pin the numbers a student can
check with pencil and paper (the formulas of TRL 1.16's GRPOTrainer, worked by hand).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_lab.grpo import (
    PAPER_VARIANTS,
    PRESET_SOURCES,
    PRESETS,
    TRL_ONLY,
    VARIANT_SOURCES,
    aggregate,
    frac_zero_std,
    group_advantages,
    grpo_loss,
    grpo_loss_terms,
    importance_ratio,
    k3_kl,
    preset,
    step0_loss,
    validate_grpo_config,
    variant,
)

D = torch.float64


def lengths_mask(lengths, t=None):
    lens = torch.tensor(lengths)
    t = t or int(lens.max())
    return (torch.arange(t)[None, :] < lens[:, None]).to(D)


# --------------------------------------------------------------------------------------------------
# Advantages
# --------------------------------------------------------------------------------------------------


def test_documented_group_case():
    # std of (0,0,0,1) with Bessel = 0.5, so A = (-0.25, .., 0.75) / (0.5 + 1e-4)
    a = group_advantages(torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=D), 4)
    want = torch.tensor([-0.25, -0.25, -0.25, 0.75], dtype=D) / 0.5001
    torch.testing.assert_close(a, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(a, torch.tensor([-0.5, -0.5, -0.5, 1.5], dtype=D), rtol=0, atol=1e-3)


def test_groups_are_independent_and_consecutive():
    r = torch.tensor([0.0, 0.0, 0.0, 1.0, 10.0, 10.0, 10.0, 11.0], dtype=D)
    a = group_advantages(r, 4)
    torch.testing.assert_close(a[:4], a[4:])  # a constant shift of a group changes nothing
    # Interleaved layout would be a different (wrong) grouping: prove the layout matters.
    assert not torch.allclose(group_advantages(r.view(4, 2).T.reshape(-1), 4), a)


def test_scale_none_and_batch():
    r = torch.tensor([0.0, 1.0, 2.0, 5.0, 5.0, 5.0], dtype=D)
    torch.testing.assert_close(group_advantages(r, 3, "none"), torch.tensor([-1, 0, 1, 0, 0, 0], dtype=D))
    batch_std = r.std()  # Bessel over all 6 rewards
    torch.testing.assert_close(
        group_advantages(r, 3, "batch"), torch.tensor([-1, 0, 1, 0, 0, 0], dtype=D) / (batch_std + 1e-4)
    )
    torch.testing.assert_close(group_advantages(r, 3, "group")[:3], torch.tensor([-1, 0, 1], dtype=D) / (1 + 1e-4))
    # TRL's boolean spellings
    torch.testing.assert_close(group_advantages(r, 3, True), group_advantages(r, 3, "group"))
    torch.testing.assert_close(group_advantages(r, 3, False), group_advantages(r, 3, "none"))


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_zero_variance_group_gives_zero_advantage(scale):
    r = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    a = group_advantages(r, 4, scale)
    assert torch.equal(a[:4], torch.zeros(4))
    assert torch.isfinite(a).all() and a[4:].abs().sum() > 0
    assert frac_zero_std(r, 4) == 0.5
    assert frac_zero_std(torch.ones(8), 4) == 1.0


def test_nan_reward_is_ignored_and_gets_zero():
    a = group_advantages(torch.tensor([0.0, float("nan"), 1.0, 1.0]), 4)
    assert a[1] == 0
    # remaining (0, 1, 1): mean 2/3, std sqrt(1/3)
    s = math.sqrt(1 / 3) + 1e-4
    torch.testing.assert_close(a[[0, 2, 3]], torch.tensor([-2 / 3 / s, 1 / 3 / s, 1 / 3 / s]))


def test_accepts_lists_and_ints_and_keeps_float64():
    assert group_advantages([0, 1], 2).dtype == torch.float32
    assert group_advantages(torch.tensor([0.0, 1.0], dtype=D), 2).dtype == D


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rewards=[0.0, 1.0, 2.0], num_generations=2), "multiple of 2"),
        (dict(rewards=[0.0, 1.0], num_generations=1), "at least 2"),
        (dict(rewards=[0.0, 1.0], num_generations=2, scale_rewards="std"), "scale_rewards"),
        (dict(rewards=[[0.0, 1.0]], num_generations=2), "1-D"),
        (dict(rewards=[0.0, 1.0], num_generations=2.0), "int"),
    ],
)
def test_group_advantages_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(**kwargs)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(2, 6), st.integers(0, 10_000))
def test_group_normalized_advantages_have_zero_mean_and_unit_std(n_groups, g, seed):
    r = torch.rand(n_groups * g, generator=torch.Generator().manual_seed(seed), dtype=D)
    a = group_advantages(r, g).view(n_groups, g)
    torch.testing.assert_close(a.mean(1), torch.zeros(n_groups, dtype=D), atol=1e-9, rtol=0)
    std = r.view(n_groups, g).std(1)
    torch.testing.assert_close(a.std(1), std / (std + 1e-4), atol=1e-9, rtol=0)


# --------------------------------------------------------------------------------------------------
# KL and ratios
# --------------------------------------------------------------------------------------------------


def test_k3_values():
    lp = torch.tensor([-1.0, -2.0, -0.5], dtype=D)
    ref = torch.tensor([-1.0, -1.0, -1.5], dtype=D)
    d = ref - lp
    torch.testing.assert_close(k3_kl(lp, ref), torch.exp(d) - d - 1)
    assert k3_kl(lp, ref)[0] == 0  # identical policies: zero
    assert (k3_kl(lp, ref) >= 0).all()


def test_k3_is_unbiased_for_kl():
    # pi = softmax(p), ref = softmax(q) over 5 tokens; E_{x~pi}[k3] = KL(pi || ref).
    p, q = torch.tensor([1.0, 0.5, 0.0, -0.5, 2.0], dtype=D), torch.tensor([0.0, 0.0, 1.0, 0.0, 0.5], dtype=D)
    lp, lq = p.log_softmax(0), q.log_softmax(0)
    exact = (lp.exp() * (lp - lq)).sum()
    torch.testing.assert_close((lp.exp() * k3_kl(lp, lq)).sum(), exact)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_k3_does_not_overflow(dtype):
    lp = torch.tensor([-1e4, -200.0, -1.0, 0.0], dtype=dtype, requires_grad=True)
    ref = torch.tensor([0.0, 0.0, -1e4, -100.0], dtype=dtype)
    kl = k3_kl(lp, ref)
    assert torch.isfinite(kl).all(), kl
    assert kl[0] > 1e8  # still a huge penalty, just finite
    kl.sum().backward()
    assert torch.isfinite(lp.grad).all()
    # Unclamped would be inf in float32:
    assert not torch.isfinite(torch.exp(torch.tensor(1e4, dtype=torch.float32)))


def test_sequence_ratio_is_geometric_mean_over_real_tokens():
    lp = torch.tensor([[-1.0, -2.0, -9.0]], dtype=D)
    old = torch.tensor([[-1.5, -1.0, 0.0]], dtype=D)
    m = torch.tensor([[1.0, 1.0, 0.0]], dtype=D)
    r = importance_ratio(lp, old, m, "sequence")
    assert r.shape == (1, 1)
    torch.testing.assert_close(r, torch.tensor([[math.exp((0.5 - 1.0) / 2)]], dtype=D))
    # An all-padding row does not divide by zero.
    assert torch.isfinite(importance_ratio(lp, old, torch.zeros_like(m), "sequence")).all()


# --------------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------------

# The worked example of trl-grpo.md: 2 prompts x 4, L_max 16, one short completion.
EX_ADV = torch.tensor([-0.5, -0.5, -0.5, 1.5, 0.08, -1.299, 1.14, 0.08], dtype=D)
EX_LEN = [16, 16, 16, 16, 16, 3, 16, 16]


@pytest.mark.parametrize(
    "loss_type, want",
    [
        # sum_i A_i len_i = 16*(-1.5+1.5) + 16*0.08 - 3*1.299 + 16*1.14 + 16*0.08 = 16.903; tokens = 115
        ("dapo", -16.903 / 115),
        ("bnpo", -16.903 / 115),
        ("dr_grpo", -16.903 / (8 * 16)),
        ("grpo", -EX_ADV.mean().item()),  # = -0.001/8 with the rounded advantages; exactly 0 with real ones
    ],
)
def test_first_step_worked_example(loss_type, want):
    m = lengths_mask(EX_LEN, 16)
    lp = (-torch.rand(8, 16, dtype=D)).requires_grad_(True)
    loss = grpo_loss(lp, None, EX_ADV, m, loss_type=loss_type, max_completion_length=16)
    assert loss.item() == pytest.approx(want, abs=1e-12)
    assert step0_loss(EX_ADV, EX_LEN, loss_type, 16) == pytest.approx(want, abs=1e-12)
    # TRL logged these on CPU with its own (unrounded) advantages; the rounded ones land within 2e-4.
    logged = {"dapo": -0.146840, "bnpo": -0.146840, "dr_grpo": -0.131926, "grpo": 0.0}[loss_type]
    assert loss.item() == pytest.approx(logged, abs=2e-4)


def test_grpo_loss_is_zero_at_step0_with_real_advantages():
    r = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.3, 0.9, 0.1, 0.3], dtype=D)
    a = group_advantages(r, 4)
    m = lengths_mask([5, 2, 7, 7, 1, 3, 7, 4])
    lp = torch.zeros(8, 7, dtype=D)
    assert abs(grpo_loss(lp, None, a, m, loss_type="grpo").item()) < 1e-12
    # ... but dapo is not zero: length correlates with the advantage here
    assert abs(grpo_loss(lp, None, a, m, loss_type="dapo").item()) > 1e-3


def test_zero_variance_batch_gives_zero_loss_and_zero_grad():
    a = group_advantages(torch.ones(8), 4).double()
    lp = torch.randn(8, 5, dtype=D, requires_grad=True)
    old = lp.detach() + 0.3 * torch.randn(8, 5, dtype=D)
    for lt in ("grpo", "bnpo", "dapo", "dr_grpo"):
        loss = grpo_loss(lp, old, a, torch.ones(8, 5, dtype=D), loss_type=lt, max_completion_length=5)
        (g,) = torch.autograd.grad(loss, lp)
        assert loss.item() == 0 and torch.count_nonzero(g) == 0


def test_beta_kl_at_step0_equal_lengths():
    # With ratio 1 and equal lengths, the loss is -mean(A) + beta * mean(kl); grpo with A summing to 0 -> beta*kl
    lp = torch.randn(4, 6, dtype=D)
    ref = lp + 0.5 * torch.randn(4, 6, dtype=D)
    a = group_advantages(torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=D), 4)
    t = grpo_loss_terms(lp, None, a, torch.ones(4, 6, dtype=D), ref_logps=ref, beta=0.04, loss_type="grpo")
    assert t.loss.item() == pytest.approx(0.04 * k3_kl(lp, ref).mean().item(), abs=1e-12)
    assert t.metrics()["kl"] == pytest.approx(k3_kl(lp, ref).mean().item(), abs=1e-12)


def test_clipping_by_hand():
    # One completion, 4 tokens; ratios 0.5, 0.9, 1.1, 2.0; eps 0.2, eps_high 0.28.
    ratios = torch.tensor([[0.5, 0.9, 1.1, 2.0]], dtype=D)
    lp = ratios.log().requires_grad_(True)
    old = torch.zeros(1, 4, dtype=D)
    m = torch.ones(1, 4, dtype=D)
    # A > 0: min(rA, clip(r)A) = (0.5, 0.9, 1.1, 1.28) -> the r=2 token is clipped (no gradient)
    t = grpo_loss_terms(lp, old, torch.tensor([1.0], dtype=D), m, epsilon=0.2, epsilon_high=0.28)
    torch.testing.assert_close(t.per_token_loss, -torch.tensor([[0.5, 0.9, 1.1, 1.28]], dtype=D))
    assert t.is_high_clipped.tolist() == [[False, False, False, True]]
    assert not t.is_low_clipped.any()
    (g,) = torch.autograd.grad(t.loss, lp)
    # d/dlp of -r/4 is -r/4, except the clipped token
    torch.testing.assert_close(g, torch.tensor([[-0.125, -0.225, -0.275, 0.0]], dtype=D))
    assert t.metrics()["clip_ratio/high_mean"] == 0.25
    # A < 0: min(-r, -clip(r)) = -max(r, clip r) -> (0.8, 0.9, 1.1, 2.0): the r=0.5 token is clipped
    t = grpo_loss_terms(lp, old, torch.tensor([-1.0], dtype=D), m, epsilon=0.2, epsilon_high=0.28)
    torch.testing.assert_close(t.per_token_loss, torch.tensor([[0.8, 0.9, 1.1, 2.0]], dtype=D))
    assert t.is_low_clipped.tolist() == [[True, False, False, False]]
    assert t.metrics() == pytest.approx(
        {"clip_ratio/low_mean": 0.25, "clip_ratio/high_mean": 0.0, "clip_ratio/region_mean": 0.25}
    )


def test_clip_higher_changes_only_upper_side():
    lp = torch.tensor([[math.log(1.25)]], dtype=D)
    old = torch.zeros(1, 1, dtype=D)
    m = torch.ones(1, 1, dtype=D)
    sym = grpo_loss(lp, old, torch.tensor([1.0], dtype=D), m, epsilon=0.2)
    dapo = grpo_loss(lp, old, torch.tensor([1.0], dtype=D), m, epsilon=0.2, epsilon_high=0.28)
    assert sym.item() == pytest.approx(-1.2) and dapo.item() == pytest.approx(-1.25)


def test_aggregations_on_a_ragged_batch():
    per_tok = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]], dtype=D)
    m = lengths_mask([4, 1])
    assert aggregate(per_tok, m, "grpo").item() == pytest.approx((1 + 4) / 2)  # sequence means: 1 and 4
    assert aggregate(per_tok, m, "bnpo").item() == pytest.approx(8 / 5)  # token mean
    assert aggregate(per_tok, m, "dapo").item() == pytest.approx(8 / 5)
    assert aggregate(per_tok, m, "dapo", num_items_in_batch=10).item() == pytest.approx(8 / 10)
    assert aggregate(per_tok, m, "dr_grpo", max_completion_length=8).item() == pytest.approx(8 / 16)
    # padding values never leak in
    per_tok2 = per_tok.clone()
    per_tok2[1, 1:] = 1e6
    for lt in ("grpo", "bnpo", "dapo"):
        assert aggregate(per_tok2, m, lt).item() == aggregate(per_tok, m, lt).item()


def test_length_bias_of_grpo_aggregation():
    # Two wrong answers (A = -1), one short and one long. Per-token push-down of each token:
    # grpo divides by the sequence's own length -> long answer's tokens are penalized less (Dr. GRPO's point).
    lp = torch.zeros(2, 10, dtype=D, requires_grad=True)
    m = lengths_mask([2, 10])
    a = torch.tensor([-1.0, -1.0], dtype=D)
    (g,) = torch.autograd.grad(grpo_loss(lp, None, a, m, loss_type="grpo"), lp)
    assert g[0, 0].item() == pytest.approx(0.25) and g[1, 0].item() == pytest.approx(0.05)
    (g,) = torch.autograd.grad(grpo_loss(lp, None, a, m, loss_type="dr_grpo", max_completion_length=10), lp)
    assert g[0, 0].item() == pytest.approx(g[1, 0].item())


def test_bias_correction_changes_gradient_not_value_on_policy():
    lp = torch.randn(2, 3, dtype=D, requires_grad=True)
    ref = lp.detach() + 0.7
    m = torch.ones(2, 3, dtype=D)
    a = torch.zeros(2, dtype=D)
    on = grpo_loss(lp, None, a, m, ref_logps=ref, beta=1.0)
    off = grpo_loss(lp, None, a, m, ref_logps=ref, beta=1.0, use_bias_correction_kl=False)
    assert on.item() == pytest.approx(off.item())
    (g_on,) = torch.autograd.grad(on, lp)
    (g_off,) = torch.autograd.grad(off, lp)
    # d/dlp [k3 * exp(lp - sg(lp))] = dk3 + k3 ; d k3/d lp = 1 - exp(ref - lp)
    k3 = k3_kl(lp.detach(), ref)
    torch.testing.assert_close(g_off, (1 - torch.exp(ref - lp.detach())) / 6)
    torch.testing.assert_close(g_on, g_off + k3 / 6)


def test_policy_gradient_on_policy_is_advantage_weighted():
    lp = torch.randn(2, 3, dtype=D, requires_grad=True)
    m = lengths_mask([3, 2], 3)
    a = torch.tensor([2.0, -1.0], dtype=D)
    (g,) = torch.autograd.grad(grpo_loss(lp, None, a, m, loss_type="bnpo"), lp)
    torch.testing.assert_close(g, -(a[:, None] * m) / 5)


def test_sequence_level_broadcasts_and_metrics_count_sequences():
    lp = torch.zeros(2, 3, dtype=D)
    old = torch.tensor([[-1.0, -1.0, 0.0], [0.0, 0.0, 0.0]], dtype=D)  # row 0: log-ratio 1 per real token -> e^1
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=D)
    t = grpo_loss_terms(
        lp, old, torch.tensor([1.0, 1.0], dtype=D), m, importance_sampling_level="sequence", loss_type="grpo"
    )
    assert t.ratio.shape == (2, 3) and t.per_token_loss.shape == (2, 3)
    torch.testing.assert_close(t.ratio[0], torch.full((3,), math.e, dtype=D))
    assert t.metrics()["clip_ratio/high_mean"] == 0.5  # one of two sequences, not 2 of 5 tokens


def test_loss_type_and_input_errors():
    lp = torch.zeros(2, 3)
    m = torch.ones(2, 3)
    a = torch.zeros(2)
    with pytest.raises(ValueError, match="loss_type"):
        grpo_loss(lp, lp, a, m, loss_type="ppo")
    with pytest.raises(ValueError, match="max_completion_length"):
        grpo_loss(lp, lp, a, m, loss_type="dr_grpo")
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_loss(lp, lp, a, m, beta=0.1)
    with pytest.raises(ValueError, match="importance_sampling_level"):
        grpo_loss(lp, lp, a, m, importance_sampling_level="sentence")
    with pytest.raises(ValueError, match="completion_mask"):
        grpo_loss(lp, lp, a, torch.ones(2, 4))
    with pytest.raises(ValueError, match="advantages"):
        grpo_loss(lp, lp, torch.zeros(3), m)


def test_integer_and_bool_masks_work():
    lp = torch.randn(2, 3, dtype=D)
    old = lp + 0.1
    a = torch.tensor([1.0, -1.0], dtype=D)
    m = lengths_mask([3, 1], 3)
    want = grpo_loss(lp, old, a, m)
    assert grpo_loss(lp, old, a, m.long()).item() == want.item()
    assert grpo_loss(lp, old, a, m.bool()).item() == want.item()


# --------------------------------------------------------------------------------------------------
# Presets and validation
# --------------------------------------------------------------------------------------------------


def test_paper_variants_match_the_papers():
    assert variant("grpo") == PAPER_VARIANTS["grpo"] and variant("grpo")["beta"] == 0.04
    assert variant("dapo")["epsilon_high"] == 0.28 and variant("dapo")["beta"] == 0.0
    assert variant("dapo")["dynamic_sampling"] is True
    assert variant("dr_grpo")["scale_rewards"] == "none" and variant("dr_grpo")["loss_type"] == "dr_grpo"
    assert variant("gspo")["importance_sampling_level"] == "sequence" and variant("gspo")["epsilon"] < 1e-3
    assert variant("Dr-GRPO") == variant("dr_grpo")
    assert set(VARIANT_SOURCES) == set(PAPER_VARIANTS) and all("arXiv" in s for s in VARIANT_SOURCES.values())
    # The old names (notebook 03) are the same objects.
    assert PRESETS is PAPER_VARIANTS and PRESET_SOURCES is VARIANT_SOURCES and preset is variant


def test_every_variant_is_a_config_the_from_scratch_trainer_accepts():
    from grpo_lab.trainer import GRPOConfig

    for name in PAPER_VARIANTS:
        knobs = {k: v for k, v in variant(name).items() if k != "dynamic_sampling"}
        GRPOConfig.from_dict({**knobs, "max_completion_length": 8})
    assert set(TRL_ONLY) <= set(PAPER_VARIANTS) and "steps_per_generation" not in variant("gspo")


def test_variant_overrides_return_copies():
    p = variant("dapo", beta=0.01)
    assert p["beta"] == 0.01 and PAPER_VARIANTS["dapo"]["beta"] == 0.0
    p["epsilon"] = 9
    assert PAPER_VARIANTS["dapo"]["epsilon"] == 0.2
    with pytest.raises(KeyError, match="known"):
        variant("ppo")


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_validates(name):
    cfg = validate_grpo_config(num_generations=4, batch_size=16, max_completion_length=32, **preset(name))
    assert cfg["epsilon_high"] >= cfg["epsilon"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_generations=1), "num_generations >= 2"),
        (dict(num_generations=3, batch_size=8), "multiple of 3"),
        (dict(loss_type="ppo"), "loss_type"),
        (dict(loss_type="cispo"), "TRL also has"),
        (dict(scale_rewards="global"), "scale_rewards"),
        (dict(loss_type="dr_grpo"), "max_completion_length"),
        (dict(epsilon=0.2, epsilon_high=0.1), "epsilon_high >= epsilon"),
        (dict(epsilon=0.0), "positive"),
        (dict(beta=-0.1), "beta"),
        (dict(importance_sampling_level="sentence"), "importance_sampling_level"),
        (dict(batch_size=8), "num_generations"),
    ],
)
def test_validate_rejects_bad_configs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        validate_grpo_config(**kwargs)


def test_validate_resolves_and_warns():
    cfg = validate_grpo_config(num_generations=4, batch_size=8, scale_rewards=False)
    assert cfg["scale_rewards"] == "none" and cfg["epsilon_high"] == 0.2
    with pytest.warns(UserWarning, match="sequence"):
        validate_grpo_config(importance_sampling_level="sequence", loss_type="dapo")


def test_grpo_loss_shows_its_knobs_and_equals_the_terms_loss():
    """The public signature of ``grpo_loss`` is the documented one, and it is ``grpo_loss_terms(...).loss``."""
    import inspect

    params = inspect.signature(grpo_loss).parameters
    assert list(params)[:4] == ["logps", "old_logps", "advantages", "completion_mask"]
    knobs = {k: p.default for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert knobs == {
        "ref_logps": None,
        "beta": 0.0,
        "epsilon": 0.2,
        "epsilon_high": None,
        "loss_type": "dapo",
        "max_completion_length": None,
        "importance_sampling_level": "token",
        "use_bias_correction_kl": True,
        "num_items_in_batch": None,
    }
    g = torch.Generator().manual_seed(0)
    lp, old = torch.randn(4, 5, generator=g, dtype=D), torch.randn(4, 5, generator=g, dtype=D)
    a, m = torch.tensor([1.0, -1.0, 0.5, -0.5], dtype=D), lengths_mask([5, 3, 1, 4], 5)
    kw = dict(epsilon_high=0.28, loss_type="grpo")
    assert grpo_loss(lp, old, a, m, **kw).item() == grpo_loss_terms(lp, old, a, m, **kw).loss.item()
    with pytest.raises(TypeError):
        grpo_loss(lp, old, a, m, not_a_knob=1)
