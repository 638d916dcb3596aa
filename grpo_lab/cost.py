"""The cost model of inference-time ensembles: FLOPs or dated prices, and the expected accuracy of a vote.

Design notes:

- Compute is the honest default: inference costs about 2 x parameters FLOPs per token processed and
  training about 6 x parameters per token (Kaplan et al., arXiv 2001.08361, section 2.1). It needs no
  price list and never goes stale.
- Prices go stale within months, so the library ships none. A ``Price`` must carry the date it was read
  and its source; API cost = input tokens x input price + output tokens x output price (reasoning tokens
  bill as output).
- The accuracy of a vote is computed exactly, not simulated: member correctness is binomial (or
  beta-binomial when items differ in difficulty, which correlates the members' errors), and the wrong
  answers spread over ``n_wrong`` equally likely values, which decides how often wrong members collide and
  outvote a right one. ``simulate_vote_accuracy`` checks the formula by Monte Carlo.
- "Cost per correct answer" = cost per query / accuracy: what a user who needs right answers pays.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from grpo_lab.ensemble.voting import majority_vote

__all__ = [
    "inference_flops",
    "training_flops",
    "Price",
    "api_cost",
    "Option",
    "single_option",
    "ensemble_option",
    "distilled_option",
    "compare_options",
    "vote_accuracy_given_correct",
    "vote_accuracy",
    "vote_accuracy_heterogeneous",
    "beta_binomial_pmf",
    "simulate_vote_accuracy",
    "dominance",
]


# --------------------------------------------------------------------------------------------------
# Compute and prices
# --------------------------------------------------------------------------------------------------


def inference_flops(params: float, tokens: float) -> float:
    """Forward-pass compute: ``2 * params * tokens`` FLOPs (Kaplan et al., arXiv 2001.08361: one multiply
    and one add per parameter per token; attention over the context is ignored, small for short contexts).
    ``tokens`` counts prompt and generated tokens alike (both pass through the model once)."""
    if params < 0 or tokens < 0:
        raise ValueError("params and tokens must be >= 0")
    return 2.0 * params * tokens


def training_flops(params: float, tokens: float) -> float:
    """Training compute: ``6 * params * tokens`` FLOPs (forward 2, backward 4; Kaplan et al., arXiv 2001.08361)."""
    if params < 0 or tokens < 0:
        raise ValueError("params and tokens must be >= 0")
    return 6.0 * params * tokens


@dataclass(frozen=True)
class Price:
    """An API price in currency units per million tokens, with when and where it was read.

    Prices change; a price without a date and a source cannot be checked later, so both are required.
    The course ships no prices: pass the ones you looked up.
    """

    input_per_mtok: float
    output_per_mtok: float
    date: str
    source: str
    currency: str = "USD"

    def __post_init__(self):
        if not str(self.date).strip() or not str(self.source).strip():
            raise ValueError(
                "a Price needs the date it was read and its source (e.g. the provider's pricing page URL)"
            )
        if self.input_per_mtok < 0 or self.output_per_mtok < 0:
            raise ValueError("prices must be >= 0")


def api_cost(input_tokens: float, output_tokens: float, price: Price) -> float:
    """``input_tokens * input price + output_tokens * output price`` (per-million prices); reasoning tokens
    are output tokens."""
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6


# --------------------------------------------------------------------------------------------------
# Options: single model, ensemble, distilled student
# --------------------------------------------------------------------------------------------------


@dataclass
class Option:
    """One way to answer a query. ``cost``: per query, in FLOPs or currency (``unit``); ``accuracy``: the
    expected share of right answers; ``fixed_cost``: a one-off cost (training a student), amortized over
    ``queries`` in ``cost_per_query``."""

    name: str
    cost: float
    accuracy: float
    unit: str = "FLOPs"
    fixed_cost: float = 0.0
    queries: float = 1.0
    detail: dict = field(default_factory=dict)

    @property
    def cost_per_query(self) -> float:
        return self.cost + self.fixed_cost / max(self.queries, 1.0)

    @property
    def cost_per_correct(self) -> float:
        """Cost per query / accuracy: the expected spend for one right answer (inf at accuracy 0)."""
        return self.cost_per_query / self.accuracy if self.accuracy > 0 else math.inf


def _query_cost(params, prompt_tokens, output_tokens, price: Price | None) -> tuple[float, str]:
    if price is not None:
        return api_cost(prompt_tokens, output_tokens, price), price.currency
    return inference_flops(params, prompt_tokens + output_tokens), "FLOPs"


def single_option(
    name: str,
    params: float,
    accuracy: float,
    prompt_tokens: float = 100,
    output_tokens: float = 200,
    price: Price | None = None,
) -> Option:
    """One model answering once: ``2 * params * (prompt + output tokens)`` FLOPs, or the API cost at ``price``."""
    cost, unit = _query_cost(params, prompt_tokens, output_tokens, price)
    return Option(name, cost, accuracy, unit, detail={"params": params, "calls": 1})


def ensemble_option(
    name: str,
    params: float,
    member_accuracy: float,
    n_members: int,
    prompt_tokens: float = 100,
    output_tokens: float = 200,
    *,
    rounds: int = 1,
    n_wrong: float = math.inf,
    correlation: float = 0.0,
    price: Price | None = None,
    accuracy: float | None = None,
) -> Option:
    """``n_members`` copies of a small model (or samples of one), plurality vote.

    Cost: ``n_members * rounds`` calls; in each revision round (ICE) a member also reads the others' replies,
    so its prompt grows by ``(n_members - 1) * output_tokens``. Accuracy: ``vote_accuracy`` (exact, with
    ``n_wrong`` and ``correlation``) unless ``accuracy`` is given (e.g. measured).
    """
    if n_members < 1 or rounds < 1:
        raise ValueError("n_members and rounds must be >= 1")
    total = 0.0
    unit = "FLOPs"
    for r in range(rounds):
        extra = (n_members - 1) * output_tokens if r > 0 else 0
        c, unit = _query_cost(params, prompt_tokens + extra, output_tokens, price)
        total += n_members * c
    acc = vote_accuracy(n_members, member_accuracy, n_wrong, correlation) if accuracy is None else accuracy
    return Option(name, total, acc, unit, detail={"params": params, "calls": n_members * rounds, "members": n_members})


def distilled_option(
    name: str,
    params: float,
    accuracy: float,
    train_tokens: float,
    queries: float,
    prompt_tokens: float = 100,
    output_tokens: float = 200,
    teacher_cost: float = 0.0,
) -> Option:
    """A student distilled from an ensemble: per query it costs what one small model costs; once, it costs
    ``training_flops(params, train_tokens)`` plus ``teacher_cost`` (FLOPs the ensemble spent labelling the
    data), amortized over ``queries``."""
    cost = inference_flops(params, prompt_tokens + output_tokens)
    fixed = training_flops(params, train_tokens) + teacher_cost
    return Option(name, cost, accuracy, "FLOPs", fixed, queries, {"params": params, "calls": 1})


def compare_options(options: Sequence[Option]) -> list[dict]:
    """A table (list of dicts) of ``name, accuracy, cost_per_query, cost_per_correct, relative`` where
    ``relative`` is the cost per correct answer over the cheapest one. All options must share a unit."""
    units = {o.unit for o in options}
    if len(units) > 1:
        raise ValueError(f"cannot compare costs in different units {sorted(units)}; use FLOPs or one currency for all")
    best = min((o.cost_per_correct for o in options), default=math.inf)
    return [
        {
            "name": o.name,
            "accuracy": o.accuracy,
            "cost_per_query": o.cost_per_query,
            "cost_per_correct": o.cost_per_correct,
            "relative": o.cost_per_correct / best if best > 0 and math.isfinite(best) else math.nan,
            "unit": o.unit,
        }
        for o in options
    ]


# --------------------------------------------------------------------------------------------------
# Expected accuracy of a vote
# --------------------------------------------------------------------------------------------------


def _poly_mul(a: list[list[float]], b: list[list[float]], deg: int) -> list[list[float]]:
    """Product of bivariate polynomials ``a[x_power][y_power]`` truncated at x degree ``deg``."""
    ty = len(a[0]) + len(b[0]) - 1
    out = [[0.0] * ty for _ in range(deg + 1)]
    for i, ai in enumerate(a):
        if not any(ai):
            continue
        for j, bj in enumerate(b[: deg + 1 - i]):
            if not any(bj):
                continue
            row = out[i + j]
            for p, x in enumerate(ai):
                if x:
                    for q, y in enumerate(bj):
                        if y:
                            row[p + q] += x * y
    return out


def vote_accuracy_given_correct(k: int, n: int, n_wrong: float = math.inf) -> float:
    """P(the plurality vote is right | k of n voters are right), the wrong n - k answers independent and
    uniform over ``n_wrong`` (M) values, ties broken uniformly at random (what "first seen wins" does when
    voters come in random order).

    Exact: with m = n - k wrong ballots, the vote is right when no wrong value gets more than k ballots,
    and with probability 1/(t+1) when t wrong values get exactly k. Counting assignments of m labelled
    ballots to M values with the exponential generating function
    ``g(x, y) = sum_{c=1}^{k-1} x^c / c! + y x^k / k!`` (y marks a value tied with the truth):
    ``P(t ties, none above k) = sum_j C(M, j) m! [x^m y^t] g^j / M^m`` over j non-empty wrong values.
    M = inf: wrong answers never coincide. M = 1 is the yes/no majority vote.
    """
    if not 0 <= k <= n:
        raise ValueError("need 0 <= k <= n")
    m = n - k
    if k == 0:
        return 0.0
    if m == 0:
        return 1.0
    if math.isinf(n_wrong):
        return 1.0 if k >= 2 else 1.0 / (m + 1)
    M = int(round(n_wrong))
    if M < 1:
        raise ValueError("n_wrong must be >= 1 (or inf)")
    tmax = m // k
    g = [[0.0] * (tmax + 1) for _ in range(m + 1)]
    for c in range(1, min(k - 1, m) + 1):
        g[c][0] = 1.0 / math.factorial(c)
    if k <= m:
        g[k][1] = 1.0 / math.factorial(k)
    # prob = sum_j [M (M-1) ... (M-j+1) / M^j] * m! / (j! M^(m-j)) * [x^m] g^j
    total_by_t = [0.0] * (tmax + 1)
    power = [[1.0] + [0.0] * tmax] + [[0.0] * (tmax + 1) for _ in range(m)]  # g^0
    for j in range(1, min(m, M) + 1):
        power = _poly_mul(power, g, m)
        power = [row[: tmax + 1] for row in power]
        coef = math.exp(
            sum(math.log1p(-i / M) for i in range(j)) + math.lgamma(m + 1) - math.lgamma(j + 1) - (m - j) * math.log(M)
        )
        for t in range(tmax + 1):
            total_by_t[t] += coef * power[m][t]
    return min(1.0, sum(p / (t + 1) for t, p in enumerate(total_by_t)))


def beta_binomial_pmf(n: int, p: float, correlation: float) -> list[float]:
    """Distribution of the number of right members out of n when each item has its own success chance
    q ~ Beta(a, b) with mean ``p`` and intra-item correlation ``correlation`` = 1 / (a + b + 1) (the
    shared-difficulty model: hard items are hard for every member). ``correlation = 0`` is the binomial,
    ``correlation -> 1`` makes all members right or all wrong together."""
    if not 0 <= p <= 1 or not 0 <= correlation <= 1:
        raise ValueError("p and correlation must be in [0, 1]")
    if correlation <= 1e-12 or p in (0.0, 1.0):
        return [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    if correlation >= 1 - 1e-12:
        return [1 - p] + [0.0] * (n - 1) + [p] if n > 0 else [1.0]
    s = (1 - correlation) / correlation
    a, b = p * s, (1 - p) * s
    lb = lambda x, y: math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)  # noqa: E731  log Beta function
    return [math.comb(n, k) * math.exp(lb(a + k, b + n - k) - lb(a, b)) for k in range(n + 1)]


def vote_accuracy(n: int, p: float, n_wrong: float = math.inf, correlation: float = 0.0) -> float:
    """Expected accuracy of a plurality vote of ``n`` members that are each right with probability ``p``.

    ``sum_k P(k right) * vote_accuracy_given_correct(k, n, n_wrong)`` with P(k right) binomial
    (independent members) or beta-binomial (``correlation`` > 0, shared item difficulty;
    ``beta_binomial_pmf``). For n = 1 it is p; with correlation 1 it is p for any n (members fail together).
    With ``n_wrong = 1`` and odd n this is Condorcet's jury theorem (Condorcet, 1785).
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    pmf = beta_binomial_pmf(n, p, correlation)
    return sum(pk * vote_accuracy_given_correct(k, n, n_wrong) for k, pk in enumerate(pmf) if pk > 0)


