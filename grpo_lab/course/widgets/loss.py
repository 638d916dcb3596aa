"""The loss explorer: GRPO's per-token clipped objective at a point you choose (core ipywidgets + matplotlib).

The per-token objective is TRL 1.16's (``grpo_lab.grpo.grpo_loss_terms``; the loss is its negative)::

    J(r, A) = min(r A, clip(r, 1 - epsilon, 1 + epsilon_high) A)

Sliders set the ratio r = pi_theta / pi_old, the advantage A and the two clip edges; the widget shows J, its
gradient dJ/dr (A where the token is unclipped, 0 where the clip holds it) and whether the token is clipped,
as a table and as a point on two curves. ``epsilon_high > epsilon`` is DAPO's clip-higher (arXiv 2503.14476).

The numbers come from pure functions (``clipped_objective``, ``clip_region``, ``objective_gradient``,
``loss_point``) and the pictures from ``plot_*`` functions, so they are tested without a browser.
"""

from __future__ import annotations

import numpy as np

from grpo_lab.course.widgets.render import figure_output, show_figure, signed, td, values_html

LOSS_EXPLORER_CLASS = "grpo-lab-loss-explorer"


def clipped_objective(ratio, advantage: float, epsilon: float = 0.2, epsilon_high: float | None = None) -> np.ndarray:
    """PPO/GRPO per-token surrogate objective (to maximize; the loss is its negative)::

        J(r) = min(r A, clip(r, 1 - epsilon, 1 + epsilon_high) A)

    For A > 0 it is flat for r > 1 + epsilon_high (no reason to push further); for A < 0 it is flat for
    r < 1 - epsilon. Elsewhere it is the unclipped r A.
    """
    eh = epsilon if epsilon_high is None else epsilon_high
    r = np.asarray(ratio, dtype=np.float64)
    return np.minimum(r * advantage, np.clip(r, 1 - epsilon, 1 + eh) * advantage)


def clip_region(ratio, advantage: float, epsilon: float = 0.2, epsilon_high: float | None = None) -> np.ndarray:
    """Boolean mask: True where the clip is active, i.e. the objective is flat and the token gets no gradient.

    Same definition as TRL's clip metrics: ``r > 1 + epsilon_high`` with A > 0 (high), ``r < 1 - epsilon``
    with A < 0 (low).
    """
    eh = epsilon if epsilon_high is None else epsilon_high
    r = np.asarray(ratio, dtype=np.float64)
    return ((r > 1 + eh) & (advantage > 0)) | ((r < 1 - epsilon) & (advantage < 0))


def objective_gradient(ratio, advantage: float, epsilon: float = 0.2, epsilon_high: float | None = None) -> np.ndarray:
    """dJ/dr of ``clipped_objective``: ``A`` where the token is unclipped, ``0`` where ``clip_region`` holds.

    This is what autograd gives for TRL's loss (its negative): the min passes the gradient of the branch it
    picks, and the clipped branch is a constant in r. On a clip edge itself the token still counts as
    unclipped (TRL's clip metrics use strict inequalities, and torch's clamp passes the gradient there).
    """
    r = np.asarray(ratio, dtype=np.float64)
    return np.where(clip_region(r, advantage, epsilon, epsilon_high), 0.0, float(advantage))


def loss_point(ratio: float, advantage: float, epsilon: float = 0.2, epsilon_high: float | None = None) -> dict:
    """The explorer's numbers at one token: ``{"objective": J, "gradient": dJ/dr, "clipped": bool, "side": s}``,
    ``s`` = "high" (A > 0, r > 1 + epsilon_high), "low" (A < 0, r < 1 - epsilon) or "" (unclipped)."""
    eh = epsilon if epsilon_high is None else epsilon_high
    clipped = bool(clip_region(ratio, advantage, epsilon, eh))
    side = ("high" if advantage > 0 else "low") if clipped else ""
    return {
        "objective": float(clipped_objective(ratio, advantage, epsilon, eh)),
        "gradient": float(objective_gradient(ratio, advantage, epsilon, eh)),
        "clipped": clipped,
        "side": side,
    }


