"""Notebook 07: majority vote with equivalence and normalized vote entropy, graded against ``grpo_lab.ensemble``.

- ``07-majority-vote``: ``fn(answers: list[str | None]) -> (answer, agreement)``, the plurality winner's first
  raw spelling (None if nobody answered) and its share of all voters (abstainers included); equivalent answers
  (``grpo_lab.rewards.answers_match``) vote together; ties go to the answer seen first.
- ``07-vote-entropy``: ``fn(answers) -> float``, ``H / log(n)`` over the candidates' shares, each None its own
  category; 0 for n <= 1.
"""

import math

from grpo_lab.course.registry import exercise_test
from grpo_lab.ensemble import majority_vote, vote_entropy

VOTE, ENTROPY = "07-majority-vote", "07-vote-entropy"


def _vote_ok(fn, answers, what):
    want = majority_vote(answers)
    got = fn(list(answers))
    assert isinstance(got, tuple) and len(got) == 2, f"{what}: return a tuple (answer, agreement), got {got!r}"
    ans, agr = got
    assert ans == want.answer, f"{what}: answers {answers} -> expected winner {want.answer!r}, got {ans!r}"
    assert abs(float(agr) - want.agreement) < 1e-9, (
        f"{what}: answers {answers} -> expected agreement {want.agreement:.4f}, got {agr}"
    )


@exercise_test(
    VOTE,
    title="Majority vote with equivalence",
    forbid=("grpo_lab.ensemble.majority_vote", "grpo_lab.ensemble.vote_items", "grpo_lab.ensemble.self_consistency"),
    hint="Count each answer with the first earlier group whose representative answers_match it.",
)
def test_plain_plurality(fn):
    _vote_ok(fn, ["5", "7", "7"], "a clear winner")
    _vote_ok(fn, ["3", "3", "3"], "unanimous")


@exercise_test(
    VOTE, hint="'1,000', '1000' and '1000.0' are one answer: group with answers_match, keep the first spelling."
)
def test_equivalent_spellings_vote_together(fn):
    _vote_ok(fn, ["1,000", "7", "7", "1000", "1000.0"], "equivalent spellings")
    _vote_ok(fn, ["$12", "12 apples", "13"], "currency and units")


@exercise_test(
    VOTE, hint="On a tie, the answer seen first wins: only replace the leader when a count is strictly larger."
)
def test_ties_go_to_first_seen(fn):
    _vote_ok(fn, ["3", "5", "5", "3"], "a 2-2 tie")
    _vote_ok(fn, ["9", "8", "7"], "all different")


@exercise_test(
    VOTE, hint="None is an abstention: it supports nobody but counts in the total (agreement = winner / all voters)."
)
def test_none_abstains(fn):
    _vote_ok(fn, [None, "4", None], "abstentions")
    _vote_ok(fn, [None, None], "nobody answered -> (None, 0.0)")


@exercise_test(
    ENTROPY,
    title="Vote entropy",
    forbid=("grpo_lab.ensemble.vote_entropy", "grpo_lab.ensemble.majority_vote"),
    hint="Unanimous -> 0; n different answers -> 1 (divide by log n).",
)
def test_extremes(fn):
    for answers in (["4", "4", "4"], ["1", "2", "3", "4"]):
        want = vote_entropy(answers)
        got = float(fn(answers))
        assert abs(got - want) < 1e-9, f"answers {answers}: expected {want:.4f}, got {got:.4f}"


@exercise_test(ENTROPY, hint="Shares 3/4 and 1/4 of 4 voters: -(0.75 ln 0.75 + 0.25 ln 0.25) / ln 4 = 0.4056.")
def test_hand_value_with_equivalence(fn):
    got = float(fn(["1,000", "1000", "7", "1000.0"]))
    want = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(4)
    assert abs(got - want) < 1e-9, f"expected {want:.4f}, got {got:.4f}"


@exercise_test(ENTROPY, hint="Each None is its own category (abstainers agree with nobody); one voter -> 0.")
def test_none_and_single(fn):
    for answers in ([None, "4", "4"], [None, None], ["5"], ["2", "2", "3", None, "3", "3"]):
        want = vote_entropy(answers)
        got = float(fn(answers))
        assert abs(got - want) < 1e-9, f"answers {answers}: expected {want:.4f}, got {got:.4f}"
