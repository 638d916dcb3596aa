"""Data hygiene: exact and near-duplicate detection and a train/test contamination check (notebooks 09, 10).

Normalized text, character n-gram Jaccard, MinHash with banding as in Broder 1997 and Lee et al., arXiv
2107.06499. MinHash uses salted 64-bit BLAKE2b hashes, so signatures are identical across runs and machines
(Python's ``hash`` is salted per process); candidates from banding are confirmed with the exact Jaccard, so
the output has no false positives, only (rare) misses.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------------
# Duplicates and contamination
# --------------------------------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Canonical form for duplicate detection: NFKC, lower case, punctuation dropped, whitespace collapsed."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[^\w\s+\-*/=]", " ", t)  # keep arithmetic operators: "2+3" and "2*3" must stay different
    return re.sub(r"\s+", " ", t).strip()


def char_shingles(text: str, n: int = 5) -> set[str]:
    """The set of character n-grams of the normalized text (the whole text if it is shorter than ``n``)."""
    t = normalize_text(text)
    if len(t) <= n:
        return {t} if t else set()
    return {t[i : i + n] for i in range(len(t) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """``|a & b| / |a | b|``; two empty sets are identical (1.0)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def exact_duplicates(texts: Sequence[str]) -> list[list[int]]:
    """Groups (lists of indices, 2 or more) of texts that are equal after ``normalize_text``."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(texts):
        groups[hashlib.sha1(normalize_text(t).encode()).hexdigest()].append(i)
    return [g for g in groups.values() if len(g) > 1]


def _h64(s: str, salt: int) -> int:
    return int.from_bytes(
        hashlib.blake2b(s.encode(), digest_size=8, salt=salt.to_bytes(8, "little")).digest(), "little"
    )


def minhash_signature(shingles: set[str], num_perm: int = 64) -> list[int]:
    """MinHash signature: for each of ``num_perm`` salted hash functions, the minimum hash over the shingles.

    ``P[sig_a[k] == sig_b[k]] = jaccard(a, b)`` for each k (Broder 1997), so the share of equal entries
    estimates the Jaccard similarity.
    """
    if not shingles:
        return [0] * num_perm
    return [min(_h64(s, k) for s in shingles) for k in range(num_perm)]


def near_duplicates(
    texts: Sequence[str], threshold: float = 0.8, n: int = 5, num_perm: int = 64, bands: int = 16
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, jaccard)`` with ``i < j`` whose character-``n``-gram Jaccard is at least ``threshold``.

    Candidates come from MinHash LSH: the signature is cut into ``bands`` bands of ``num_perm // bands`` rows;
    two texts are candidates when any band matches, which happens with probability ``1 - (1 - J^r)^b``. Each
    candidate is then checked with the exact Jaccard, so every reported pair truly passes the threshold.
    Exact duplicates are included (Jaccard 1.0).
    """
    if num_perm % bands:
        raise ValueError(f"num_perm={num_perm} must be a multiple of bands={bands}")
    rows = num_perm // bands
    sh = [char_shingles(t, n) for t in texts]
    sigs = [minhash_signature(s, num_perm) for s in sh]
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, sig in enumerate(sigs):
        for b in range(bands):
            buckets[(b, *sig[b * rows : (b + 1) * rows])].append(i)
    cands = set()
    for members in buckets.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                cands.add((members[x], members[y]))
    out = []
    for i, j in sorted(cands):
        s = jaccard(sh[i], sh[j])
        if s >= threshold:
            out.append((i, j, s))
    return out


def dedup(texts: Sequence[str], threshold: float | None = 0.8, n: int = 5) -> list[int]:
    """Indices to keep: the first of every exact-duplicate group and, with ``threshold``, of every
    near-duplicate cluster (connected by pairs from ``near_duplicates``)."""
    parent = list(range(len(texts)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i, j):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    for g in exact_duplicates(texts):
        for j in g[1:]:
            union(g[0], j)
    if threshold is not None:
        for i, j, _ in near_duplicates(texts, threshold, n):
            union(i, j)
    return [i for i in range(len(texts)) if find(i) == i]


@dataclass
class ContaminationReport:
    exact: list[tuple[int, int]]  # (test index, train index) equal after normalization
    near: list[tuple[int, int, float]]  # (test index, train index, jaccard) at or above the threshold
    n_test: int

    @property
    def contaminated_test_indices(self) -> list[int]:
        return sorted({t for t, _ in self.exact} | {t for t, _, _ in self.near})

    @property
    def rate(self) -> float:
        """Share of test items with an exact or near copy in the training data."""
        return len(self.contaminated_test_indices) / max(self.n_test, 1)

    def __str__(self) -> str:
        return (
            f"contamination: {len(self.contaminated_test_indices)}/{self.n_test} test items "
            f"({self.rate:.1%}) have a copy in train ({len(self.exact)} exact, {len(self.near)} near pairs)"
        )


def contamination(
    train_texts: Sequence[str],
    test_texts: Sequence[str],
    threshold: float | None = 0.8,
    n: int = 5,
    num_perm: int = 64,
    bands: int = 16,
) -> ContaminationReport:
    """Which test items also occur in the training data, exactly (normalized) or nearly (Jaccard >= threshold).

    A held-out score means nothing for contaminated items (the model may have memorized them), so report
    the rate and evaluate on the clean part. Near matches use the same MinHash LSH as ``near_duplicates``,
    run over train + test and keeping only train-test pairs.
    """
    index: dict[str, list[int]] = defaultdict(list)
    for j, t in enumerate(train_texts):
        index[normalize_text(t)].append(j)
    exact = [(i, index[normalize_text(t)][0]) for i, t in enumerate(test_texts) if normalize_text(t) in index]
    near: list[tuple[int, int, float]] = []
    if threshold is not None:
        n_tr = len(train_texts)
        for a, b, s in near_duplicates(list(train_texts) + list(test_texts), threshold, n, num_perm, bands):
            if a < n_tr <= b:
                near.append((b - n_tr, a, s))
        exact_set = set(exact)
        near = [x for x in near if (x[0], x[1]) not in exact_set]
    return ContaminationReport(exact, near, len(test_texts))


def task_contamination(
    train_problems, test_problems, key: Callable = lambda p: p.prompt, threshold: float | None = None
) -> ContaminationReport:
    """Contamination between two lists of ``Problem``: by default exact matches of the prompt (for
    synthetic tasks, where near matches like ``12+35=`` vs ``12+36=`` are different problems)."""
    return contamination([key(p) for p in train_problems], [key(p) for p in test_problems], threshold=threshold)
