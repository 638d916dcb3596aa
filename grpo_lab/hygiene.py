"""The synthetic ceiling: model collapse, the measures that reveal it, and the data hygiene that counters it.

Shumailov et al., "AI models collapse when trained on recursively generated data", Nature 631:755-759
(2024), arXiv 2305.17493 ("The Curse of Recursion"): when each generation of a model is trained on samples
of the previous generation, estimation errors compound; the tails of the distribution go first, then the
whole distribution narrows. In their language-model experiments, keeping 10% of the original data in every
generation reduces the degradation; that accumulating data (keeping the real data and adding synthetic data
instead of replacing it) avoids collapse is the later result of Gerstgrasser et al., arXiv 2404.01413.
``lm_collapse`` runs a small version of the loop and measures accuracy and diversity at every generation.

Contents:

- ``gaussian_collapse``: the smallest demonstration. Fit a Gaussian by maximum likelihood, sample from the
  fit, refit on the samples, repeat. The fitted variance performs a multiplicative random walk whose
  expected log falls each generation (the MLE variance is biased low, ``E[s^2] = (n-1)/n sigma^2``, and
  ``E[log s^2] < log E[s^2]``), so it drifts to zero; a fixed share of real data anchors it.
- ``lm_collapse``: the same recursion with a tiny char LM on addition: generation n+1 is fine-tuned by SFT
  only on generation n's sampled answers (unverified), versus on verified samples mixed with real data.
- Measures: ``distinct_n`` (Li et al., arXiv 1510.03055), ``answer_entropy``, ``tail_mass``, accuracy.
- Hygiene: exact and near-duplicate detection (normalized text, character n-gram Jaccard, MinHash with
  banding as in Broder 1997 and Lee et al., arXiv 2107.06499) and a train/test contamination check.

Design notes:

- numpy only (no scipy): every measure here is a few lines and readable.
- Distinct-n counts n-grams within each text (an n-gram never spans two texts) and divides unique by
  total over the whole corpus, the common definition; an empty corpus scores 0.
- MinHash uses salted 64-bit BLAKE2b hashes, so signatures are identical across runs and machines (Python's
  ``hash`` is salted per process); candidates from banding are confirmed with the exact Jaccard, so the
  output has no false positives, only (rare) misses.
"""

from __future__ import annotations

import copy
import hashlib
import math
import random
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------------------------------------
# Diversity and distribution measures
# --------------------------------------------------------------------------------------------------


def ngrams(units: Sequence, n: int) -> list[tuple]:
    """The contiguous n-grams of a sequence, as tuples (``[]`` when it is shorter than ``n``)."""
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    return [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]


