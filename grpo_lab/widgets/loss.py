"""The names of ``grpo_lab.course.widgets.loss``, which moved there with the course machinery; kept so
that the notebooks' short imports work (notebook 03: ``from grpo_lab.widgets.loss import ...``)."""

from grpo_lab.course.widgets.loss import (
    LOSS_EXPLORER_CLASS,
    clip_region,
    clipped_objective,
    loss_explorer,
    loss_point,
    loss_values_html,
    objective_gradient,
    plot_clipped_objective,
    plot_loss_point,
)

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
