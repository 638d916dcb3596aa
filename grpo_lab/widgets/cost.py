"""The names of ``grpo_lab.course.widgets.cost``, which moved there with the course machinery; kept so
that the notebooks' short imports work (notebook 07: ``from grpo_lab.widgets.cost import ...``)."""

from grpo_lab.course.widgets.cost import (
    COST_CALCULATOR_CLASS,
    DEFAULTS,
    REGION_CODES,
    calculator_state,
    cost_calculator,
    cost_table_html,
    plot_region_map,
    plot_vote_curve,
    region_map,
)

__all__ = [
    "DEFAULTS",
    "REGION_CODES",
    "COST_CALCULATOR_CLASS",
    "calculator_state",
    "region_map",
    "plot_vote_curve",
    "plot_region_map",
    "cost_table_html",
    "cost_calculator",
]
