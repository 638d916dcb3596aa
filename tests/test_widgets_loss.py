"""The loss explorer: its point values against TRL's per-token loss (autograd and finite differences), its
table, and the widget reacting to each slider without a browser."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from grpo_lab.course.widgets.loss import loss_explorer, loss_point, loss_values_html, objective_gradient  # noqa: E402
from grpo_lab.course.widgets.render import shown_png  # noqa: E402
from grpo_lab.grpo import grpo_loss_terms  # noqa: E402

POINTS = [(r, a) for r in (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.35, 1.5) for a in (-1.7, -0.4, 0.6, 2.0)]


def trl_objective_and_grad(r: float, a: float, eps: float, eps_high: float) -> tuple[float, float]:
    """J = -per_token_loss of the library's TRL loss at ratio r, and dJ/dr by autograd through log r."""
    logp = torch.tensor([[np.log(r)]], dtype=torch.float64, requires_grad=True)
    t = grpo_loss_terms(
        logp,
        torch.zeros_like(logp),
        torch.tensor([a], dtype=torch.float64),
        torch.ones_like(logp),
        epsilon=eps,
        epsilon_high=eps_high,
    )
    j = -t.per_token_loss[0, 0]
    (g_logp,) = torch.autograd.grad(j, logp)
    return j.item(), g_logp.item() / r  # dJ/dr = dJ/dlog r / r


@pytest.mark.parametrize("eps,eps_high", [(0.2, 0.28), (0.2, 0.2), (0.1, 0.4)])
def test_point_values_match_trl_loss_autograd_and_finite_differences(eps, eps_high):
    for r, a in POINTS:
        p = loss_point(r, a, eps, eps_high)
        j, g = trl_objective_and_grad(r, a, eps, eps_high)
        assert p["objective"] == pytest.approx(j, abs=1e-12)
        assert p["gradient"] == pytest.approx(g, abs=1e-9), (r, a)
        h = 1e-6
        if abs(r - (1 - eps)) > 1e-3 and abs(r - (1 + eps_high)) > 1e-3:  # not on a kink
            fd = (
                loss_point(r + h, a, eps, eps_high)["objective"] - loss_point(r - h, a, eps, eps_high)["objective"]
            ) / (2 * h)
            assert p["gradient"] == pytest.approx(fd, abs=1e-6)
        assert p["clipped"] == (p["gradient"] == 0.0)


def test_clip_state_by_hand():
    assert loss_point(1.3, 1.0, 0.2, 0.28) == {
        "objective": pytest.approx(1.28),
        "gradient": 0.0,
        "clipped": True,
        "side": "high",
    }
    assert loss_point(1.25, 1.0, 0.2, 0.28)["clipped"] is False  # clip-higher keeps it live
    assert loss_point(0.7, -1.0, 0.2, 0.28)["side"] == "low"
    assert loss_point(0.7, 1.0, 0.2, 0.28)["gradient"] == 1.0  # A > 0 is never clipped from below
    np.testing.assert_array_equal(objective_gradient([0.7, 1.0, 1.3], -2.0), [0.0, -2.0, -2.0])


def td_text(html: str, kind: str) -> str:
    m = re.search(rf'<td data-kind="{kind}"[^>]*>([^<]*)</td>', html)
    assert m, f"no {kind} cell in {html}"
    return m.group(1)


def test_values_table_cells():
    html = loss_values_html(1.4, 0.5, 0.2, 0.28)
    assert '<table class="grpo-lab-loss-table">' in html
    assert td_text(html, "objective") == "+0.6400" and td_text(html, "gradient") == "+0.0000"
    assert td_text(html, "clipped") == "yes"
    html = loss_values_html(1.1, -1.5, 0.2, 0.28)
    assert td_text(html, "objective") == "-1.6500" and td_text(html, "gradient") == "-1.5000"
    assert td_text(html, "clipped") == "no"


def test_widget_follows_each_slider():
    w = loss_explorer(0.2, 0.28, ratio=1.1, advantage=1.0)
    assert "grpo-lab-loss-explorer" in w._dom_classes and "grpo-lab-values" in w.values._dom_classes
    assert "grpo-lab-figure" in w.output._dom_classes
    assert [s.description for s in (w.ratio, w.advantage, w.epsilon, w.epsilon_high)] == [
        "ratio",
        "advantage",
        "epsilon",
        "epsilon_high",
    ]
    assert td_text(w.values.value, "clipped") == "no" and td_text(w.values.value, "gradient") == "+1.0000"
    for slider, value in ((w.ratio, 1.4), (w.advantage, -0.5), (w.epsilon, 0.3), (w.epsilon_high, 0.45)):
        png, html = shown_png(w.output), w.values.value
        slider.value = value
        assert shown_png(w.output) != png and w.values.value != html, slider.description
        r, a, e, eh = w.ratio.value, w.advantage.value, w.epsilon.value, w.epsilon_high.value
        j, g = trl_objective_and_grad(r, a, e, eh)
        assert float(td_text(w.values.value, "objective")) == pytest.approx(j, abs=5e-5)
        assert float(td_text(w.values.value, "gradient")) == pytest.approx(g, abs=5e-5)
        assert len(w.output.outputs) == 1
    w.ratio.value, w.advantage.value = 0.6, -1.0  # r < 1 - 0.3 with A < 0: clipped from below
    assert td_text(w.values.value, "clipped") == "yes" and td_text(w.values.value, "gradient") == "+0.0000"
