"""Notebook 07a: one step of SMC steering (Lew et al., arXiv 2306.03081), graded against ``grpo_lab.ensemble``.

The student writes ``fn(log_weights, phi_old, phi_new, rng, ess_threshold=0.5) -> (new_log_weights, ancestors)``
for ``n`` particles that have just drawn one token each from the model itself (proposal = target, so no
``p/q`` factor):

- **reweight**: ``w_i <- w_i + phi_new_i - phi_old_i`` in logs, and ``-inf`` where ``phi_new_i`` is ``-inf`` (a
  particle that can no longer meet the constraints; never ``nan``);
- **ESS** of the new weights, ``(sum w)^2 / sum w^2`` (0 when every weight is zero);
- **resample** when ``0 < ESS < ess_threshold * n``: systematic resampling with ONE ``u = rng.random()``, the
  ancestor of slot ``j`` being the first particle whose cumulative weight reaches ``(u + j) / n * sum w``; every
  particle then carries the log of the average weight, ``logsumexp(w) - log n``. Otherwise the ancestors are
  ``0..n-1`` and the weights stay as they are.

Graded on fixed weights against ``ensemble.ess`` and ``ensemble.resample`` with the same seeded ``random.Random``.
"""

import math
import random

from grpo_lab.course.registry import exercise_test
from grpo_lab.ensemble.smc import ess, resample

ID = "07a-smc-step"
FORBID = (
    "grpo_lab.ensemble.resample",
    "grpo_lab.ensemble.ess",
    "grpo_lab.ensemble.smc_steer",
    "grpo_lab.ensemble.smc._extend",
)
INF = math.inf


def _reference(log_w, phi_old, phi_new, seed, threshold=0.5):
    """What the step must return, from the library's ``ess`` and ``resample``."""
    new = [w + b - a if b > -INF and w > -INF else -INF for w, a, b in zip(log_w, phi_old, phi_new)]
    n, e = len(new), ess(new)
    if 0 < e < threshold * n:
        top = max(new)
        avg = top + math.log(sum(math.exp(x - top) for x in new)) - math.log(n)
        return [avg] * n, resample(new, random.Random(seed), "systematic")
    return new, list(range(n))


def _call(fn, log_w, phi_old, phi_new, seed, threshold=0.5):
    got = fn(list(log_w), list(phi_old), list(phi_new), random.Random(seed), threshold)
    assert isinstance(got, tuple) and len(got) == 2, f"return a tuple (new_log_weights, ancestors), got {got!r}"
    weights, ancestors = list(got[0]), [int(i) for i in got[1]]
    assert len(weights) == len(log_w) and len(ancestors) == len(log_w), (
        f"{len(log_w)} particles need {len(log_w)} weights and {len(log_w)} ancestors, "
        f"got {len(weights)} and {len(ancestors)}"
    )
    assert not any(isinstance(w, float) and math.isnan(w) for w in weights), f"a weight is nan: {weights}"
    return weights, ancestors


def _same(fn, log_w, phi_old, phi_new, seed, what, threshold=0.5):
    weights, ancestors = _call(fn, log_w, phi_old, phi_new, seed, threshold)
    want_w, want_a = _reference(log_w, phi_old, phi_new, seed, threshold)
    assert ancestors == want_a, f"{what}: expected ancestors {want_a}, got {ancestors}"
    for g, w in zip(weights, want_w):
        ok = (g == w == -INF) or (w > -INF and abs(g - w) < 1e-9)
        assert ok, f"{what}: expected log-weights {[round(x, 4) for x in want_w]}, got {weights}"


@exercise_test(
    ID,
    title="One step of SMC steering",
    forbid=FORBID,
    hint="With equal weights and unchanged potentials the ESS is n: no resampling, ancestors 0..n-1.",
)
def test_no_resampling_when_the_weights_are_even(fn):
    _same(fn, [0.0] * 4, [0.0] * 4, [0.0] * 4, 0, "four equal particles")
    _same(fn, [0.0, -0.1, 0.2, 0.0], [-1.0] * 4, [-1.2, -1.0, -1.1, -0.9], 1, "small soft changes")


@exercise_test(
    ID,
    hint="Add the CHANGE of the potential, phi_new - phi_old, to each log-weight (not phi_new itself).",
)
def test_weights_multiply_by_the_potential_change(fn):
    _same(fn, [0.0, 0.5, -0.5], [-2.0, -1.0, 0.0], [-2.5, -1.0, -0.3], 3, "soft potentials, ESS still high")


@exercise_test(
    ID,
    hint="A particle whose new potential is -inf gets weight -inf: test for it before subtracting "
    "(-inf - -inf is nan).",
)
def test_dead_particles_get_zero_weight(fn):
    _same(fn, [0.0] * 4, [0.0] * 4, [0.0, -INF, 0.0, 0.0], 2, "one particle dies, ESS 3 of 4 (no resampling)")
    weights, ancestors = _call(fn, [0.0, -INF, 0.0], [0.0, -INF, 0.0], [-INF, -INF, -INF], 5)
    assert all(w == -INF for w in weights) and ancestors == [0, 1, 2], (
        "every particle dead: all weights -inf, ESS 0, nothing to resample from (ancestors 0..n-1), "
        f"got {weights}, {ancestors}"
    )


@exercise_test(
    ID,
    hint="Systematic resampling: one u = rng.random(); slot j takes the first particle whose cumulative weight "
    "reaches (u + j) / n * total; afterwards every weight is log(mean of the weights).",
)
def test_resampling_is_systematic_and_keeps_the_average_weight(fn):
    log_w = [0.0] * 6
    phi_new = [0.0, -INF, -INF, -3.0, -INF, 0.0]
    for seed in range(5):
        _same(fn, log_w, [0.0] * 6, phi_new, seed, f"two strong, one weak, three dead particles (seed {seed})")
    _same(fn, [1.0, 0.0, 0.0, 0.0], [0.0] * 4, [2.0, -INF, -5.0, -INF], 7, "one particle holds almost all weight")


@exercise_test(
    ID,
    hint="Resample only when 0 < ESS < ess_threshold * n: the threshold is the fifth argument.",
)
def test_the_threshold_decides(fn):
    args = ([0.0] * 4, [0.0] * 4, [0.0, 0.0, -INF, -INF])  # ESS = 2
    _same(fn, *args, 4, "ESS 2 of 4 with threshold 0.5 (2 is not below 2: no resampling)", threshold=0.5)
    _same(fn, *args, 4, "ESS 2 of 4 with threshold 0.75 (2 < 3: resample)", threshold=0.75)