def plot_clipped_objective(
    epsilon: float = 0.2, epsilon_high: float | None = None, axes=None, ratio_range: tuple[float, float] = (0.0, 2.0)
):
    """The clipped surrogate against the ratio for A = +1 and A = -1, flat (zero-gradient) parts shaded."""
    import matplotlib.pyplot as plt

    eh = epsilon if epsilon_high is None else epsilon_high
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    r = np.linspace(*ratio_range, 401)
    for ax, A in zip(axes, (1.0, -1.0)):
        ax.plot(r, r * A, ls=":", color="0.5", label="unclipped r*A")
        ax.plot(r, clipped_objective(r, A, epsilon, eh), lw=2.2, label="min(r A, clip(r) A)")
        flat = clip_region(r, A, epsilon, eh)
        ax.fill_between(r, -2.2, 2.2, where=flat, color="tab:red", alpha=0.12, label="clipped: no gradient")
        for edge in (1 - epsilon, 1 + eh):
            ax.axvline(edge, color="tab:red", lw=0.8, ls="--")
        ax.axvline(1.0, color="k", lw=0.6)
        ax.set_title(f"A = {A:+g}   (clip range [{1 - epsilon:.2f}, {1 + eh:.2f}])")
        ax.set_xlabel("ratio r = pi_theta / pi_old")
        ax.set_ylim(-2.2, 2.2)
        ax.set_xlim(*ratio_range)
    axes[0].set_ylabel("per-token objective")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_loss_point(
    ratio: float,
    advantage: float,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    ratio_range: tuple[float, float] = (0.0, 2.0),
):
    """Two panels for one advantage A: the objective J(r) and its gradient dJ/dr against r, the clipped
    (zero-gradient) range shaded, and the chosen ``ratio`` marked on both. Returns the figure."""
    import matplotlib.pyplot as plt

    eh = epsilon if epsilon_high is None else epsilon_high
    fig, (ax_j, ax_g) = plt.subplots(1, 2, figsize=(9, 3.2))
    r = np.linspace(*ratio_range, 401)
    p = loss_point(ratio, advantage, epsilon, eh)
    lim = max(2.2, abs(advantage) * ratio_range[1] * 1.1)
    flat = clip_region(r, advantage, epsilon, eh)
    for ax in (ax_j, ax_g):
        ax.fill_between(r, -lim, lim, where=flat, color="tab:red", alpha=0.12, label="clipped: no gradient")
        for edge in (1 - epsilon, 1 + eh):
            ax.axvline(edge, color="tab:red", lw=0.8, ls="--")
        ax.axvline(ratio, color="tab:blue", lw=0.6)
        ax.set_xlabel("ratio r = pi_theta / pi_old")
        ax.set_xlim(*ratio_range)
    ax_j.plot(r, r * advantage, ls=":", color="0.5", label="unclipped r*A")
    ax_j.plot(r, clipped_objective(r, advantage, epsilon, eh), lw=2.2, label="J = min(r A, clip(r) A)")
    ax_j.plot([ratio], [p["objective"]], "o", color="tab:blue", ms=8)
    ax_j.set_ylim(-lim, lim)
    ax_j.set_title(f"objective at r = {ratio:.2f}, A = {advantage:+.2f}: {p['objective']:+.3f}", fontsize=9)
    ax_j.legend(fontsize=7, loc="upper left")
    # The gradient is a step function; drawing it with steps makes the jump at the clip edge visible.
    ax_g.step(r, objective_gradient(r, advantage, epsilon, eh), where="mid", lw=2.2, color="tab:green")
    ax_g.plot([ratio], [p["gradient"]], "o", color="tab:blue", ms=8)
    glim = max(1.0, abs(advantage) * 1.3)
    ax_g.set_ylim(-glim, glim)
    ax_g.axhline(0, color="k", lw=0.6)
    ax_g.set_title(f"gradient dJ/dr: {p['gradient']:+.3f}" + ("  (clipped)" if p["clipped"] else ""), fontsize=9)
    fig.tight_layout()
    return fig


