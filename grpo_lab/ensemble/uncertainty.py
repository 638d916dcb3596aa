"""Disagreement as uncertainty: ranking (AUROC), selective prediction (risk-coverage) and calibration.

Every measure works on plain sequences of confidences and correctness flags, so it applies to vote
agreement, to a model's own probability, or to anything else that claims to know when it is right. Vote
agreement with n voters takes only n values, so calibration bins by distinct value instead of by
fixed-width intervals.
"""

from __future__ import annotations

__all__ = [
    "auroc",
    "risk_coverage",
    "area_under_risk_coverage",
    "expected_calibration_error",
    "calibration_bins",
    "brier_score",
]


def _as_lists(confidence, correct) -> tuple[list[float], list[bool]]:
    c = [float(x) for x in confidence]
    y = [bool(x) for x in correct]
    if len(c) != len(y):
        raise ValueError(f"{len(c)} confidences but {len(y)} correctness flags")
    return c, y


def auroc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` as a predictor of ``labels`` (True = positive).

    Equals the Mann-Whitney probability that a random positive scores higher than a random negative, ties
    counting one half: ``AUROC = (#{s_pos > s_neg} + 0.5 #{s_pos = s_neg}) / (n_pos n_neg)`` (Hanley &
    McNeil, Radiology 143:29-36, 1982). 0.5 is chance; NaN when either class is empty. Computed by ranks
    (average ranks for ties), O(n log n).
    """
    s, y = _as_lists(scores, labels)
    n_pos = sum(y)
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = sorted(range(len(s)), key=lambda i: s[i])
    ranks = [0.0] * len(s)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and s[order[j + 1]] == s[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1  # ranks are 1-based; tied scores share their average rank
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    rank_sum = sum(r for r, lab in zip(ranks, y) if lab)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def risk_coverage(confidence, correct) -> tuple[list[float], list[float]]:
    """Selective prediction: answer only the most confident items (El-Yaniv & Wiener, JMLR 11, 2010).

    Items are sorted by decreasing confidence; for each distinct confidence level the curve has one point,
    ``coverage`` = share of items with confidence >= that level and ``accuracy`` = their share correct
    (risk = 1 - accuracy). Tied items are added together, since nothing tells them apart. Returns
    ``(coverage, accuracy)``, coverage increasing and ending at 1.
    """
    c, y = _as_lists(confidence, correct)
    if not c:
        return [], []
    order = sorted(range(len(c)), key=lambda i: -c[i])
    cov, acc = [], []
    hits = 0
    for pos, i in enumerate(order):
        hits += y[i]
        if pos + 1 == len(order) or c[order[pos + 1]] != c[i]:
            cov.append((pos + 1) / len(c))
            acc.append(hits / (pos + 1))
    return cov, acc


def area_under_risk_coverage(confidence, correct) -> float:
    """AURC: the mean selective risk (1 - accuracy) over the curve of ``risk_coverage``, each point
    weighted by the coverage it adds (a step integral). Lower is better; a confidence that does not rank
    at all (all tied) gives the plain error rate."""
    cov, acc = risk_coverage(confidence, correct)
    area, prev = 0.0, 0.0
    for c, a in zip(cov, acc):
        area += (c - prev) * (1 - a)
        prev = c
    return area


def calibration_bins(confidence, correct, bins: int | str = "auto") -> list[dict]:
    """Reliability table: ``[{"confidence", "accuracy", "count"}, ...]`` per bin, sorted by confidence.

    ``bins="unique"``: one bin per distinct confidence value. Vote agreement among n voters takes at most n
    values (1/n, 2/n, ..., 1), so fixed-width bins would split or merge them arbitrarily; binning by value
    is exact. ``bins=k`` (an int): k equal-count bins over the sorted confidences (ties kept together), the
    right choice for continuous confidences. ``"auto"``: ``"unique"`` when there are at most 20 distinct
    values, else 10 equal-count bins.
    """
    c, y = _as_lists(confidence, correct)
    if not c:
        return []
    distinct = sorted(set(c))
    if bins == "auto":
        bins = "unique" if len(distinct) <= 20 else 10
    order = sorted(range(len(c)), key=lambda i: c[i])
    if bins == "unique":
        groups = [[i for i in order if c[i] == v] for v in distinct]
    else:
        k = int(bins)
        if k < 1:
            raise ValueError("bins must be >= 1, 'unique' or 'auto'")
        groups, cur = [], []
        target = len(c) / k
        for pos, i in enumerate(order):
            cur.append(i)
            boundary = pos + 1 == len(order) or c[order[pos + 1]] != c[i]
            if boundary and len(cur) >= target - 1e-9:
                groups.append(cur)
                cur = []
        if cur:
            groups.append(cur)
    return [
        {"confidence": sum(c[i] for i in g) / len(g), "accuracy": sum(y[i] for i in g) / len(g), "count": len(g)}
        for g in groups
    ]


def expected_calibration_error(confidence, correct, bins: int | str = "auto") -> float:
    """ECE = sum_b (n_b / N) |accuracy_b - mean confidence_b| over the bins of ``calibration_bins``
    (Naeini, Cooper & Hauskrecht, AAAI 2015; Guo et al., arXiv 1706.04599)."""
    table = calibration_bins(confidence, correct, bins)
    n = sum(b["count"] for b in table)
    if n == 0:
        return float("nan")
    return sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in table)


def brier_score(confidence, correct) -> float:
    """Brier score (Brier, Monthly Weather Review 78:1-3, 1950): mean of (confidence - correct)^2, in [0, 1].
    Always predicting 0.5 scores 0.25; lower is better."""
    c, y = _as_lists(confidence, correct)
    if not c:
        return float("nan")
    return sum((ci - yi) ** 2 for ci, yi in zip(c, y)) / len(c)
