"""Advantage explorer and loss explorer: GRPO's two formulas, made draggable (core ipywidgets + matplotlib).

- ``advantage_explorer``: one slider per completion reward (groups of G side by side); bar charts of the
  advantages under ``scale_rewards`` = "group", "batch" and "none" (``grpo_lab.grpo.group_advantages``), and
  a status line that calls out zero-variance groups: all rewards equal -> advantages 0 -> no gradient.
- ``loss_explorer``: the per-token clipped surrogate ``min(r A, clip(r, 1 - eps, 1 + eps_high) A)`` against
  the ratio r, for A > 0 and A < 0, with the flat (zero-gradient) regions shaded; sliders for ``epsilon``
  and ``epsilon_high`` show DAPO's clip-higher (arXiv 2503.14476).

Design: the numbers come from pure functions (``advantage_table``, ``zero_variance_groups``,
``clipped_objective``, ``clip_region``) and the figures from ``plot_*`` functions that take an optional
``ax``; the widget builders only wire sliders to them. So everything is testable without a browser, and
the same plots work in a static notebook (or a PDF) where widgets do not render.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from grpo_lab.grpo import SCALE_REWARDS, group_advantages

ZERO_STD_TOL = 1e-8  # rewards closer than this count as equal (TRL uses isclose on the std)


# --------------------------------------------------------------------------------------------------
# Pure computation
# --------------------------------------------------------------------------------------------------


def advantage_table(rewards: Sequence[float], num_generations: int,
                    scales: Sequence[str] = SCALE_REWARDS) -> dict[str, np.ndarray]:
    """Advantages of ``rewards`` (groups of ``num_generations`` consecutive) under each ``scale_rewards``.

    Returns ``{scale: float64 array [B]}``, computed by ``grpo_lab.grpo.group_advantages`` (TRL 1.16's rule):
    ``(R - mean_group) / (std + 1e-4)`` with the group's std ("group") or the batch's ("batch"), or only
    centered ("none").
    """
    r = torch.as_tensor(np.asarray(rewards, dtype=np.float64))
    return {s: group_advantages(r, num_generations, s).numpy() for s in scales}


def zero_variance_groups(rewards: Sequence[float], num_generations: int) -> list[bool]:
    """For each group, True when all its rewards are equal: its advantages are 0 and it teaches nothing.

    (DAPO's dynamic sampling, arXiv 2503.14476, drops such groups and samples more prompts instead.)
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, num_generations)
    return [bool(np.ptp(g) <= ZERO_STD_TOL) for g in r]


def describe_groups(rewards: Sequence[float], num_generations: int) -> list[str]:
    """One plain-English line per group: its rewards and whether it carries a learning signal."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, num_generations)
    lines = []
    for k, (g, flat) in enumerate(zip(r, zero_variance_groups(rewards, num_generations))):
        vals = ", ".join(f"{x:g}" for x in g)
        if flat:
            lines.append(f"group {k + 1} ({vals}): all rewards equal -> advantages 0 -> no gradient")
        else:
            best = int(np.argmax(g))
            lines.append(f"group {k + 1} ({vals}): mean {g.mean():.3g}; completion {best + 1} is pushed up most")
    return lines


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


# --------------------------------------------------------------------------------------------------
# Plots (usable without widgets)
# --------------------------------------------------------------------------------------------------


def plot_advantages(rewards: Sequence[float], num_generations: int, axes=None, scales: Sequence[str] = SCALE_REWARDS):
    """Bar charts of the advantages under each scaling, side by side; zero-variance groups shaded grey.

    Returns the matplotlib figure. ``axes``: a sequence of ``len(scales)`` axes to draw into (optional).
    """
    import matplotlib.pyplot as plt

    table = advantage_table(rewards, num_generations, scales)
    flat = zero_variance_groups(rewards, num_generations)
    B = len(table[scales[0]])
    if axes is None:
        fig, axes = plt.subplots(1, len(scales), figsize=(4 * len(scales), 3.2), sharey=True, squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    x = np.arange(B)
    group_colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = [group_colors[(i // num_generations) % len(group_colors)] for i in range(B)]
    lim = max(2.0, max(float(np.abs(a).max()) for a in table.values()) * 1.15)
    for ax, s in zip(axes, scales):
        a = table[s]
        ax.bar(x, a, color=colors)
        for k, is_flat in enumerate(flat):
            if is_flat:
                ax.axvspan(k * num_generations - 0.5, (k + 1) * num_generations - 0.5, color="0.85", zorder=0)
                ax.text((k + 0.5) * num_generations - 0.5, lim * 0.8, "no signal", ha="center", fontsize=8)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(f'scale_rewards="{s}"')
        ax.set_xticks(x, [f"{r:g}" for r in rewards], fontsize=8)
        ax.set_xlabel("reward of each completion")
        ax.set_ylim(-lim, lim)
    axes[0].set_ylabel("advantage A")
    fig.tight_layout()
    return fig


def plot_clipped_objective(epsilon: float = 0.2, epsilon_high: float | None = None, axes=None,
                           ratio_range: tuple[float, float] = (0.0, 2.0)):
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


# --------------------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------------------


def _show(out, fig) -> None:
    """Replace ``out``'s content with ``fig`` as a PNG.

    Setting the ``outputs`` trait (instead of ``with out: display(fig)``) swaps the image in one step, so it
    does not flicker, and it works the same in JupyterLab, Colab and a test without a kernel.
    """
    import base64
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    out.outputs = ({"output_type": "display_data", "metadata": {},
                    "data": {"image/png": png, "text/plain": "<figure>"}},)


def advantage_explorer(rewards: Sequence[float] | None = None, num_generations: int = 4,
                       reward_range: tuple[float, float] = (0.0, 1.0), step: float = 0.1):
    """A slider per completion reward; live bars of the advantages under group / batch / none scaling.

    ``rewards`` (default: two groups, one with signal and one where every answer is right) sets the number
    of completions; it must be a multiple of ``num_generations``. Returns an ``ipywidgets.VBox`` with
    attributes ``sliders``, ``status`` (an HTML line per group), ``output`` and ``refresh()``.
    """
    import ipywidgets as W

    if rewards is None:
        rewards = [0.0, 0.0, 0.0, 1.0] + [1.0] * num_generations
    rewards = [float(x) for x in rewards]
    advantage_table(rewards, num_generations, ("none",))  # validate the layout up front (clear ValueError)
    lo, hi = min(reward_range[0], *rewards), max(reward_range[1], *rewards)
    sliders = [
        W.FloatSlider(value=r, min=lo, max=hi, step=step, description=f"g{i // num_generations + 1}.{i % num_generations + 1}",
                      continuous_update=False, readout_format=".2f", layout=W.Layout(width="260px"))
        for i, r in enumerate(rewards)
    ]
    status = W.HTML()
    out = W.Output()
    all_equal = W.Button(description="make group 1 all equal", tooltip="set every reward of group 1 to its first")
    reset = W.Button(description="reset")

    def refresh(*_):
        vals = [s.value for s in sliders]
        lines = describe_groups(vals, num_generations)
        status.value = "<br>".join(
            (f"<b style='color:#b00'>{ln}</b>" if "no gradient" in ln else ln) for ln in lines
        )
        _show(out, plot_advantages(vals, num_generations))

    def on_all_equal(_):
        for s in sliders[1:num_generations]:
            s.value = sliders[0].value
        refresh()

    def on_reset(_):
        for s, r in zip(sliders, rewards):
            s.value = r
        refresh()

    for s in sliders:
        s.observe(refresh, names="value")
    all_equal.on_click(on_all_equal)
    reset.on_click(on_reset)
    rows = [W.HBox(sliders[k:k + num_generations]) for k in range(0, len(sliders), num_generations)]
    box = W.VBox([W.HTML("<b>Rewards</b> (one row per prompt, G completions each)"), *rows,
                  W.HBox([all_equal, reset]), status, out])
    box.sliders, box.status, box.output, box.refresh = sliders, status, out, refresh
    refresh()
    return box


def loss_explorer(epsilon: float = 0.2, epsilon_high: float = 0.28):
    """Sliders for ``epsilon`` and ``epsilon_high``; live plot of the clipped objective for A > 0 and A < 0.

    Returns an ``ipywidgets.VBox`` with attributes ``epsilon``, ``epsilon_high`` (the sliders), ``status``,
    ``output`` and ``refresh()``. The status line gives the ratio interval in which a token still gets a
    gradient for each sign of the advantage.
    """
    import ipywidgets as W

    eps = W.FloatSlider(value=epsilon, min=0.0, max=0.5, step=0.01, description="epsilon", continuous_update=False)
    eps_h = W.FloatSlider(value=epsilon_high, min=0.0, max=0.5, step=0.01, description="epsilon_high",
                          continuous_update=False)
    status = W.HTML()
    out = W.Output()

    def refresh(*_):
        e, eh = eps.value, eps_h.value
        note = "" if eh >= e else " <b style='color:#b00'>(epsilon_high &lt; epsilon: TRL configs should not do this)</b>"
        status.value = (
            f"A &gt; 0: gradient while r &lt; {1 + eh:.2f} (clip-higher lets rare good tokens grow further); "
            f"A &lt; 0: gradient while r &gt; {1 - e:.2f}.{note}"
        )
        _show(out, plot_clipped_objective(e, eh))

    eps.observe(refresh, names="value")
    eps_h.observe(refresh, names="value")
    box = W.VBox([W.HBox([eps, eps_h]), status, out])
    box.epsilon, box.epsilon_high, box.status, box.output, box.refresh = eps, eps_h, status, out, refresh
    refresh()
    return box


__all__ = [
    "advantage_table",
    "zero_variance_groups",
    "describe_groups",
    "clipped_objective",
    "clip_region",
    "plot_advantages",
    "plot_clipped_objective",
    "advantage_explorer",
    "loss_explorer",
]