def loss_values_html(ratio: float, advantage: float, epsilon: float, epsilon_high: float) -> str:
    """The explorer's table: ``<table class="grpo-lab-loss-table">`` with one row and cells
    ``<td data-kind="objective">``, ``<td data-kind="gradient">`` (text ``{:+.4f}``) and
    ``<td data-kind="clipped">`` (text "yes" or "no"; ``data-side`` "high", "low" or ""), after the inputs
    ``data-kind`` "ratio", "advantage" and "clip_range" (``[1 - epsilon, 1 + epsilon_high]``)."""
    p = loss_point(ratio, advantage, epsilon, epsilon_high)
    head = "".join(f"<th>{h}</th>" for h in ("r", "A", "clip range", "objective J", "gradient dJ/dr", "clipped"))
    row = (
        td(signed(ratio), kind="ratio")
        + td(signed(advantage), kind="advantage")
        + td(f"[{1 - epsilon:.2f}, {1 + epsilon_high:.2f}]", kind="clip_range")
        + td(signed(p["objective"]), kind="objective")
        + td(signed(p["gradient"]), kind="gradient")
        + td("yes" if p["clipped"] else "no", kind="clipped", side=p["side"])
    )
    return f'<table class="grpo-lab-loss-table"><tr>{head}</tr><tr>{row}</tr></table>'


def loss_explorer(epsilon: float = 0.2, epsilon_high: float = 0.28, ratio: float = 1.1, advantage: float = 1.0):
    """Sliders ``ratio``, ``advantage``, ``epsilon``, ``epsilon_high``; the objective, its gradient and the clip
    state at that point (table and plot), following TRL 1.16's per-token loss (see the module docstring).

    Returns an ``ipywidgets.VBox`` (class ``grpo-lab-loss-explorer``) with attributes ``ratio``,
    ``advantage``, ``epsilon``, ``epsilon_high`` (the sliders), ``values`` (the table, class
    ``grpo-lab-values``), ``status`` (where the token still gets a gradient), ``output`` (the figure, class
    ``grpo-lab-figure``) and ``refresh()``.
    """
    import ipywidgets as W

    def slider(name, value, lo, hi, step):
        s = W.FloatSlider(
            value=value,
            min=lo,
            max=hi,
            step=step,
            description=name,
            continuous_update=False,
            readout_format=".2f",
            style={"description_width": "90px"},
            layout=W.Layout(width="330px"),
        )
        s.add_class(f"grpo-lab-slider-{name.replace('_', '-')}")
        return s

    r_s, a_s = slider("ratio", ratio, 0.5, 1.5, 0.01), slider("advantage", advantage, -2.0, 2.0, 0.1)
    eps, eps_h = slider("epsilon", epsilon, 0.0, 0.5, 0.01), slider("epsilon_high", epsilon_high, 0.0, 0.5, 0.01)
    values, status, out = values_html(), W.HTML(), figure_output()

    def refresh(*_):
        r, a, e, eh = r_s.value, a_s.value, eps.value, eps_h.value
        note = (
            "" if eh >= e else " <b style='color:#b00'>(epsilon_high &lt; epsilon: TRL configs should not do this)</b>"
        )
        status.value = (
            f"A &gt; 0: gradient while r &lt; {1 + eh:.2f} (clip-higher lets rare good tokens grow further); "
            f"A &lt; 0: gradient while r &gt; {1 - e:.2f}.{note}"
        )
        values.value = loss_values_html(r, a, e, eh)
        show_figure(out, plot_loss_point(r, a, e, eh))

    for s in (r_s, a_s, eps, eps_h):
        s.observe(refresh, names="value")
    box = W.VBox([W.HBox([r_s, a_s]), W.HBox([eps, eps_h]), values, status, out])
    box.add_class(LOSS_EXPLORER_CLASS)
    box.ratio, box.advantage, box.epsilon, box.epsilon_high = r_s, a_s, eps, eps_h
    box.values, box.status, box.output, box.refresh = values, status, out, refresh
    refresh()
    return box


__all__ = [
    "clipped_objective",
    "clip_region",
    "objective_gradient",
    "loss_point",
    "plot_clipped_objective",
    "plot_loss_point",
    "loss_values_html",
    "loss_explorer",
    "LOSS_EXPLORER_CLASS",
]
