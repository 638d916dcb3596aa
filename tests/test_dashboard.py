"""grpo_lab.course.widgets.dashboard: the training dashboard callback (printing fallback and widget mode)."""

import math

import pytest

from grpo_lab.course.widgets.dashboard import TrainingDashboard, series


def recs(n):
    return [
        {
            "step": i,
            "reward": i / n,
            "entropy": 1 - i / n,
            "frac_reward_zero_std": 0.5,
            **({"eval_accuracy": i / n} if i % 5 == 0 else {}),
        }
        for i in range(1, n + 1)
    ]


def test_series_skips_missing_and_nan():
    h = recs(10) + [{"step": 11, "reward": float("nan")}]
    assert series(h, "eval_accuracy") == ([5, 10], [0.5, 1.0])
    x, y = series(h, "reward")
    assert x == list(range(1, 11)) and not any(math.isnan(v) for v in y)
    assert series(h, "kl") == ([], [])


def test_fallback_prints_every_n_steps(capsys):
    d = TrainingDashboard(every=4, use_widgets=False, label="run")
    for r in recs(10):
        d(r)
    out = capsys.readouterr().out.strip().splitlines()
    assert "widgets unavailable" in out[0]
    assert [l.split("|")[0].strip() for l in out[1:]] == ["run step    4", "run step    8"]
    assert "reward 0.800" in out[2] and "eval_accuracy 0.500" in out[2]
    assert len(d.history) == 10


def test_widget_mode_replaces_the_image_through_the_outputs_trait(monkeypatch):
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from grpo_lab.course.widgets.render import shown_png

    d = TrainingDashboard(every=5, use_widgets=True)
    assert {"grpo-lab-dashboard", "grpo-lab-figure"} <= set(d.out._dom_classes)
    # The old pattern (clear_output + display inside the Output) must not come back: it stacks figures or
    # never updates in some frontends. Make both fail loudly if anything calls them.
    monkeypatch.setattr(type(d.out), "clear_output", lambda *a, **k: pytest.fail("clear_output was called"))
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: pytest.fail("display was called"))
    sent = []
    d.out.observe(lambda ch: sent.append(ch.new), names="outputs")  # each assignment is what reaches the page
    pngs = []
    for r in recs(12):
        d(r)
        if r["step"] % 5 == 0:
            assert len(d.out.outputs) == 1  # replaced, not appended
            pngs.append(shown_png(d.out))
    d.close()
    assert len(sent) == 3  # steps 5, 10 and close() at step 12
    assert all(len(o) == 1 for o in sent)
    assert pngs[0] != pngs[1] != shown_png(d.out)  # the plot moved with the history
    fig = d.figure()
    assert [ax.get_title() for ax in fig.axes] == list(d.panels)
