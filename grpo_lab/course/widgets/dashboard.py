"""A live training dashboard: a callback that redraws a matplotlib figure of the diagnostics every N steps.

Design notes:

- It is a plain callable ``dashboard(record)``, the callback protocol of both backends
  (``trainer.GRPOTrainer(callbacks=[...])`` and ``trl_backend.train_with_trl(callbacks=[...])``), so the
  same dashboard watches either.
- In a notebook with ipywidgets it draws into an ``ipywidgets.Output`` (classes ``grpo-lab-dashboard`` and
  ``grpo-lab-figure``) whose image is replaced in place by ``render.show_figure`` (no scrolling wall of
  figures). Setting the Output's ``outputs`` trait is sent to the page at once, so the plot moves while the
  training cell is still running. Without widgets (a terminal, an automated run, a frontend without the widget manager) it
  degrades to one printed line per update, and says so once.
- It plots what to watch instead of the loss (TRL's logged names): reward, held-out accuracy, the share of
  zero-variance groups, entropy, KL and clip fractions when present.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from grpo_lab.course.widgets.render import figure_output, show_figure

DEFAULT_PANELS = ("reward", "eval_accuracy", "frac_reward_zero_std", "entropy")
DASHBOARD_CLASS = "grpo-lab-dashboard"


def series(history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of ``key`` over the records that have a finite value for it."""
    pts = [
        (r["step"], float(r[key]))
        for r in history
        if r.get(key) is not None and not (isinstance(r[key], float) and math.isnan(r[key]))
    ]
    return ([s for s, _ in pts], [v for _, v in pts]) if pts else ([], [])


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and "IPKernelApp" in getattr(ip, "config", {})
    except Exception:
        return False


class TrainingDashboard:
    """Callback that keeps the history and redraws ``panels`` every ``every`` steps (and on ``close()``).

    ``use_widgets``: None = auto (an IPython kernel with ipywidgets), False = print lines. ``title``: figure
    title. After training, ``history`` holds every record received; ``figure()`` returns a final figure.
    """

    def __init__(
        self,
        every: int = 10,
        panels: Sequence[str] = DEFAULT_PANELS,
        title: str = "GRPO",
        use_widgets: bool | None = None,
        label: str = "",
    ):
        self.every, self.panels, self.title, self.label = max(1, every), tuple(panels), title, label
        self.history: list[dict] = []
        self.use_widgets = _widgets_available() if use_widgets is None else use_widgets
        self.out = None
        self.lines_printed = 0
        if self.use_widgets:
            from IPython.display import display

            self.out = figure_output(DASHBOARD_CLASS)
            display(self.out)
        else:
            print(f"[dashboard] widgets unavailable: printing every {self.every} steps")

    def __call__(self, record: dict) -> None:
        self.history.append(dict(record))
        if record["step"] % self.every == 0:
            self.update()

    def line(self, record: dict) -> str:
        """One text line with the panels' latest values (the fallback display)."""
        parts = [f"step {record['step']:4d}"]
        for k in self.panels:
            _, v = series(self.history, k)
            if v:
                parts.append(f"{k} {v[-1]:.3f}")
        return (self.label + " " if self.label else "") + " | ".join(parts)

    def figure(self):
        """A matplotlib figure with one panel per key (empty panels say "no data yet")."""
        import matplotlib.pyplot as plt

        n = len(self.panels)
        fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 2.8), squeeze=False)
        for ax, key in zip(axes[0], self.panels):
            x, y = series(self.history, key)
            if x:
                ax.plot(x, y, "o-" if key == "eval_accuracy" else "-", lw=1.5, ms=3)
            else:
                ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, alpha=0.5)
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.grid(alpha=0.3)
        fig.suptitle(self.title, fontsize=10)
        fig.tight_layout()
        return fig

    def update(self) -> None:
        """Redraw (widgets: the Output's single image is replaced) or print a line (fallback) for the latest record."""
        if not self.history:
            return
        if self.out is None:
            print(self.line(self.history[-1]), flush=True)
            self.lines_printed += 1
            return
        show_figure(self.out, self.figure())

    def close(self) -> None:
        """Final redraw, so the last steps are shown even when ``max_steps`` is not a multiple of ``every``."""
        self.update()
