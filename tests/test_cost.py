"""grpo_lab.cost: FLOPs and dated prices, exact vote accuracy (vs hand formulas and Monte Carlo), the widget."""

from __future__ import annotations

import math

import pytest

from grpo_lab.cost import (
    Price,
    api_cost,
    beta_binomial_pmf,
    compare_options,
    distilled_option,
    dominance,
    ensemble_option,
    inference_flops,
    simulate_vote_accuracy,
    single_option,
    training_flops,
    vote_accuracy,
    vote_accuracy_given_correct,
    vote_accuracy_heterogeneous,
)


def test_flops_and_prices():
    assert inference_flops(1e9, 300) == 6e11
    assert training_flops(1e6, 10) == 6e7
    with pytest.raises(ValueError):
        Price(1.0, 2.0, date="", source="https://example.invalid/pricing")
    with pytest.raises(ValueError):
        Price(1.0, 2.0, date="2025-01-01", source=" ")
    p = Price(input_per_mtok=0.5, output_per_mtok=2.0, date="2025-01-01", source="user-supplied")
    assert api_cost(1000, 500, p) == pytest.approx((1000 * 0.5 + 500 * 2.0) / 1e6)


def test_options_costs_and_comparison():
    single = single_option("big", 7e9, 0.8, prompt_tokens=100, output_tokens=200)
    assert single.cost == 2 * 7e9 * 300 and single.cost_per_correct == pytest.approx(single.cost / 0.8)
    ens = ensemble_option("ens", 1e9, 0.6, 3, 100, 200, rounds=2, accuracy=0.7)
    # round 0: 3 calls of 300 tokens; round 1: each prompt also holds the 2 others' 200-token replies
    assert ens.cost == pytest.approx(3 * 2e9 * 300 + 3 * 2e9 * 700)
    assert ens.accuracy == 0.7 and ens.detail["calls"] == 6
    student = distilled_option(
        "student", 1e9, 0.65, train_tokens=1e6, queries=1e4, prompt_tokens=100, output_tokens=200
    )
    assert student.cost_per_query == pytest.approx(2e9 * 300 + 6e9 * 1e6 / 1e4)
    table = compare_options([single, ens, student])
    assert [r["name"] for r in table] == ["big", "ens", "student"]
    assert min(r["relative"] for r in table) == pytest.approx(1.0)
    priced = single_option("api", 0, 0.8, 1000, 500, price=Price(1, 4, "2025-01-01", "user"))
    with pytest.raises(ValueError):
        compare_options([single, priced])  # FLOPs and dollars do not mix
    assert ensemble_option("e", 1e9, 0.6, 5).accuracy == pytest.approx(vote_accuracy(5, 0.6))


def test_dominance():
    s = single_option("s", 10, 0.8, 1, 0)
    assert dominance(s, ensemble_option("e", 1, 0.7, 3, 1, 0, accuracy=0.9)) == "ensemble"
    assert dominance(s, ensemble_option("e", 5, 0.7, 3, 1, 0, accuracy=0.7)) == "single"
    assert dominance(s, ensemble_option("e", 1, 0.7, 3, 1, 0, accuracy=0.7)) == "trade-off"


def test_vote_accuracy_hand_formulas():
    p = 0.6
    assert vote_accuracy(1, p) == pytest.approx(p)
    # yes/no majority of 3 (Condorcet): p^3 + 3 p^2 (1 - p)
    assert vote_accuracy(3, p, n_wrong=1) == pytest.approx(p**3 + 3 * p**2 * (1 - p))
    # 4 voters, yes/no: a 2-2 tie is a coin flip
    assert vote_accuracy(4, p, n_wrong=1) == pytest.approx(p**4 + 4 * p**3 * (1 - p) + 6 * p**2 * (1 - p) ** 2 / 2)
    # wrong answers never coincide: one right voter ties with the m wrong singletons
    q = 0.3
    assert vote_accuracy(3, q) == pytest.approx(q**3 + 3 * q**2 * (1 - q) + 3 * q * (1 - q) ** 2 / 3)
    # 3 voters, 1 right, 2 wrong over M = 2 values: they collide with prob 1/2 (lose), else a 3-way tie
    assert vote_accuracy_given_correct(1, 3, n_wrong=2) == pytest.approx(0.5 * (1 / 3))
    assert vote_accuracy_given_correct(0, 3) == 0 and vote_accuracy_given_correct(3, 3) == 1
    # large M approaches the never-coincide limit
    assert vote_accuracy(5, 0.3, n_wrong=10**6) == pytest.approx(vote_accuracy(5, 0.3), abs=1e-4)


