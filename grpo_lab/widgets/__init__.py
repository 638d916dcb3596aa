"""The widgets moved to ``grpo_lab.course.widgets`` with the rest of the course machinery. This package and its
modules ``advantage``, ``loss``, ``cost`` and ``dashboard`` are kept so that the notebooks' short imports
(``from grpo_lab.widgets.dashboard import TrainingDashboard``) work: each re-exports the module of that name."""
