"""The names of ``grpo_lab.course.widgets.advantage``, which moved there with the course machinery; kept so
that the notebooks' short imports work (notebook 02: ``from grpo_lab.widgets.advantage import ...``)."""

from grpo_lab.course.widgets.advantage import (
    advantage_explorer,
    advantage_table,
    advantage_values_html,
    clip_region,
    clipped_objective,
    cross_group_changes,
    cross_group_sentence,
    describe_groups,
    loss_explorer,
    objective_gradient,
    plot_advantages,
    plot_clipped_objective,
    zero_variance_groups,
)

__all__ = [
    "advantage_table",
    "zero_variance_groups",
    "describe_groups",
    "cross_group_changes",
    "advantage_values_html",
    "cross_group_sentence",
    "plot_advantages",
    "advantage_explorer",
    "clipped_objective",
    "clip_region",
    "objective_gradient",
    "plot_clipped_objective",
    "loss_explorer",
]
