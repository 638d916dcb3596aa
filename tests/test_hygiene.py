"""Model collapse and data hygiene: the Gaussian recursion, diversity measures by hand, dedup, contamination."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grpo_lab.hygiene import (
    answer_entropy,
    char_shingles,
    contamination,
    dedup,
    distinct_n,
    exact_duplicates,
    gaussian_collapse,
    jaccard,
    minhash_signature,
    near_duplicates,
    normalize_text,
    reference_band,
    tail_mass,
    task_contamination,
)


def test_gaussian_variance_collapses_without_real_data():
    finals = [gaussian_collapse(500, n_samples=50, real_fraction=0.0, seed=s).sigma[-1] for s in range(5)]
    assert max(finals) < 0.3, finals
    run = gaussian_collapse(500, n_samples=50, seed=0)
    assert np.mean(run.tail[-50:]) < 0.01 < np.mean(run.tail[:5]) + 0.02  # the tails go first and stay gone


def test_gaussian_real_data_prevents_collapse():
    for s in range(5):
        run = gaussian_collapse(500, n_samples=50, real_fraction=0.5, seed=s)
        assert 0.6 < np.mean(run.sigma[-100:]) < 1.4, np.mean(run.sigma[-100:])
        assert np.mean(run.tail[-100:]) > 0.02


def test_gaussian_generation_zero_is_the_real_fit():
    run = gaussian_collapse(3, n_samples=20000, seed=1)
    assert run.sigma[0] == pytest.approx(1.0, abs=0.03) and run.mu[0] == pytest.approx(0.0, abs=0.03)
    assert len(run.sigma) == 4
    with pytest.raises(ValueError):
        gaussian_collapse(3, real_fraction=1.5)


def test_distinct_n_by_hand():
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)  # "a b" twice, "b c", "b d"
    assert distinct_n(["a b", "a b", "a b"], 2) == pytest.approx(1 / 3)
    assert distinct_n(["a", "b"], 2) == 0.0  # no bigram inside a text; none across texts
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["47", "47", "48"], 2, unit="char") == pytest.approx(2 / 3)


def test_answer_entropy_and_tail_mass_by_hand():
    assert answer_entropy(["1", "1", "1"]) == 0.0
    assert answer_entropy(["1", "2"]) == pytest.approx(1.0)
    assert answer_entropy(["1", "2", "3", "4"]) == pytest.approx(2.0)
    assert answer_entropy(["1", " 1", None, None]) == pytest.approx(1.0)  # strip; None is a category
    assert answer_entropy(["a", "b", "c"], normalize=True) == pytest.approx(1.0)
    assert answer_entropy(["a", "b", "b"], base=math.e) == pytest.approx(
        -(1 / 3) * math.log(1 / 3) - (2 / 3) * math.log(2 / 3)
    )
    assert tail_mass([1, 5, 9, float("nan")], 2, 8) == pytest.approx(2 / 3)
    lo, hi = reference_band(np.arange(101), tail=0.1)
    assert (lo, hi) == (5.0, 95.0)


def test_normalize_and_exact_duplicates():
    assert normalize_text("  What IS 2+3?\n") == "what is 2+3"
    texts = ["What is 2+3?", "what is 2+3", "What is 2*3?", "what   IS 2+3 ?"]
    assert exact_duplicates(texts) == [[0, 1, 3]]
    assert dedup(texts, threshold=None) == [0, 2]


def test_jaccard_and_minhash_estimate():
    a, b = char_shingles("the quick brown fox jumps", 3), char_shingles("the quick brown fox leaps", 3)
    j = jaccard(a, b)
    assert 0.5 < j < 1.0
    sa, sb = minhash_signature(a, 256), minhash_signature(b, 256)
    est = sum(x == y for x, y in zip(sa, sb)) / 256
    assert abs(est - j) < 0.12
    assert jaccard(set(), set()) == 1.0
    assert minhash_signature(a, 16) == minhash_signature(set(a), 16)  # deterministic


def test_near_duplicates_find_edits_not_different_texts():
    base = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
    texts = [
        base,
        base.replace("Natalia", "Natalie"),
        "A completely different question about trains and speed.",
        base.upper() + "!!",
    ]
    pairs = {(i, j) for i, j, _ in near_duplicates(texts, threshold=0.8)}
    assert pairs == {(0, 1), (0, 3), (1, 3)}
    assert dedup(texts) == [0, 2]


def test_contamination_report():
    train = ["what is 12 + 35?", "what is 10 + 10?", "Natalia sold clips to 48 of her friends in April."]
    test = ["What is 12 + 35 ?", "what is 99 + 1?", "natalia sold clips to 48 of her friend in April"]
    rep = contamination(train, test, threshold=0.8)
    assert rep.exact == [(0, 0)]
    assert [(t, j) for t, j, _ in rep.near] == [(2, 2)]
    assert rep.contaminated_test_indices == [0, 2] and rep.rate == pytest.approx(2 / 3)
    assert "2/3" in str(rep)


def test_task_splits_are_clean_and_leaks_are_caught():
    from grpo_lab.tasks import AdditionTask

    task = AdditionTask()
    train, test = task.train(2000, seed=0), task.heldout(300, seed=0)
    assert task_contamination(train, test).rate == 0.0
    leaked = task_contamination(train + test[:30], test)
    copied = {p.prompt for p in test[:30]}
    assert leaked.contaminated_test_indices == [i for i, p in enumerate(test) if p.prompt in copied]