def test_correlation_shrinks_the_vote_gain():
    pmf = beta_binomial_pmf(6, 0.4, 0.3)
    assert sum(pmf) == pytest.approx(1.0) and sum(k * x for k, x in enumerate(pmf)) == pytest.approx(6 * 0.4)
    assert beta_binomial_pmf(3, 0.4, 0.0) == pytest.approx([0.216, 0.432, 0.288, 0.064])
    accs = [vote_accuracy(7, 0.6, 20, rho) for rho in (0.0, 0.2, 0.5, 0.9)]
    assert accs == sorted(accs, reverse=True) and accs[0] > 0.9
    assert vote_accuracy(7, 0.6, 20, 1.0) == pytest.approx(0.6)  # members fail together: no gain


def test_exact_accuracy_matches_monte_carlo():
    for n, p, M, rho in [(5, 0.4, 3, 0.0), (4, 0.35, math.inf, 0.0), (5, 0.5, 5, 0.4)]:
        exact = vote_accuracy(n, p, M, rho)
        sim = simulate_vote_accuracy([p] * n, 3000, M, rho, seed=3)
        assert abs(sim - exact) < 4 * math.sqrt(exact * (1 - exact) / 3000), (n, p, M, rho, sim, exact)


def test_heterogeneous_members():
    accs = [0.3, 0.3, 0.3, 0.3, 0.9]
    plain = vote_accuracy_heterogeneous(accs)
    assert plain == pytest.approx(vote_accuracy_heterogeneous(accs, [1, 1, 1, 1, 1]))
    assert vote_accuracy_heterogeneous([0.3] * 4) == pytest.approx(vote_accuracy(4, 0.3))
    weighted = vote_accuracy_heterogeneous(accs, [1, 1, 1, 1, 1.5])  # the strong member wins ties with singletons
    assert weighted > plain + 0.1
    assert simulate_vote_accuracy(accs, 2000, seed=4) == pytest.approx(
        plain, abs=4 * math.sqrt(plain * (1 - plain) / 2000)
    )


# --------------------------------------------------------------------------------------------- widget


def test_calculator_state_and_region_map():
    from grpo_lab.course.widgets.cost import calculator_state, region_map

    st = calculator_state(7e9, 0.75, 0.5e9, 0.55, 5, 0.2, 20, 300, max_members=9)
    assert st["sizes"] == list(range(1, 10)) and len(st["acc_correlated"]) == 9
    assert (
        st["acc_independent"][0] == pytest.approx(0.55) and st["acc_independent"][4] > st["acc_correlated"][4] > 0.55
    )
    assert st["ensemble_cost"][4] == pytest.approx(5 * 2 * 0.5e9 * 300)
    assert st["verdict"] == dominance(st["single"], st["ensemble"])
    acc, sizes, region, cheaper = region_map(
        7e9, 0.75, 0.5e9, 0.0, 20, 300, accuracies=[0.1, 0.5, 0.9], sizes=[1, 3, 20]
    )
    assert region.shape == (3, 3)
    assert region[1, 2] == 2  # 3 small members at 90%: more accurate and cheaper -> ensemble dominates
    assert region[0, 0] == 1  # one small member at 10%: cheaper but worse -> trade-off
    assert region[2, 0] == 0  # 20 members (more FLOPs than 7B) at 10%: the single model dominates
    assert cheaper[1, 2] and not cheaper[2, 0]


def test_cost_calculator_widget_builds_and_reacts():
    import matplotlib

    matplotlib.use("Agg")
    import re

    from grpo_lab.course.widgets.cost import calculator_state, cost_calculator
    from grpo_lab.course.widgets.render import shown_png

    def cell(kind, option=None):
        html = box.verdict.value
        if option:
            html = re.search(rf'<tr data-option="{option}">(.*?)</tr>', html).group(1)
        return re.search(rf'<td data-kind="{kind}"[^>]*>(?:<b>)?([^<]*)', html).group(1)

    box = cost_calculator()
    assert "grpo-lab-cost-calculator" in box._dom_classes and "grpo-lab-values" in box.verdict._dom_classes
    assert "grpo-lab-figure" in box.output._dom_classes
    assert {"large_params", "member_accuracy", "n_members", "correlation", "n_wrong"} <= set(box.controls)
    assert '<table class="grpo-lab-cost-table">' in box.verdict.value
    before, png = box.verdict.value, shown_png(box.output)
    box.controls["member_accuracy"].value = 0.95
    box.controls["n_members"].value = 3
    assert box.verdict.value != before and shown_png(box.output) != png and len(box.output.outputs) == 1
    st = calculator_state(**{k: c.value for k, c in box.controls.items()})
    assert cell("verdict") == st["verdict"] == "ensemble"
    assert cell("accuracy", "ensemble") == f"{st['ensemble'].accuracy:.3f}"
    assert cell("cost_per_query", "single") == f"{st['single'].cost_per_query:.3g}"
    assert cell("cost_per_correct", "ensemble") == f"{st['ensemble'].cost_per_correct:.3g}"
