"""The end-to-end jobs behind the CLI and the notebooks, one module per job, and what they write.

- ``demo``: ``run_demo``, the main job (SFT warm start then GRPO on 2-digit addition, ``grpo-lab demo``).
- ``train``: ``run_train``, one training job for every preset with an honest baseline (``grpo-lab train``,
  notebook 06), and ``task_spec`` for ``grpo-lab eval``.
- ``backends``: ``run_grpo`` (the from-scratch trainer with the course's data seeds, notebooks 04 and 05) and
  ``train_preset`` (either backend, by name), both able to resume from a checkpoint.
- ``teachers``: GRPO-trained tiny teachers for distillation (notebooks 08 and 10), from ``TEACHER_PRESET``.
- ``collapse``: the model-collapse recursion on a tiny LM (notebook 09), generations trained by SFT.
- ``report``: the ``Report`` schema, the atomic writer, the plot, the machine, the progress bar, the
  remembered evaluations of untrained models, and ``environment_report`` (notebook 00).

Every job takes a ``presets.Preset`` or a preset's name, and never changes the registry or the caller's object.
"""

from grpo_lab.jobs.backends import BACKENDS, KeepLatestCheckpoints, run_grpo, save_model, train_preset
from grpo_lab.jobs.demo import HELDOUT_SEED, run_demo
from grpo_lab.jobs.report import (
    ProgressBar,
    Report,
    environment_report,
    evaluate_preset,
    evaluate_untrained,
    machine_info,
    plot_history,
    write_atomic,
    write_json,
)
from grpo_lab.jobs.train import TASK_FILE, previous_run, run_train, task_spec

__all__ = [
    "HELDOUT_SEED",
    "TASK_FILE",
    "BACKENDS",
    "run_demo",
    "run_train",
    "previous_run",
    "run_grpo",
    "train_preset",
    "save_model",
    "task_spec",
    "Report",
    "write_atomic",
    "write_json",
    "plot_history",
    "machine_info",
    "ProgressBar",
    "evaluate_preset",
    "evaluate_untrained",
    "environment_report",
    "KeepLatestCheckpoints",
]
