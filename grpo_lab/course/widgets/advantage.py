"""Advantage explorer: GRPO's group-relative advantage, made draggable (core ipywidgets + matplotlib).

``advantage_explorer``: one slider per completion reward (groups of G side by side); bar charts and a table
of the advantages under ``scale_rewards`` = "group", "batch" and "none" (``grpo_lab.grpo.group_advantages``,
TRL 1.16's rule), and a status line that calls out zero-variance groups: all rewards equal -> advantages 0
-> no gradient. Under "batch" the std is taken over the whole batch, so editing one group's reward moves
the other groups' advantages too; the table highlights those cells after each edit.

Design: the numbers come from pure functions (``advantage_table``, ``zero_variance_groups``,
``cross_group_changes``, ``advantage_values_html``) and the figure from ``plot_advantages``, which takes an
optional ``axes``; the widget builder only wires sliders to them. So everything is testable without a
browser, and the same plot works in a static notebook (or a PDF) where widgets do not render.

The loss explorer lives in ``grpo_lab.course.widgets.loss``; its names are re-exported here because the notebooks
import both explorers from this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from grpo_lab.course.widgets.loss import (  # noqa: F401  (re-exported: notebook 03 imports them from here)
    clip_region,
    clipped_objective,
    loss_explorer,
    objective_gradient,
    plot_clipped_objective,
)
from grpo_lab.course.widgets.render import figure_output, show_figure, signed, td, values_html
from grpo_lab.grpo import SCALE_REWARDS, group_advantages

CHANGED_STYLE = "font-weight:bold;color:#c05000;background:#fff1d6"  # cells the last edit moved in other groups
# On every cell, inline: a <style> block would reach a stored notebook, where GitHub shows its CSS as text.
CELL_STYLE = "padding:0 6px;text-align:right;font-family:monospace"
ZERO_STD_TOL = 1e-8  # rewards closer than this count as equal (TRL uses isclose on the std)


# --------------------------------------------------------------------------------------------------
# Pure computation
# --------------------------------------------------------------------------------------------------


def advantage_table(
    rewards: Sequence[float], num_generations: int, scales: Sequence[str] = SCALE_REWARDS
) -> dict[str, np.ndarray]:
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


def cross_group_changes(
    before: Sequence[float], after: Sequence[float], edited: int, num_generations: int, scale: str = "batch"
) -> list[int]:
    """Completions outside the group of completion ``edited`` whose ``scale`` advantage moved when the rewards
    went from ``before`` to ``after`` (a change visible at the tables' four decimals).

    Under "batch" (TRL's scale_rewards="batch") the divisor is the std of every reward in the batch, so one
    edit rescales every group; under "group" and "none" a group's advantages depend on its own rewards only
    and the list is always empty.
    """
    old = advantage_table(before, num_generations, (scale,))[scale]
    new = advantage_table(after, num_generations, (scale,))[scale]
    g = edited // num_generations
    return [i for i in range(len(new)) if i // num_generations != g and signed(old[i]) != signed(new[i])]


def advantage_values_html(
    rewards: Sequence[float], num_generations: int, changed: Sequence[int] = (), scales: Sequence[str] = SCALE_REWARDS
) -> str:
    """The explorer's table, ``<table class="grpo-lab-adv-table">``: a row of rewards, then one row per scaling.

    Cells: ``<td data-kind="reward" data-i="K">`` and ``<td data-kind="adv" data-scale="S" data-i="K">``, K the
    completion index 0..B-1, S a ``scale_rewards`` value; the text is the value as ``{:+.4f}`` and the
    advantages are ``advantage_table`` (``group_advantages`` in float64). Batch-scaled cells whose index is
    in ``changed`` get ``class="changed"`` (drawn bold and coloured).
    """
    table = advantage_table(rewards, num_generations, scales)
    changed = set(changed)
    names = [f"g{i // num_generations + 1}.{i % num_generations + 1}" for i in range(len(rewards))]
    head = "<tr><th></th>" + "".join(f"<th>{n}</th>" for n in names) + "</tr>"
    rows = [
        "<tr><th>reward</th>"
        + "".join(td(signed(x), "", CELL_STYLE, kind="reward", i=i) for i, x in enumerate(rewards))
        + "</tr>"
    ]
    for s in scales:
        hit = [s == "batch" and i in changed for i in range(len(rewards))]
        cells = "".join(
            td(
                signed(a),
                "changed" if hit[i] else "",
                CELL_STYLE + (";" + CHANGED_STYLE if hit[i] else ""),
                kind="adv",
                scale=s,
                i=i,
            )
            for i, a in enumerate(table[s])
        )
        rows.append(f'<tr><th>A, "{s}"</th>{cells}</tr>')
    return f'<table class="grpo-lab-adv-table">{head}{"".join(rows)}</table>'


def cross_group_sentence(edited: int, changed: Sequence[int], num_generations: int) -> str:
    """One plain sentence naming the groups whose batch-scaled advantages moved after editing ``edited``
    (empty when none did)."""
    groups = sorted({i // num_generations + 1 for i in changed})
    if not groups:
        return ""
    who = ", ".join(f"group {g}" for g in groups)
    return (
        f"You edited g{edited // num_generations + 1}.{edited % num_generations + 1}: under "
        f'scale_rewards="batch" the advantages of {who} changed too (highlighted), because the batch std '
        'includes every group\'s rewards; under "group" and "none" they did not move.'
    )


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


# --------------------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------------------


def _reward_sliders(rewards: list[float], num_generations: int, reward_range: tuple[float, float], step: float):
    """One slider per completion, described ``g<group>.<index>`` and carrying class ``grpo-lab-reward-<K>``."""
    import ipywidgets as W

    lo, hi = min(reward_range[0], *rewards), max(reward_range[1], *rewards)
    sliders = []
    for i, r in enumerate(rewards):
        s = W.FloatSlider(
            value=r,
            min=lo,
            max=hi,
            step=step,
            continuous_update=False,
            readout_format=".2f",
            description=f"g{i // num_generations + 1}.{i % num_generations + 1}",
            layout=W.Layout(width="260px"),
        )
        s.add_class(f"grpo-lab-reward-{i}")  # a stable handle for a browser test, next to the description
        sliders.append(s)
    return sliders


def _edit_buttons(sliders, rewards: list[float], num_generations: int):
    """The buttons under the sliders: "make group 1 all equal" and "reset". They only set slider values; each
    change redraws through the sliders' observer."""
    import ipywidgets as W

    all_equal = W.Button(description="make group 1 all equal", tooltip="set every reward of group 1 to its first")
    reset = W.Button(description="reset")

    def on_all_equal(_):
        for s in sliders[1:num_generations]:
            s.value = sliders[0].value

    def on_reset(_):
        for s, r in zip(sliders, rewards):
            s.value = r

    all_equal.on_click(on_all_equal)
    reset.on_click(on_reset)
    return W.HBox([all_equal, reset])


def advantage_explorer(
    rewards: Sequence[float] | None = None,
    num_generations: int = 4,
    reward_range: tuple[float, float] = (0.0, 1.0),
    step: float = 0.1,
):
    """A slider per completion reward; live bars and a table of the advantages under group / batch / none
    scaling (``group_advantages``, TRL 1.16), with the batch-scaling cross-group effect highlighted.

    ``rewards`` (default: two groups, one with signal and one where every answer is right) sets the number
    of completions; it must be a multiple of ``num_generations``. Sliders are described ``g1.1``, ``g1.2``,
    ... (group.index). Returns an ``ipywidgets.VBox`` (class ``grpo-lab-advantage-explorer``) with
    attributes ``sliders``, ``values`` (the table, class ``grpo-lab-values``), ``cross_group`` (the
    sentence naming groups moved by the last edit under batch scaling), ``status`` (an HTML line per group),
    ``output`` (the figure, class ``grpo-lab-figure``) and ``refresh()``.
    """
    import ipywidgets as W

    if rewards is None:
        rewards = [0.0, 0.0, 0.0, 1.0] + [1.0] * num_generations
    rewards = [float(x) for x in rewards]
    advantage_table(rewards, num_generations, ("none",))  # validate the layout up front (clear ValueError)
    sliders = _reward_sliders(rewards, num_generations, reward_range, step)
    status, values, cross, out = W.HTML(), values_html(), W.HTML(), figure_output()
    cross.add_class("grpo-lab-cross-group")
    shown = list(rewards)  # the rewards the table showed before this edit

    def refresh(change=None):
        vals = [s.value for s in sliders]
        edited = (
            sliders.index(change.owner) if change is not None and getattr(change, "owner", None) in sliders else None
        )
        # Compare with what was on screen, so the highlight is exactly "what the last edit moved elsewhere".
        moved = [] if edited is None else cross_group_changes(shown, vals, edited, num_generations)
        shown[:] = vals
        lines = describe_groups(vals, num_generations)
        status.value = "<br>".join((f"<b style='color:#b00'>{ln}</b>" if "no gradient" in ln else ln) for ln in lines)
        values.value = advantage_values_html(vals, num_generations, changed=moved)
        sentence = cross_group_sentence(edited, moved, num_generations) if moved else ""
        cross.value = f"<b style='color:#c05000'>{sentence}</b>" if sentence else ""
        show_figure(out, plot_advantages(vals, num_generations))

    for s in sliders:
        s.observe(refresh, names="value")
    rows = [W.HBox(sliders[k : k + num_generations]) for k in range(0, len(sliders), num_generations)]
    header = W.HTML("<b>Rewards</b> (one row per prompt, G completions each)")
    box = W.VBox([header, *rows, _edit_buttons(sliders, rewards, num_generations), status, values, cross, out])
    box.add_class("grpo-lab-advantage-explorer")
    box.sliders, box.values, box.cross_group = sliders, values, cross
    box.status, box.output, box.refresh = status, out, refresh
    refresh()
    return box


__all__ = [
    "advantage_table",
    "zero_variance_groups",
    "describe_groups",
    "cross_group_changes",
    "advantage_values_html",
    "cross_group_sentence",
    "plot_advantages",
    "advantage_explorer",
    # the loss explorer's names, re-exported from grpo_lab.course.widgets.loss
    "clipped_objective",
    "clip_region",
    "objective_gradient",
    "plot_clipped_objective",
    "loss_explorer",
]
