"""Notebooks stored executed: ``python -m tools.render`` (``make render``) runs each notebook of ``notebooks/``
and ``solutions/`` in full mode and writes its outputs back, so a reader on GitHub or in Colab sees the figures
before running anything.

What a rendered notebook holds (``tidy_notebook``): figures as small PNGs (``outputs.shrink_png``), static
snapshots instead of live widgets (``snapshot``), merged streams with progress lines at their final state, no
path of the machine that rendered it, no timing metadata; ``metadata["grpo_lab"]`` records the hash of the code
that produced the outputs (``code_sha256``), the library version, the wall time and the thread count, and the
first markdown cell states the measured full-mode time. ``stale_message`` tells whether a notebook's code
changed since its render. ``exercises/`` are generated from ``solutions/`` without any of it.
"""

from tools.render.outputs import final_line_state, machine_paths, merge_streams, scrub, shrink_png
from tools.render.run import (
    RenderResult,
    code_sha256,
    kernel_env,
    main,
    notebooks_to_render,
    render_info,
    render_notebook,
    set_time_line,
    stale_message,
    tidy_notebook,
    time_line,
)
from tools.render.snapshot import replace_widget_views, snapshot_outputs

__all__ = [
    "RenderResult",
    "code_sha256",
    "final_line_state",
    "kernel_env",
    "machine_paths",
    "main",
    "merge_streams",
    "notebooks_to_render",
    "render_info",
    "render_notebook",
    "replace_widget_views",
    "scrub",
    "set_time_line",
    "shrink_png",
    "snapshot_outputs",
    "stale_message",
    "tidy_notebook",
    "time_line",
]
