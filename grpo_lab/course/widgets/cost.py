"""Cost calculator: when does an ensemble of small models beat one large model? (ipywidgets + matplotlib)

- Left plot: expected vote accuracy against ensemble size for the chosen member accuracy, for independent
  members and for the chosen error correlation (shared item difficulty), with the large model's accuracy
  as a line; the cost of each ensemble size is on a second axis.
- Right plot: a map over (member accuracy, ensemble size) of who wins: the ensemble dominates (at least as
  accurate and no more costly), the single model dominates, or it is a trade-off (cheaper but less
  accurate); the cost-per-correct-answer winner is marked in the trade-off region.

Costs are FLOPs (2 x params x tokens; ``grpo_lab.cost``), so the calculator ships no prices. The numbers
come from ``calculator_state`` and the figures from ``plot_*`` functions taking an optional ``ax``; the
builder only wires sliders to them, so everything is testable without a browser.
"""

from __future__ import annotations

import numpy as np

from grpo_lab.cost import dominance, ensemble_option, single_option, vote_accuracy
from grpo_lab.course.widgets.render import figure_output, show_figure, td, values_html

DEFAULTS = dict(
    large_params=7e9,
    large_accuracy=0.75,
    small_params=0.5e9,
    member_accuracy=0.55,
    n_members=5,
    correlation=0.2,
    n_wrong=20,
    tokens=300,
)
REGION_CODES = {"single": 0, "trade-off": 1, "ensemble": 2}
COST_CALCULATOR_CLASS = "grpo-lab-cost-calculator"


def calculator_state(
    large_params: float,
    large_accuracy: float,
    small_params: float,
    member_accuracy: float,
    n_members: int,
    correlation: float,
    n_wrong: float,
    tokens: float,
    max_members: int = 15,
) -> dict:
    """Everything the calculator shows, as numbers.

    ``sizes``: 1..max_members; ``acc_independent`` / ``acc_correlated``: ``vote_accuracy`` of each size with
    correlation 0 and ``correlation``; ``ensemble_cost``: FLOPs per query of each size; ``single`` and
    ``ensemble``: the two ``Option`` s at ``n_members``; ``verdict``: ``dominance(single, ensemble)``.
    """
    sizes = list(range(1, max_members + 1))
    acc_ind = [vote_accuracy(n, member_accuracy, n_wrong, 0.0) for n in sizes]
    acc_cor = [vote_accuracy(n, member_accuracy, n_wrong, correlation) for n in sizes]
    cost = [ensemble_option("e", small_params, member_accuracy, n, 0, tokens, accuracy=1.0).cost for n in sizes]
    single = single_option(f"single {large_params / 1e9:.3g}B", large_params, large_accuracy, 0, tokens)
    ens = ensemble_option(
        f"{n_members} x {small_params / 1e9:.3g}B vote",
        small_params,
        member_accuracy,
        n_members,
        0,
        tokens,
        n_wrong=n_wrong,
        correlation=correlation,
    )
    return dict(
        sizes=sizes,
        acc_independent=acc_ind,
        acc_correlated=acc_cor,
        ensemble_cost=cost,
        single=single,
        ensemble=ens,
        verdict=dominance(single, ens),
    )


