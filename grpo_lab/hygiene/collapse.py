"""Model collapse and the measures that reveal it (notebook 09).

Shumailov et al., "AI models collapse when trained on recursively generated data", Nature 631:755-759
(2024), arXiv 2305.17493 ("The Curse of Recursion"): when each generation of a model is trained on samples
of the previous generation, estimation errors compound; the tails of the distribution go first, then the
whole distribution narrows. In their language-model experiments, keeping 10% of the original data in every
generation reduces the degradation; that accumulating data (keeping the real data and adding synthetic data
instead of replacing it) avoids collapse is the later result of Gerstgrasser et al., arXiv 2404.01413.

- Measures: ``distinct_n`` (Li et al., arXiv 1510.03055), ``answer_entropy``, ``tail_mass``,
  ``reference_band``. Distinct-n counts n-grams within each text (an n-gram never spans two texts) and divides
  unique by total over the whole corpus, the common definition; an empty corpus scores 0.
- ``gaussian_collapse``: the smallest demonstration. Fit a Gaussian by maximum likelihood, sample from the
  fit, refit on the samples, repeat. The fitted variance performs a multiplicative random walk whose
  expected log falls each generation (the MLE variance is biased low, ``E[s^2] = (n-1)/n sigma^2``, and
  ``E[log s^2] < log E[s^2]``), so it drifts to zero; a fixed share of real data anchors it.
- The same recursion on a tiny char LM trains a model per generation, so it is a job:
  ``grpo_lab.jobs.collapse.lm_collapse``.

numpy only (no scipy): every measure here is a few lines and readable.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
