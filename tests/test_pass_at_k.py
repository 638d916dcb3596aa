"""The unbiased pass@k estimator (Chen et al., arXiv 2107.03374) and accuracy by group."""

from math import comb

import pytest

from grpo_lab.evaluation import accuracy_by, pass_at_k
from grpo_lab.tasks import Problem


@pytest.mark.parametrize("n", [1, 5, 8, 20])
def test_pass_at_k_is_one_minus_the_chance_that_k_draws_all_fail(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            exact = 1 - comb(n - c, k) / comb(n, k)
            assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
        assert pass_at_k(n, c, 1) == pytest.approx(c / n)  # pass@1 is the share of passing samples


def test_pass_at_k_grows_with_k_and_refuses_impossible_counts():
    vals = [pass_at_k(10, 2, k) for k in range(1, 11)]
    assert vals == sorted(vals) and vals[0] == pytest.approx(0.2) and vals[-1] == 1.0
    for bad in [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)]:
        with pytest.raises(ValueError, match="pass_at_k needs"):
            pass_at_k(*bad)


def test_accuracy_by_groups_problems_by_a_meta_key():
    probs = [Problem("p", "q", "a", {"level": lv}) for lv in (1, 1, 2, 3, 3, 3)] + [Problem("p", "q", "a")]
    out = accuracy_by(probs, [True, False, True, True, True, False, True])
    assert list(out) == [1, 2, 3, None]
    assert out[1] == {"n": 2, "accuracy": 0.5, "stderr": pytest.approx(0.5 / 2**0.5)}
    assert out[3]["accuracy"] == pytest.approx(2 / 3) and out[None]["n"] == 1
