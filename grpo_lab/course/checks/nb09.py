"""Notebook 09: distinct-n, graded against ``grpo_lab.hygiene.distinct_n`` (Li et al., arXiv 1510.03055).

The student writes ``fn(texts: list[str], n: int) -> float``: unique word n-grams / total word n-grams over
the corpus, n-grams taken within each text (split on whitespace), 0.0 when there is no n-gram at all.
"""

import random

from grpo_lab.course.registry import exercise_test
from grpo_lab.hygiene import distinct_n

ID = "09-distinct-n"


def _eq(fn, texts, n, what):
    got = fn(texts, n)
    want = distinct_n(texts, n)
    assert isinstance(got, (int, float)), f"{what}: return a float, got {type(got).__name__}"
    assert abs(got - want) < 1e-9, f"{what}: expected {want:.4f}, got {got:.4f}"


@exercise_test(
    ID,
    title="Distinct-n",
    forbid=("grpo_lab.hygiene.distinct_n",),
    hint="distinct-1 of ['a b c', 'a b d'] is 4 unique words / 6 words.",
)
def test_unigrams_by_hand(fn):
    _eq(fn, ["a b c", "a b d"], 1, "distinct-1 of ['a b c', 'a b d']")


@exercise_test(ID, hint="Bigrams are consecutive word pairs as tuples; 'a b' occurs twice here.")
def test_bigrams_by_hand(fn):
    _eq(fn, ["a b c", "a b d"], 2, "distinct-2 of ['a b c', 'a b d']")
    _eq(fn, ["a b", "a b", "a b"], 2, "the same text three times")


@exercise_test(
    ID,
    hint="Take n-grams inside each text only: the last word of one text and the first of the next are not a bigram.",
)
def test_no_ngrams_across_texts(fn):
    _eq(fn, ["x", "y", "x y"], 2, "['x', 'y', 'x y'] (one bigram in all)")


@exercise_test(
    ID, hint="No n-grams at all (empty list, or every text shorter than n): return 0.0, not a ZeroDivisionError."
)
def test_empty(fn):
    _eq(fn, [], 1, "an empty corpus")
    _eq(fn, ["a", "b c"], 3, "texts shorter than n")


@exercise_test(
    ID,
    hint="Split on any whitespace (str.split() with no argument) so double spaces and newlines do not create empty words.",
)
def test_whitespace(fn):
    _eq(fn, ["a  b\nc", "a b   c"], 2, "irregular whitespace")


@exercise_test(ID, hint="Count n-grams with duplicates in the total, and each distinct n-gram once in the numerator.")
def test_random_corpora(fn):
    rng = random.Random(0)
    for k in range(20):
        texts = [" ".join(rng.choice("abcd") for _ in range(rng.randint(0, 8))) for _ in range(rng.randint(1, 6))]
        n = rng.randint(1, 3)
        _eq(fn, texts, n, f"random corpus {k} {texts}, n={n}")