def region_map(
    large_params: float,
    large_accuracy: float,
    small_params: float,
    correlation: float,
    n_wrong: float,
    tokens: float,
    accuracies=None,
    sizes=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Who wins over a grid: returns ``(accuracies, sizes, region, cheaper_per_correct)``, ``region[i, j]`` the
    ``REGION_CODES`` code of ``dominance`` at ``sizes[i]`` members of accuracy ``accuracies[j]``, and
    ``cheaper_per_correct[i, j]`` True where the ensemble's cost per correct answer is lower."""
    accuracies = np.linspace(0.05, 0.95, 19) if accuracies is None else np.asarray(accuracies)
    sizes = np.arange(1, 16) if sizes is None else np.asarray(sizes)
    single = single_option("single", large_params, large_accuracy, 0, tokens)
    region = np.zeros((len(sizes), len(accuracies)), dtype=int)
    cheaper = np.zeros_like(region, dtype=bool)
    for i, n in enumerate(sizes):
        for j, p in enumerate(accuracies):
            e = ensemble_option(
                "e", small_params, float(p), int(n), 0, tokens, n_wrong=n_wrong, correlation=correlation
            )
            region[i, j] = REGION_CODES[dominance(single, e)]
            cheaper[i, j] = e.cost_per_correct < single.cost_per_correct
    return accuracies, sizes, region, cheaper


def plot_vote_curve(state: dict, large_accuracy: float, member_accuracy: float, ax=None):
    """Vote accuracy against ensemble size (independent vs correlated), the large model as a line, and the
    ensemble's FLOPs per query on a twin axis (dashed), with the large model's cost as a dotted line."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    s = state["sizes"]
    ax.plot(s, state["acc_independent"], "o-", label="vote, independent errors")
    ax.plot(s, state["acc_correlated"], "s-", label="vote, correlated errors")
    ax.axhline(large_accuracy, color="k", lw=1.5, label="single large model")
    ax.axhline(member_accuracy, color="gray", ls=":", lw=1, label="one member")
    ax.set_xlabel("ensemble size")
    ax.set_ylabel("expected accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=7)
    ax2 = ax.twinx()
    ax2.plot(s, state["ensemble_cost"], "--", color="tab:red", lw=1)
    ax2.axhline(state["single"].cost, color="tab:red", ls=":", lw=1)
    ax2.set_ylabel("FLOPs per query (red)", color="tab:red")
    ax.set_title(f"{state['ensemble'].name}: {state['verdict']}", fontsize=9)
    return ax


def plot_region_map(
    accuracies, sizes, region, cheaper, member_accuracy: float | None = None, n_members: int | None = None, ax=None
):
    """Colored map of ``region_map``: red = single model dominates, gray = trade-off, green = ensemble
    dominates; dots mark trade-off cells where the ensemble is cheaper per correct answer."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    cmap = ListedColormap(["#e8a0a0", "#dddddd", "#9fd39f"])
    da = (accuracies[1] - accuracies[0]) / 2 if len(accuracies) > 1 else 0.025
    ax.imshow(
        region,
        origin="lower",
        aspect="auto",
        cmap=cmap,
        vmin=0,
        vmax=2,
        extent=[accuracies[0] - da, accuracies[-1] + da, sizes[0] - 0.5, sizes[-1] + 0.5],
    )
    ii, jj = np.nonzero(cheaper & (region == REGION_CODES["trade-off"]))
    ax.plot(accuracies[jj], sizes[ii], ".", color="k", ms=3)
    if member_accuracy is not None and n_members is not None:
        ax.plot([member_accuracy], [n_members], "*", color="tab:blue", ms=12)
    ax.set_xlabel("member accuracy")
    ax.set_ylabel("ensemble size")
    ax.set_title(
        "red: single wins · gray: trade-off (dot: ensemble cheaper per correct) · green: ensemble wins", fontsize=7
    )
    return ax


def cost_table_html(state: dict) -> str:
    """The calculator's numbers as ``<table class="grpo-lab-cost-table">``: rows ``<tr data-option="ensemble">``
    and ``<tr data-option="single">``; cells ``<td data-kind="accuracy">`` (``.3f``), ``data-kind="cost_per_query"``
    (FLOPs per query) and ``data-kind="cost_per_correct"`` (FLOPs per correct answer, ``.3g``), and one
    ``<td data-kind="verdict">`` spanning both rows with ``dominance``'s word: "ensemble", "single" or "trade-off"."""
    e, s = state["ensemble"], state["single"]
    head = "".join(
        f"<th>{h}</th>" for h in ("option", "accuracy", "FLOPs per query", "FLOPs per correct answer", "verdict")
    )
    verdict = f'<td data-kind="verdict" rowspan="2"><b>{state["verdict"]}</b></td>'
    rows = []
    for key, o in (("ensemble", e), ("single", s)):
        cells = (
            f"<th>{key}: {o.name}</th>"
            + td(f"{o.accuracy:.3f}", kind="accuracy")
            + td(f"{o.cost_per_query:.3g}", kind="cost_per_query")
            + td(f"{o.cost_per_correct:.3g}", kind="cost_per_correct")
        )
        rows.append(f'<tr data-option="{key}">{cells}{verdict if key == "ensemble" else ""}</tr>')
    return f'<table class="grpo-lab-cost-table"><tr>{head}</tr>{"".join(rows)}</table>'


# slider name -> (kind, description, range and step). Log sliders step by 0.001 in the exponent: the browser
# snaps a value to min + k*step and sends it back, and with a step of 0.1 the default 0.5B became 0.501B in the
# table a moment after the widget appeared.
_SLIDERS = {
    "large_params": ("log", "large model params", dict(min=8, max=12, step=0.001)),
    "large_accuracy": ("float", "large model accuracy", dict(min=0.05, max=0.99, step=0.01)),
    "small_params": ("log", "small model params", dict(min=7, max=11, step=0.001)),
    "member_accuracy": ("float", "member accuracy", dict(min=0.05, max=0.95, step=0.01)),
    "n_members": ("int", "ensemble size", dict(min=1, max=15)),
    "correlation": ("float", "error correlation", dict(min=0.0, max=0.95, step=0.05)),
    "n_wrong": ("int", "plausible wrong answers", dict(min=1, max=200)),
    "tokens": ("int", "tokens per answer", dict(min=10, max=2000, step=10)),
}


def _controls(values: dict) -> dict:
    """The calculator's sliders (``_SLIDERS``), name -> slider, set to ``values``."""
    import ipywidgets as W

    kinds = {"log": W.FloatLogSlider, "float": W.FloatSlider, "int": W.IntSlider}
    style, lay = {"description_width": "150px"}, W.Layout(width="420px")
    ctl = {}
    for name, (kind, description, limits) in _SLIDERS.items():
        value = int(values[name]) if kind == "int" else values[name]
        base = {"base": 10} if kind == "log" else {}
        ctl[name] = kinds[kind](value=value, description=description, style=style, layout=lay, **base, **limits)
    return ctl


def cost_calculator(**overrides):
    """Build the calculator: sliders (model sizes on a log scale, ensemble size, member and large-model
    accuracy, error correlation, number of plausible wrong answers, tokens per answer), the table of
    ``cost_table_html`` and the two plots. Returns an ``ipywidgets.VBox`` (class ``grpo-lab-cost-calculator``)
    with attributes ``controls`` (slider name -> slider), ``verdict`` (the table's HTML widget, class
    ``grpo-lab-values``) and ``output`` (the figure, class ``grpo-lab-figure``)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    ctl = _controls({**DEFAULTS, **overrides})
    verdict, out = values_html(), figure_output()

    def redraw(*_):
        v = {k: c.value for k, c in ctl.items()}
        st = calculator_state(**v)
        verdict.value = cost_table_html(st)
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        plot_vote_curve(st, v["large_accuracy"], v["member_accuracy"], ax=axes[0])
        grid = region_map(
            v["large_params"], v["large_accuracy"], v["small_params"], v["correlation"], v["n_wrong"], v["tokens"]
        )
        plot_region_map(*grid, member_accuracy=v["member_accuracy"], n_members=v["n_members"], ax=axes[1])
        fig.tight_layout()
        show_figure(out, fig)

    for c in ctl.values():
        c.observe(redraw, names="value")
    redraw()
    box = W.VBox([W.HBox([W.VBox(list(ctl.values())[:4]), W.VBox(list(ctl.values())[4:])]), verdict, out])
    box.add_class(COST_CALCULATOR_CLASS)
    box.controls = ctl  # for tests and for notebooks that set values programmatically
    box.verdict, box.output = verdict, out
    return box
