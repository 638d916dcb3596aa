"""Voting: one plurality rule for self-consistency and for ensembles of models, and weights for it.

- One voting function, ``majority_vote``, serves self-consistency (many samples of one model; Wang et al.,
  arXiv 2203.11171) and voting across models: a sample and a model are both "a voter". Answers vote
  together when ``grpo_lab.rewards.answers_match`` says they are equivalent, so ``1,000``, ``1000`` and
  ``1000.0`` are one candidate, not three.
- Grouping is greedy against each group's first member (its representative). Equivalence of messy strings
  is not guaranteed to be transitive; comparing with a fixed representative makes the result depend only on
  the order of the answers, which is also the tie-break rule (first seen wins), so the vote is deterministic.
- A voter that gave no answer (None) abstains: it adds to the total weight (an ensemble where half the
  members could not answer is less sure than a unanimous one) but supports no candidate, and for the
  entropy each abstention is its own category (abstainers do not agree with each other).
- Weights for a plurality vote over open-ended answers are log-odds plus the log of the number of
  plausible wrong answers (``fit_vote_weights`` derives it). When wrong answers rarely coincide, agreement
  alone is strong evidence and accuracy mostly breaks ties; when they often coincide (small answer spaces,
  shared mistakes), a strong member's weight can outvote several weak ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from grpo_lab.rewards import answers_match, extract_answer

__all__ = [
    "Vote",
    "majority_vote",
    "vote_items",
    "self_consistency",
    "fit_vote_weights",
    "estimate_wrong_answers",
    "agreement_rate",
    "vote_entropy",
]

_TIE_TOL = 1e-9  # weighted totals closer than this are a tie (float sums of the same weights in another order)


# --------------------------------------------------------------------------------------------------
# Voting
# --------------------------------------------------------------------------------------------------


@dataclass
class Vote:
    """The outcome of a vote.

    ``answer``: the winning candidate's representative (its first raw spelling), None when nothing voted.
    ``agreement``: the winner's share of the total weight, in [0, 1] (abstentions count in the total).
    ``entropy``: normalized vote entropy in [0, 1]: 0 when unanimous, 1 when every voter differs.
    ``counts``: representative -> total weight (an int count when unweighted), in order first seen.
    ``groups``: for each candidate (same order), the indices of the voters that support it.
    ``n_voters``: number of voters, abstainers included.
    """

    answer: str | None
    agreement: float
    entropy: float
    counts: dict[str, float]
    groups: list[list[int]] = field(default_factory=list)
    n_voters: int = 0

    @property
    def margin(self) -> float:
        """Winner's weight minus runner-up's, as a share of the total (0 for a tie or no vote)."""
        w = sorted(self.counts.values(), reverse=True)
        total = self._total
        if not w or total <= 0:
            return 0.0
        return (w[0] - (w[1] if len(w) > 1 else 0.0)) / total

    _total: float = field(default=0.0, repr=False)


def _check_weights(weights, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    w = [float(x) for x in weights]
    if len(w) != n:
        raise ValueError(f"got {n} answers but {len(w)} weights; pass one weight per voter")
    if any(not math.isfinite(x) or x < 0 for x in w):
        raise ValueError(f"weights must be finite and >= 0 (a plurality vote has no use for negative ones); got {w}")
    return w


def majority_vote(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> Vote:
    """Plurality vote over raw answers, equivalent answers voting together.

    Contract:

    - candidates: each non-None answer joins the first earlier candidate whose representative it matches
      (``answers_match(answer, representative)``), else starts a new candidate; the representative is the
      first raw string of the candidate.
    - score of a candidate c: ``W_c = sum of weights of its voters`` (weight 1 each when ``weights`` is None).
    - winner: the highest ``W_c``; ties go to the candidate seen first.
    - ``agreement = W_winner / W_total`` where ``W_total`` includes abstainers (None answers).
    - ``entropy = H(q) / log(n)`` with ``q`` the shares of the candidates and of each abstainer separately,
      ``H(q) = -sum q log q`` and ``n`` the number of voters with positive weight (0 when ``n <= 1``).
      Unanimity gives 0; n voters with n different answers (or no answers) give 1.
    - no voters, or zero total weight: ``Vote(None, 0.0, ...)``; all abstained: ``answer`` None,
      ``agreement`` 0, ``entropy`` 1 (for two or more voters).

    Self-consistency (Wang et al., arXiv 2203.11171) is this vote over sampled answers of one model.
    """
    answers = list(answers)
    w = _check_weights(weights, len(answers))
    reps: list[str] = []
    groups: list[list[int]] = []
    for i, a in enumerate(answers):
        if a is None or not isinstance(a, str) or not a.strip():
            continue
        for k, rep in enumerate(reps):
            if answers_match(a, rep):
                groups[k].append(i)
                break
        else:
            reps.append(a)
            groups.append([i])
    scores = [sum(w[i] for i in g) for g in groups]
    total = sum(w)
    counts = {rep: (len(g) if weights is None else s) for rep, g, s in zip(reps, groups, scores)}
    n_pos = sum(1 for x in w if x > 0)
    if total <= 0:
        return Vote(None, 0.0, 0.0, counts, groups, len(answers), 0.0)
    # Entropy over candidates plus one category per abstainer.
    supported = {i for g in groups for i in g}
    shares = [s / total for s in scores] + [w[i] / total for i in range(len(answers)) if i not in supported]
    h = -sum(q * math.log(q) for q in shares if q > 0)
    entropy = h / math.log(n_pos) if n_pos > 1 else 0.0
    entropy = min(1.0, max(0.0, entropy))
    best = None
    for k, s in enumerate(scores):
        if s > 0 and (best is None or s > scores[best] + _TIE_TOL):
            best = k
    if best is None:
        return Vote(None, 0.0, entropy, counts, groups, len(answers), total)
    return Vote(reps[best], scores[best] / total, entropy, counts, groups, len(answers), total)


def vote_items(answer_matrix: Sequence[Sequence[str | None]], weights: Sequence[float] | None = None) -> list[Vote]:
    """``majority_vote`` for each row of an items x voters matrix of raw answers (one weight per voter/column)."""
    return [majority_vote(row, weights) for row in answer_matrix]


def self_consistency(
    completions: Sequence[str],
    extract: Callable[[str], str | None] = extract_answer,
    weights: Sequence[float] | None = None,
) -> Vote:
    """Self-consistency (Wang et al., arXiv 2203.11171): extract the final answer of each sampled
    completion with ``extract`` and take the plurality vote (``majority_vote``)."""
    return majority_vote([extract(c) for c in completions], weights)


def fit_vote_weights(
    correct, n_wrong: float = 100.0, prior: float = 1.0, max_weight: float | None = None
) -> list[float]:
    """One weight per member for a plurality vote, from a calibration set (``correct``: items x members, bool).

    Derivation (the argument of Nitzan & Paroush, "Optimal decision rules in uncertain dichotomous choice
    situations", International Economic Review 23(2):289-297, 1982, extended here to many wrong answers).
    Model: member j is right with probability p_j, independently of the others; when wrong it names one of
    ``n_wrong`` (M) wrong answers, each with probability (1 - p_j) / M. Given the ballots, candidate a with
    supporters S_a is the truth with likelihood

        L(a) = prod_{j in S_a} p_j * prod_{j not in S_a} P(j's ballot | j wrong)
             = prod_{j in S_a} p_j * prod_{j not in S_a} (1 - p_j) / M          (abstainers: factor 1 - p_j)

    Dividing by prod_j (1 - p_j) / M, the same for every candidate,

        log L(a) = const + sum_{j in S_a} w_j,     w_j = log(p_j / (1 - p_j)) + log M,

    so with a uniform prior the most likely answer is the plurality winner under weights w_j. Two limits:
    M = 1 (yes/no) gives the classic log-odds weights; M -> infinity (open-ended answers whose wrong values
    rarely coincide) makes log M dominate, so weights become nearly equal: agreement itself is strong
    evidence, and accuracy mostly decides between singletons. A member with p_j < 1 / (M + 1), worse than
    guessing among M + 1 answers, would get a negative weight; a plurality vote cannot use one (it would
    reward disagreeing with that member), so weights are clipped at 0 and, optionally, at ``max_weight``.

    p_j is estimated with add-``prior`` smoothing, ``(correct_j + prior) / (n + 2 prior)``, so a member that
    was always right on a small calibration set gets a large but finite weight. ``n_wrong`` should be the
    *effective* number of wrong answers (``estimate_wrong_answers`` measures it on calibration answers):
    small when members share mistakes, large for free-form answers.
    """
    rows = [[bool(x) for x in row] for row in correct]
    if not rows or not rows[0]:
        raise ValueError("correct must be a non-empty items x members matrix of booleans")
    m = len(rows[0])
    if any(len(r) != m for r in rows):
        raise ValueError("every row of correct must have one entry per member")
    if not n_wrong >= 1:
        raise ValueError(f"n_wrong (effective number of wrong answers) must be >= 1, got {n_wrong}")
    n = len(rows)
    out = []
    for j in range(m):
        p = (sum(r[j] for r in rows) + prior) / (n + 2 * prior)
        p = min(max(p, 1e-12), 1 - 1e-12)
        w = math.log(p / (1 - p)) + math.log(n_wrong)
        w = max(0.0, w)
        if max_weight is not None:
            w = min(w, max_weight)
        out.append(w)
    return out


def estimate_wrong_answers(answer_matrix: Sequence[Sequence[str | None]], gold: Sequence[str]) -> float:
    """Effective number of equally likely wrong answers, M = 1 / P(two wrong answers coincide).

    Over every item and every pair of members that are both wrong (a non-None answer that does not match
    the gold one), count how often the pair names the same (``answers_match``-equivalent) answer. For M
    equally likely wrong answers the collision rate is 1 / M; shared mistakes give a small M. Returns
    ``inf`` when no two wrong answers ever coincide (or there are no wrong pairs).
    """
    pairs = same = 0
    for row, g in zip(answer_matrix, gold):
        wrong = [a for a in row if a is not None and not answers_match(a, g)]
        for i in range(len(wrong)):
            for j in range(i + 1, len(wrong)):
                pairs += 1
                same += answers_match(wrong[i], wrong[j])
    return math.inf if same == 0 else pairs / same


def agreement_rate(votes: Sequence[Vote], threshold: float = 1.0) -> float:
    """Share of votes whose ``agreement`` reaches ``threshold`` (default 1.0: the unanimous items)."""
    votes = list(votes)
    if not votes:
        return float("nan")
    return sum(v.agreement >= threshold - _TIE_TOL for v in votes) / len(votes)


def vote_entropy(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> float:
    """Normalized vote entropy of one set of answers: ``majority_vote(answers, weights).entropy``."""
    return majority_vote(answers, weights).entropy
