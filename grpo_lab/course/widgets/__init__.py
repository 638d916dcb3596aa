"""Interactive explorers for the notebooks (core ipywidgets only, so they render in JupyterLab and Colab).

One module per widget family: ``advantage`` (group advantages), ``loss`` (the clipped per-token objective),
``cost`` (ensemble cost calculator), ``dashboard`` (live training plots), and ``render``, the one way they
all put a figure on the page (``show_figure``: replace the ``Output``'s image through its ``outputs`` trait)
and the HTML table cells they share. Each builder returns the widget; the pure functions behind them are
importable and tested without a browser.

Every widget carries CSS classes on its page element (``grpo-lab-advantage-explorer``,
``grpo-lab-loss-explorer``, ``grpo-lab-cost-calculator``, ``grpo-lab-dashboard``; ``grpo-lab-figure`` on each
figure and ``grpo-lab-values`` on each table of numbers), so a test in a real browser can find them.
"""

from grpo_lab.course.widgets.render import show_figure

__all__ = ["show_figure"]
