"""The advantage and loss explorers: their pure functions, their plots, and the widgets without a browser."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from grpo_lab.grpo import grpo_loss_terms  # noqa: E402
from grpo_lab.widgets.advantage import (  # noqa: E402
    advantage_explorer,
    advantage_table,
    clip_region,
    clipped_objective,
    describe_groups,
    loss_explorer,
    plot_advantages,
    plot_clipped_objective,
    zero_variance_groups,
)


def test_advantage_table_documented_case():
    t = advantage_table([0, 0, 0, 1, 1, 1, 1, 1], 4)
    assert set(t) == {"group", "batch", "none"}
    np.testing.assert_allclose(t["group"][:4], [-0.5, -0.5, -0.5, 1.5], atol=1e-3)
    np.testing.assert_allclose(t["none"][:4], [-0.25, -0.25, -0.25, 0.75])
    for s in t:
        assert np.all(t[s][4:] == 0)
    # batch std (Bessel over 8 rewards with three zeros) differs from the group's
    assert not np.allclose(t["batch"][:4], t["group"][:4])


def test_zero_variance_and_descriptions():
    r = [1, 1, 1, 1, 0, 1, 0, 0]
    assert zero_variance_groups(r, 4) == [True, False]
    lines = describe_groups(r, 4)
    assert "no gradient" in lines[0] and "no gradient" not in lines[1]
    with pytest.raises(ValueError):
        advantage_table([0, 1, 2], 2)


def test_clipped_objective_matches_the_library_loss():
    r = np.linspace(0.1, 2.0, 37)
    for A in (1.0, -0.7):
        lp = torch.tensor(np.log(r))[None, :]
        t = grpo_loss_terms(lp, torch.zeros_like(lp), torch.tensor([A], dtype=torch.float64), torch.ones_like(lp),
                            epsilon=0.2, epsilon_high=0.28)
        np.testing.assert_allclose(clipped_objective(r, A, 0.2, 0.28), -t.per_token_loss[0].numpy(), atol=1e-12)
        flags = (t.is_low_clipped | t.is_high_clipped)[0].numpy()
        np.testing.assert_array_equal(clip_region(r, A, 0.2, 0.28), flags)


def test_clip_region_by_hand():
    assert clip_region([1.3], 1.0, 0.2, 0.28).tolist() == [True]
    assert clip_region([1.25], 1.0, 0.2, 0.28).tolist() == [False]  # clip-higher keeps it live
    assert clip_region([1.25], 1.0, 0.2).tolist() == [True]
    assert clip_region([0.7], -1.0, 0.2).tolist() == [True]
    assert clip_region([0.7], 1.0, 0.2).tolist() == [False]  # A > 0 is never clipped from below


def test_plots_draw_expected_artists():
    fig = plot_advantages([0, 0, 0, 1, 1, 1, 1, 1], 4)
    axes = fig.axes
    assert len(axes) == 3 and axes[0].get_title() == 'scale_rewards="group"'
    assert len(axes[0].patches) >= 8  # 8 bars (+ the shaded zero-variance span)
    assert any(t.get_text() == "no signal" for t in axes[0].texts)
    fig2 = plot_clipped_objective(0.2, 0.28)
    assert len(fig2.axes) == 2 and "1.28" in fig2.axes[0].get_title()
    import matplotlib.pyplot as plt

    plt.close("all")


def test_advantage_explorer_reacts_to_sliders():
    w = advantage_explorer([0, 0, 0, 1, 0, 1, 0, 1], num_generations=4)
    assert len(w.sliders) == 8
    assert "no gradient" not in w.status.value
    for s in w.sliders[:4]:
        s.value = 0.5  # every completion of group 1 gets the same reward
    assert "group 1" in w.status.value and "no gradient" in w.status.value
    assert len(w.output.outputs) == 1  # the figure was re-rendered, not appended


def test_advantage_explorer_default_shows_zero_variance_and_validates():
    w = advantage_explorer()
    assert "no gradient" in w.status.value  # group 2 is all correct by default
    with pytest.raises(ValueError, match="multiple"):
        advantage_explorer([0, 1, 1], num_generations=2)


def test_loss_explorer_updates():
    w = loss_explorer(0.2, 0.28)
    assert "1.28" in w.status.value and "0.80" in w.status.value
    w.epsilon_high.value = 0.1
    assert "1.10" in w.status.value and "epsilon_high &lt; epsilon" in w.status.value
    assert len(w.output.outputs) == 1