def distinct_n(texts: Iterable[str], n: int = 2, unit: str = "word") -> float:
    """Distinct-n (Li et al., arXiv 1510.03055): unique n-grams / total n-grams over a corpus, in [0, 1].

    ``unit="word"`` splits on whitespace, ``"char"`` uses characters. N-grams are taken within each text.
    1.0 means no n-gram repeats anywhere; a corpus of one text repeated k times scores at most 1/k. Returns
    0.0 when the corpus has no n-gram at all.
    """
    if unit not in ("word", "char"):
        raise ValueError(f"unit={unit!r}: use 'word' or 'char'")
    total, seen = 0, set()
    for t in texts:
        units = t.split() if unit == "word" else list(t)
        grams = ngrams(units, n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def answer_entropy(answers: Iterable[str | None], base: float = 2.0, normalize: bool = False) -> float:
    """Shannon entropy of the empirical distribution of answers: ``-sum_a p(a) log p(a)`` (bits by default).

    Answers are compared after ``strip()``; ``None`` (no answer) is a category of its own. With
    ``normalize`` the entropy is divided by ``log(number of answers)`` so that 1 means all different and 0
    all equal. A collapsing model gives the same few answers: its entropy falls.
    """
    counts = Counter(None if a is None else str(a).strip() for a in answers)
    n = sum(counts.values())
    if n == 0:
        return 0.0
    h = -sum((c / n) * math.log(c / n) for c in counts.values())
    if normalize:
        return h / math.log(n) if n > 1 else 0.0
    return h / math.log(base)


def tail_mass(values: Sequence[float], lo: float, hi: float) -> float:
    """Share of ``values`` outside ``[lo, hi]``; NaN values (e.g. unparsable answers) are not counted as tail.

    Use the real data's quantiles for ``lo``/``hi`` (``reference_band``): on real data the result is about
    the nominal tail share, and a collapsing model's samples fall below it as the tails disappear.
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return 0.0
    return float(((v < lo) | (v > hi)).mean())


def reference_band(values: Sequence[float], tail: float = 0.1) -> tuple[float, float]:
    """The central ``1 - tail`` interval of reference (real) data: its ``tail/2`` and ``1 - tail/2`` quantiles."""
    v = np.asarray(values, dtype=float)
    return float(np.quantile(v, tail / 2)), float(np.quantile(v, 1 - tail / 2))


# --------------------------------------------------------------------------------------------------
# Gaussian collapse
# --------------------------------------------------------------------------------------------------


@dataclass
class CollapseRun:
    """One recursion: per generation the fitted mean and std, and the share of that generation's samples
    beyond the *original* distribution's ``tail_sigma`` band (``tail``)."""

    mu: list[float]
    sigma: list[float]
    tail: list[float]
    real_fraction: float


def gaussian_collapse(
    generations: int = 1000,
    n_samples: int = 100,
    real_fraction: float = 0.0,
    mu0: float = 0.0,
    sigma0: float = 1.0,
    tail_sigma: float = 2.0,
    seed: int = 0,
) -> CollapseRun:
    """Fit-resample-refit a Gaussian for ``generations`` generations (Shumailov et al., arXiv 2305.17493, Sec. 3).

    Generation 0 fits ``n_samples`` real draws from ``N(mu0, sigma0^2)``. Generation g+1 fits ``n_samples``
    points of which ``round(real_fraction * n_samples)`` are fresh real draws and the rest are samples from
    generation g's fit. The fit is maximum likelihood (mean, std with ``ddof=0``). Entry g of each list
    describes generation g; ``tail[g]`` is the share of generation g's training points with
    ``|x - mu0| > tail_sigma * sigma0`` (about 4.6% for real data at 2 sigma).
    """
    if not 0.0 <= real_fraction <= 1.0:
        raise ValueError(f"real_fraction={real_fraction} must be in [0, 1]")
    rng = np.random.default_rng(seed)
    n_real = int(round(real_fraction * n_samples))
    data = rng.normal(mu0, sigma0, n_samples)
    mus, sigmas, tails = [], [], []
    for g in range(generations + 1):
        mu, sigma = float(data.mean()), float(data.std())
        mus.append(mu)
        sigmas.append(sigma)
        tails.append(float((np.abs(data - mu0) > tail_sigma * sigma0).mean()))
        synthetic = rng.normal(mu, sigma, n_samples - n_real)
        data = np.concatenate([rng.normal(mu0, sigma0, n_real), synthetic])
    return CollapseRun(mus, sigmas, tails, real_fraction)


# --------------------------------------------------------------------------------------------------
# Collapse of a tiny language model
# --------------------------------------------------------------------------------------------------


@dataclass
class LMGeneration:
    generation: int
    accuracy: float  # greedy held-out accuracy
    sample_accuracy: float  # share of the generation's own training samples that are correct
    distinct_1: float  # distinct answers / samples over the generation's sampled answers
    distinct_2_char: float  # character bigram diversity of the same samples
    entropy: float  # mean per-prompt answer entropy (bits) over the samples
    tail: float  # share of sampled numeric answers outside the real answers' band
    kept: int  # training examples used for the next generation


@dataclass
class LMCollapseRun:
    mode: str
    generations: list[LMGeneration] = field(default_factory=list)


def _next_generation_data(task, owners, answers, correct, mode: str, real_fraction: float, real_seed: int) -> list:
    """The next generation's SFT examples: every non-empty sample (``"unverified"``), or the verified samples
    plus fresh real ``(prompt, gold)`` pairs making up ``real_fraction`` of the mix (``"verified"``)."""
    from grpo_lab.distill.data import DistillExample

    if mode == "unverified":
        return [DistillExample(p.prompt, a) for p, a in zip(owners, answers) if a]
    examples = [DistillExample(p.prompt, a) for p, a, ok in zip(owners, answers, correct) if ok]
    n_real = (
        int(round(len(examples) * real_fraction / max(1e-9, 1 - real_fraction))) if real_fraction < 1 else len(owners)
    )
    real = task.train(max(n_real, 1), seed=real_seed)
    return examples + [DistillExample(p.prompt, p.answer) for p in real]


def lm_collapse(
    model,
    tokenizer,
    task,
    *,
    generations: int = 5,
    mode: str = "unverified",
    n_prompts: int = 512,
    samples_per_prompt: int = 4,
    temperature: float = 1.0,
    steps_per_generation: int = 150,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    real_fraction: float = 0.5,
    eval_problems=None,
    tail: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> LMCollapseRun:
    """The model-collapse recursion on a char LM (generation 0 = ``model``, e.g. an SFT'd addition model).

    Each generation samples ``samples_per_prompt`` answers at ``temperature`` for ``n_prompts`` fresh
    training prompts, records the measures, and fine-tunes a copy of itself into the next generation:

    - ``mode="unverified"``: SFT on all its own samples, right or wrong (the careless loop).
    - ``mode="verified"``: SFT only on samples ``task.check`` accepts, mixed with real ``(prompt, gold)``
      pairs so that real data is ``real_fraction`` of the mix (Shumailov et al. kept 10%, which reduced the
      degradation).

    Measures per generation: greedy held-out accuracy, the share of correct samples, distinct-1 over the
    sampled answers (word unit: distinct answers / samples), char distinct-2, mean per-prompt answer
    entropy, and the tail mass of numeric answers relative to the real answers' central ``1 - tail`` band.
    Returns an ``LMCollapseRun``; the input model is not modified.
    """
    import torch
    from tqdm.auto import tqdm

    from grpo_lab.distill.student import train_student
    from grpo_lab.evaluation import evaluate
    from grpo_lab.rollout import sample_groups

    if mode not in ("unverified", "verified"):
        raise ValueError(f"mode={mode!r}: use 'unverified' or 'verified'")
    eval_problems = eval_problems or task.heldout(300, seed=seed + 1)
    lo, hi = reference_band([float(p.answer) for p in task.train(4000, seed=seed + 2)], tail)
    current = copy.deepcopy(model).eval()
    run = LMCollapseRun(mode)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(total=generations + 1, desc=f"collapse ({mode})", disable=not progress)
    for g in range(generations + 1):
        problems = task.train(n_prompts, seed=seed * 1000 + g)
        r = sample_groups(
            current,
            tokenizer,
            [p.prompt for p in problems],
            samples_per_prompt,
            max_completion_length=6,
            temperature=temperature,
            generator=gen,
        )
        answers = [t.strip() for t in r.texts]
        owners = [p for p in problems for _ in range(samples_per_prompt)]
        correct = [task.check(p, a) for p, a in zip(owners, answers)]
        per_prompt_h = [
            answer_entropy(answers[i * samples_per_prompt : (i + 1) * samples_per_prompt])
            for i in range(len(problems))
        ]
        examples = _next_generation_data(task, owners, answers, correct, mode, real_fraction, seed * 1000 + g + 500)
        run.generations.append(
            LMGeneration(
                g,
                evaluate(current, tokenizer, task, eval_problems).accuracy,
                sum(correct) / len(correct),
                distinct_n(answers, 1),
                distinct_n(answers, 2, unit="char"),
                float(np.mean(per_prompt_h)),
                tail_mass([float(a) if re.fullmatch(r"-?\d+", a) else math.nan for a in answers], lo, hi),
                len(examples),
            )
        )
        bar.update(1)
        bar.set_postfix(acc=f"{run.generations[-1].accuracy:.2f}")
        if g == generations:
            break
        nxt = copy.deepcopy(current)
        random.Random(seed + g).shuffle(examples)
        train_student(
            nxt,
            tokenizer,
            examples,
            max_steps=steps_per_generation,
            batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=0,
            seed=seed + g,
            progress=False,
        )
        current = nxt.eval()
    bar.close()
    return run


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
