"""The advantage explorer (and the loss names it re-exports): pure functions, plots, table, and the widget
without a browser."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from grpo_lab.course.widgets.advantage import (  # noqa: E402
    advantage_explorer,
    advantage_table,
    advantage_values_html,
    clip_region,
    clipped_objective,
    cross_group_changes,
    describe_groups,
    loss_explorer,
    plot_advantages,
    plot_clipped_objective,
    zero_variance_groups,
)
from grpo_lab.course.widgets.render import shown_png  # noqa: E402
from grpo_lab.grpo import (
    group_advantages,  # noqa: E402
    grpo_loss_terms,  # noqa: E402
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
        t = grpo_loss_terms(
            lp,
            torch.zeros_like(lp),
            torch.tensor([A], dtype=torch.float64),
            torch.ones_like(lp),
            epsilon=0.2,
            epsilon_high=0.28,
        )
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


def cells(html: str, **attrs) -> dict[int, str]:
    """``{data-i: text}`` of the ``<td>`` cells whose data attributes equal ``attrs``, and their classes."""
    import re

    found = {}
    for m in re.finditer(r"<td([^>]*)>([^<]*)</td>", html):
        a = dict(re.findall(r'(data-[\w-]+|class)="([^"]*)"', m.group(1)))
        if all(a.get(f"data-{k}") == v for k, v in attrs.items()):
            found[int(a["data-i"])] = (m.group(2), a.get("class", ""))
    return found


def table_advantages(w, scale):
    return np.array([float(t) for _, (t, _) in sorted(cells(w.values.value, kind="adv", scale=scale).items())])


@pytest.mark.parametrize(
    "setting", [[0, 0, 0, 1, 0.5, 0.5, 0.5, 0.6], [1, 1, 1, 1, 0, 0.3, 0.9, 0.2], [0.1, 0.7, 0.7, 0.2, 1, 0, 1, 0]]
)
def test_values_table_equals_group_advantages(setting):
    w = advantage_explorer([0.5] * 8, num_generations=4)
    assert "grpo-lab-advantage-explorer" in w._dom_classes
    assert "grpo-lab-values" in w.values._dom_classes and "grpo-lab-figure" in w.output._dom_classes
    assert [s.description for s in w.sliders[:5]] == ["g1.1", "g1.2", "g1.3", "g1.4", "g2.1"]
    for s, v in zip(w.sliders, setting):
        s.value = v
    vals = torch.tensor([s.value for s in w.sliders], dtype=torch.float64)
    assert '<table class="grpo-lab-adv-table">' in w.values.value
    rewards = cells(w.values.value, kind="reward")
    assert [t for _, (t, _) in sorted(rewards.items())] == [f"{v:+.4f}" for v in vals.tolist()]
    for scale in ("group", "batch", "none"):
        want = group_advantages(vals, 4, scale).numpy()
        assert [f"{a:+.4f}" for a in want] == [f"{a:+.4f}" for a in table_advantages(w, scale)]


def test_slider_change_changes_figure_and_table():
    w = advantage_explorer([0, 0, 0, 1, 0.5, 0.5, 0.5, 0.6], num_generations=4)
    png, table = shown_png(w.output), w.values.value
    assert png is not None and png.startswith(b"\x89PNG")
    w.sliders[2].value = 0.7
    assert shown_png(w.output) != png and w.values.value != table
    assert len(w.output.outputs) == 1


def test_batch_scaling_highlights_other_groups_only():
    w = advantage_explorer([0, 0, 0, 1, 0.5, 0.5, 0.5, 0.6], num_generations=4)
    assert 'class="changed"' not in w.values.value and w.cross_group.value == ""
    before = table_advantages(w, "batch")
    group_before = table_advantages(w, "group")
    w.sliders[7].value = 1.0  # an edit in group 2
    changed = {i for i, (_, c) in cells(w.values.value, kind="adv", scale="batch").items() if c == "changed"}
    batch_cells = cells(w.values.value, kind="adv", scale="batch")
    moved = {i for i in range(4) if batch_cells[i][0] != f"{before[i]:+.4f}"}
    assert moved and changed == moved <= {0, 1, 2, 3}  # group 1's cells, nothing in the edited group 2
    assert all(c == "" for s in ("group", "none") for _, c in cells(w.values.value, kind="adv", scale=s).values())
    np.testing.assert_array_equal(table_advantages(w, "group")[:4], group_before[:4])  # group scaling: untouched
    assert "group 1" in w.cross_group.value and "g2.4" in w.cross_group.value
    # the next edit replaces the highlight: a change inside group 1 with group 2 flat -> group 2 cells move
    w.sliders[0].value = 0.3
    changed = {i for i, (_, c) in cells(w.values.value, kind="adv", scale="batch").items() if c == "changed"}
    assert changed and changed <= {4, 5, 6, 7} and "group 2" in w.cross_group.value


def test_cross_group_changes_by_scale():
    before, after = [0, 0, 0, 1, 0.5, 0.5, 0.5, 0.6], [0, 0, 0, 1, 0.5, 0.5, 0.5, 1.0]
    assert cross_group_changes(before, after, 7, 4, "batch") == [0, 1, 2, 3]
    assert cross_group_changes(before, after, 7, 4, "group") == []
    assert cross_group_changes(before, after, 7, 4, "none") == []
    html = advantage_values_html(after, 4, changed=[1])
    assert 'data-kind="adv" data-scale="batch" data-i="1" class="changed"' in html
    assert 'data-scale="group" data-i="1" class' not in html


def test_values_table_carries_no_style_block():
    """A stored notebook keeps the widget's HTML: a <style> block there shows as CSS text on GitHub (and in the
    plain-text fallback), so every cell is styled inline and no noise pattern of the clean-output test matches."""
    from tools.output_noise import NOISE_PATTERNS

    html = advantage_values_html([0, 0, 0, 1, 0.5, 0.5, 0.5, 0.6], 4, changed=[0])
    assert not [p.name for p in NOISE_PATTERNS if p.regex.search(html)]
    assert html.count("<td") == html.count('style="padding:0 6px') == 32
    assert "font-weight:bold" in html  # the changed cell keeps its highlight
