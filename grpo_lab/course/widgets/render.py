"""How every widget of the course puts a figure on the page, and the small HTML pieces they share.

One pattern for all of them: draw the matplotlib figure, encode it as a PNG, and set the ``outputs`` trait of
an ``ipywidgets.Output`` to a one-element tuple holding that image. Assigning the trait replaces the previous
image in one step and is sent to the page at once, also while a cell is still running (a training loop).
The alternative, ``with out: clear_output(wait=True); display(fig)``, depends on the frontend routing
output into the widget; some frontends stack the figures or never update them.

The values next to a figure are an HTML table whose cells carry ``data-*`` attributes, so a reader sees the
numbers and a program (a test in a browser) can find them without parsing the picture.
"""

from __future__ import annotations

import base64
import html
import io

FIGURE_CLASS = "grpo-lab-figure"  # on every figure Output
VALUES_CLASS = "grpo-lab-values"  # on every HTML widget holding a values table
DEFAULT_DPI = 90


def figure_png(fig, dpi: int = DEFAULT_DPI) -> bytes:
    """The PNG bytes of a matplotlib figure (tight bounding box), closing the figure.

    Closing matters: a figure left open is also drawn by the notebook's inline backend at the end of the
    cell, which would show it twice.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def show_figure(out, fig, dpi: int = DEFAULT_DPI) -> None:
    """Replace everything in the ``ipywidgets.Output`` ``out`` with ``fig`` as a PNG (and close ``fig``).

    Contract: afterwards ``out.outputs`` is a one-element tuple with a ``display_data`` whose
    ``data["image/png"]`` is the base64 PNG of ``fig``, whatever was there before (replace, never append).
    Setting the trait sends the new state to the page immediately, so this works the same in JupyterLab,
    Notebook 7, VS Code and Colab, during a running cell too, and in a test without a kernel.
    """
    png = base64.b64encode(figure_png(fig, dpi)).decode("ascii")
    out.outputs = (
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": png, "text/plain": "<figure>"}},
    )


def shown_png(out) -> bytes | None:
    """The PNG bytes that ``show_figure`` last put in ``out`` (None when it holds no image)."""
    for o in getattr(out, "outputs", ()):
        png = o.get("data", {}).get("image/png")
        if png:
            return base64.b64decode(png)
    return None


def figure_output(*classes: str):
    """A new ``ipywidgets.Output`` carrying ``FIGURE_CLASS`` (and ``classes``) for ``show_figure`` to draw into."""
    import ipywidgets as W

    out = W.Output()
    for c in (FIGURE_CLASS, *classes):
        out.add_class(c)
    return out


def values_html():
    """A new ``ipywidgets.HTML`` carrying ``VALUES_CLASS``: where a widget writes its table of numbers."""
    import ipywidgets as W

    box = W.HTML()
    box.add_class(VALUES_CLASS)
    return box


def td(text, css_class: str = "", style: str = "", **data) -> str:
    """One ``<td>`` cell: ``text`` HTML-escaped, each keyword ``k=v`` written as ``data-k="v"``
    (underscores in ``k`` become dashes), then an optional ``class`` and inline ``style``."""
    attrs = "".join(f' data-{k.replace("_", "-")}="{html.escape(str(v), quote=True)}"' for k, v in data.items())
    cls = f' class="{css_class}"' if css_class else ""
    # Inline style as well as a class: a frontend that drops <style> blocks from widget HTML still shows it.
    sty = f' style="{style}"' if style else ""
    return f"<td{attrs}{cls}{sty}>{html.escape(str(text))}</td>"


def signed(x: float) -> str:
    """A value as every table shows it: ``{:+.4f}`` (sign always written, four decimals)."""
    return f"{float(x):+.4f}"


__all__ = [
    "FIGURE_CLASS",
    "VALUES_CLASS",
    "figure_png",
    "show_figure",
    "shown_png",
    "figure_output",
    "values_html",
    "td",
    "signed",
]