def vote_accuracy_heterogeneous(accuracies: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Exact accuracy of a (weighted) plurality vote of independent members with different accuracies,
    when wrong answers never coincide (open-ended answers): sum over the 2^n right/wrong patterns; the right
    answer wins when its supporters' weight beats the heaviest single wrong voter, ties broken at random
    among the tied candidates. For up to ~16 members."""
    n = len(accuracies)
    if n > 16:
        raise ValueError("exact enumeration is for at most 16 members; use simulate_vote_accuracy")
    w = [1.0] * n if weights is None else [float(x) for x in weights]
    total = 0.0
    for mask in range(1 << n):
        pr = 1.0
        right_w = 0.0
        wrong_ws = []
        for j in range(n):
            if mask >> j & 1:
                pr *= accuracies[j]
                right_w += w[j]
            else:
                pr *= 1 - accuracies[j]
                wrong_ws.append(w[j])
        if pr == 0 or right_w <= 0:
            continue
        top = max(wrong_ws, default=0.0)
        if right_w > top + 1e-12:
            total += pr
        elif abs(right_w - top) <= 1e-12:
            total += pr / (1 + sum(abs(x - top) <= 1e-12 for x in wrong_ws))
    return total


def simulate_vote_accuracy(
    accuracies: Sequence[float],
    n_items: int = 20000,
    n_wrong: float = math.inf,
    correlation: float = 0.0,
    weights: Sequence[float] | None = None,
    seed: int = 0,
) -> float:
    """Monte Carlo estimate of a vote's accuracy: draws each item's difficulty (the same beta model as
    ``vote_accuracy``, shifting every member's accuracy), each member's right/wrong and its wrong answer
    (uniform over ``n_wrong`` values), and votes with ``grpo_lab.ensemble.voting.majority_vote`` over string
    answers, members in random order. Its standard error is about sqrt(a (1 - a) / n_items)."""
    rng = random.Random(seed)
    hits = 0
    n = len(accuracies)
    for _ in range(n_items):
        if correlation > 0:
            # Shared difficulty: the item's success chance q ~ Beta (mean = the members' mean accuracy), each
            # member shifted by its own offset from that mean. Exact for equal accuracies (then Bernoulli(q)).
            p_mean = sum(accuracies) / n
            s = (1 - correlation) / correlation
            q = rng.betavariate(max(p_mean * s, 1e-9), max((1 - p_mean) * s, 1e-9))
            probs = [min(1.0, max(0.0, q + (a - p_mean))) for a in accuracies]
        else:
            probs = list(accuracies)
        ans = []
        for j in range(n):
            if rng.random() < probs[j]:
                ans.append("0")
            elif math.isinf(n_wrong):
                ans.append(str(1 + rng.getrandbits(48)))
            else:
                ans.append(str(1 + rng.randrange(int(round(n_wrong)))))
        order = list(range(n))
        rng.shuffle(order)
        v = majority_vote([ans[j] for j in order], None if weights is None else [weights[j] for j in order])
        hits += v.answer == "0"
    return hits / n_items


def dominance(single: Option, ensemble: Option) -> str:
    """Which option wins: ``"ensemble"`` (at least as accurate and at most as costly, one strictly),
    ``"single"`` (the reverse), or ``"trade-off"`` (one is cheaper, the other more accurate)."""
    acc_e, acc_s = ensemble.accuracy, single.accuracy
    c_e, c_s = ensemble.cost_per_query, single.cost_per_query
    if acc_e >= acc_s and c_e <= c_s and (acc_e > acc_s or c_e < c_s):
        return "ensemble"
    if acc_s >= acc_e and c_s <= c_e and (acc_s > acc_e or c_s < c_e):
        return "single"
    return "trade-off"
