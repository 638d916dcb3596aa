"""The names of ``grpo_lab.course.widgets.dashboard``, which moved there with the course machinery; kept so
that the notebooks' short imports work (notebook 06: ``from grpo_lab.widgets.dashboard import ...``)."""

from grpo_lab.course.widgets.dashboard import (
    DASHBOARD_CLASS,
    DEFAULT_PANELS,
    TrainingDashboard,
    series,
)

__all__ = [
    "DEFAULT_PANELS",
    "DASHBOARD_CLASS",
    "series",
    "TrainingDashboard",
]
