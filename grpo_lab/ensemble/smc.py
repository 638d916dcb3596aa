"""Sequential Monte Carlo steering: particles extended a token at a time, weighted by a potential, resampled.

The method of Lew et al., "Sequential Monte Carlo Steering of Large Language Models using Probabilistic
Programs" (arXiv 2306.03081), which DisCIPL (Grand et al., arXiv 2504.07081) runs with a planner-written
program. The target over complete outputs ``x`` is ``p(x) * exp(phi_final(x))``: the language model ``p``
restricted (``phi`` 0 / -inf) or tilted (finite ``phi``) by the program. Written from the papers, for reading.

- A proposal is any callable from the generated token ids (a tuple) to next-token log-probabilities (a list,
  one per token id), so a toy table and a Hugging Face causal LM (``smc_hf.hf_proposal``) plug in alike.
- Weights: extending ``x`` by token ``t`` drawn from ``q`` multiplies the weight by
  ``p(t | x) / q(t | x) * exp(phi(x t) - phi(x))`` (the potential's change is the twist); without a separate
  ``target``, ``p = q`` and only the potential's change remains. A particle that reaches EOS or ``max_tokens``
  is finished: its potential is then taken with ``final=True`` (the exact check) and it is not extended again.
- Resampling (systematic, or multinomial) when the effective sample size ``(sum w)^2 / sum w^2`` falls below
  ``ess_threshold * n``; afterwards every particle carries the average weight, so the estimate of the normaliser
  ``Z = E_p[exp(phi_final)]`` (``SMCResult.log_evidence``) stays unbiased.
- ``tokens`` counts every token drawn from the proposal, for particles later discarded too: the cost to compare
  with best-of-N (``best_of_n``) at a matched budget.
- A proposal with a ``batch`` method (``smc_hf.HFProposal``) is asked for all live particles at once, one batched
  forward pass per step over a key/value cache; the draws, weights and random numbers are the same as one call
  per particle, so the result is too (up to floating-point rounding in the batched matrix products).
- ``stop``: an optional test on the decoded text that finishes a particle (for example "the first line has
  ended"), as EOS does, so no tokens are spent after the answer is complete.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BestOfN",
    "Particle",
    "SMCResult",
    "best_of_n",
    "best_of_n_loop",
    "drive",
    "ess",
    "greedy_loop",
    "resample",
    "sample_many",
    "sample_loop",
    "sample_once",
    "smc_loop",
    "smc_steer",
]

Proposal = Callable[[tuple[int, ...]], Sequence[float]]  # generated ids -> next-token log-probs
Potential = Callable[[str, bool], float]  # (text so far, finished?) -> log-potential
Stop = Callable[[str], bool]  # decoded text -> finished (like EOS)


@dataclass
class Particle:
    """One partial output: its token ``ids``, decoded ``text``, log-``weight``, log-potential ``phi``, ``done``."""

    ids: tuple[int, ...] = ()
    text: str = ""
    weight: float = 0.0
    phi: float = 0.0
    done: bool = False


@dataclass
class SMCResult:
    """The final particles, the ``tokens`` drawn, the number of ``resamples`` and the ``log_evidence`` estimate
    of ``log Z`` (-inf when every particle died)."""

    particles: list[Particle]
    tokens: int
    resamples: int
    log_evidence: float
    steps: int = 0
    history: list[float] = field(default_factory=list)  # the ESS after each step, before any resampling

    def posterior(self) -> dict[str, float]:
        """The weighted particles as a distribution over finished texts: ``w_i / sum w`` summed per text
        (empty when every weight is zero)."""
        top = max((p.weight for p in self.particles), default=-math.inf)
        if top == -math.inf:
            return {}
        mass: dict[str, float] = {}
        for p in self.particles:
            mass[p.text] = mass.get(p.text, 0.0) + math.exp(p.weight - top)
        total = sum(mass.values())
        return {t: m / total for t, m in mass.items() if m > 0}

    @property
    def answer(self) -> str | None:
        """The text with the most posterior mass (ties to the first seen), None when every particle died."""
        post = self.posterior()
        return max(post, key=post.get) if post else None


def _logsumexp(xs: Sequence[float]) -> float:
    top = max(xs, default=-math.inf)
    return top if top == -math.inf else top + math.log(sum(math.exp(x - top) for x in xs))


def ess(log_weights: Sequence[float]) -> float:
    """Effective sample size ``(sum w)^2 / sum w^2`` of log-weights (0 when every weight is zero)."""
    top = max(log_weights, default=-math.inf)
    if top == -math.inf:
        return 0.0
    w = [math.exp(x - top) for x in log_weights]
    return sum(w) ** 2 / sum(x * x for x in w)


def resample(log_weights: Sequence[float], rng: random.Random, method: str = "systematic") -> list[int]:
    """``n`` ancestor indices drawn with probability ``w_i / sum w``: ``systematic`` (one uniform ``u``, points
    ``(u + j) / n``: lower variance) or ``multinomial`` (``n`` independent draws)."""
    n, top = len(log_weights), max(log_weights)
    w = [math.exp(x - top) for x in log_weights]
    if method == "multinomial":
        return rng.choices(range(n), weights=w, k=n)
    if method != "systematic":
        raise ValueError(f"method must be 'systematic' or 'multinomial', not {method!r}")
    total, out, acc, i = sum(w), [], w[0], 0
    u = rng.random()
    for j in range(n):
        point = (u + j) / n * total
        while acc < point and i < n - 1:  # walk the cumulative weights up to this point
            i += 1
            acc += w[i]
        out.append(i)
    return out


def _draw(logprobs: Sequence[float], rng: random.Random) -> int:
    """One token id drawn from next-token log-probabilities with one ``rng.random()``, the draw of
    ``rng.choices(range(n), weights=exp(logprobs))`` (bisect on the cumulative weights), vectorised: a real
    vocabulary has ~50k entries and this runs once per token."""
    x = np.asarray(logprobs, dtype=np.float64)
    cum = np.cumsum(np.exp(x - x.max()))
    return bisect_right(cum, rng.random() * cum[-1], 0, len(cum) - 1)


def _batched(fn: Proposal, batch: list[tuple[int, ...]]) -> list[Sequence[float]]:
    """``fn`` on every prefix of ``batch``: one ``fn.batch`` call when it has one, else one call per prefix."""
    if hasattr(fn, "batch"):
        return list(fn.batch(batch))
    return [fn(ids) for ids in batch]


def _extend(p: Particle, q, lp_target, potential, decode, eos_id, max_tokens, stop, rng) -> None:
    """Extend a live particle by one token drawn from ``q`` (its next-token log-probs) and multiply in
    ``p/q * exp(phi_new - phi_old)``; ``lp_target``: the target's log-probs (None when the target is ``q``)."""
    tok = _draw(q, rng)
    ids = p.ids + (tok,)
    text = decode(ids[:-1] if tok == eos_id else ids)
    done = tok == eos_id or len(ids) >= max_tokens or (stop is not None and stop(text))
    phi = potential(text, done)
    lp = float(q[tok] if lp_target is None else lp_target[tok])
    p.weight += lp - float(q[tok]) + phi - p.phi if phi > -math.inf else -math.inf  # -inf - -inf would be nan
    p.ids, p.text, p.phi, p.done = ids, text, phi, done


def drive(loop, answer: Callable):
    """Run a loop generator (``smc_loop``, ``sample_loop``, ``best_of_n_loop``) to its end: each request it yields
    (the prefixes it needs next-token log-probs for) is answered with ``answer(request)``; returns what the loop
    returns. Written as generators, the loops leave the model calls to their driver, so one driver can also
    run many loops in lockstep (``smc_hf.drive_many``)."""
    try:
        request = next(loop)
        while True:
            request = loop.send(answer(request))
    except StopIteration as done:
        return done.value


def smc_loop(
    potential: Potential,
    *,
    decode: Callable[[tuple[int, ...]], str],
    eos_id: int | None,
    n_particles: int = 16,
    max_tokens: int = 32,
    ess_threshold: float = 0.5,
    method: str = "systematic",
    stop: Stop | None = None,
    seed: int = 0,
    with_target: bool = False,
):
    """The loop of ``smc_steer`` as a generator: each step yields the live particles' token ids and receives
    their next-token log-probs (with ``with_target``, ``(proposal, target)`` pairs); returns the ``SMCResult``.
    ``smc_steer``'s docstring has the rules."""
    if n_particles < 1 or max_tokens < 1:
        raise ValueError("n_particles and max_tokens must be >= 1")
    rng = random.Random(seed)
    phi0 = potential("", False)
    parts = [Particle(phi=phi0, weight=0.0 if phi0 > -math.inf else -math.inf) for _ in range(n_particles)]
    tokens = resamples = steps = 0
    log_z, history = 0.0, []
    while live := [p for p in parts if not p.done and p.weight > -math.inf]:
        # All live particles have drawn the same number of tokens (one per step), so a batched proposal can
        # run them as one batch without padding; the draws below use the random numbers in particle order.
        got = list((yield [p.ids for p in live]))
        qs, targets = zip(*got) if with_target else (got, [None] * len(live))
        for p, q, t in zip(live, qs, targets):
            _extend(p, q, t, potential, decode, eos_id, max_tokens, stop, rng)
        tokens, steps = tokens + len(live), steps + 1
        history.append(ess([p.weight for p in parts]))
        if 0 < history[-1] < ess_threshold * n_particles:
            log_mean = _logsumexp([p.weight for p in parts]) - math.log(n_particles)
            log_z += log_mean  # the mass so far, kept in the evidence; weights reset to its average below
            idx = resample([p.weight for p in parts], rng, method)
            parts = [Particle(parts[i].ids, parts[i].text, 0.0, parts[i].phi, parts[i].done) for i in idx]
            resamples += 1
    log_z += _logsumexp([p.weight for p in parts]) - math.log(n_particles)
    return SMCResult(parts, tokens, resamples, log_z, steps, history)


def smc_steer(
    proposal: Proposal,
    potential: Potential,
    *,
    decode: Callable[[tuple[int, ...]], str],
    eos_id: int | None,
    n_particles: int = 16,
    max_tokens: int = 32,
    ess_threshold: float = 0.5,
    method: str = "systematic",
    target: Proposal | None = None,
    stop: Stop | None = None,
    seed: int = 0,
) -> SMCResult:
    """SMC steering (Lew et al., arXiv 2306.03081; DisCIPL, Grand et al., arXiv 2504.07081) of ``proposal`` by
    ``potential``: the module docstring has the weights, the resampling rule and what ``tokens`` counts.

    Each step extends every live (unfinished, non-zero weight) particle by one token; dead particles are not
    extended (no tokens spent on them). After the step, if the ESS is below ``ess_threshold * n_particles``
    the particles are resampled (finished ones included: they compete for the same mass). It stops when no
    particle is live. ``target``: the model the weights correct towards when the proposal differs from it.
    ``stop``: a test on the decoded text that finishes a particle, as EOS does. Proposals (and targets) with a
    ``batch`` method get one call per step for all live particles (``HFProposal.batch``).
    """
    loop = smc_loop(potential, decode=decode, eos_id=eos_id, n_particles=n_particles, max_tokens=max_tokens,
                    ess_threshold=ess_threshold, method=method, stop=stop, seed=seed, with_target=target is not None)  # fmt: skip
    if target is None:
        return drive(loop, lambda prefixes: _batched(proposal, prefixes))
    return drive(loop, lambda prefixes: list(zip(_batched(proposal, prefixes), _batched(target, prefixes))))


def sample_once(
    proposal: Proposal, decode, eos_id: int | None, max_tokens: int, rng: random.Random, stop: Stop | None = None
):
    """One plain sample from ``proposal`` until EOS, ``max_tokens`` or ``stop(text)``: ``(text, tokens drawn)``,
    EOS counted."""
    return sample_many(proposal, 1, decode, eos_id, max_tokens, rng, stop)[0]


def sample_loop(n: int, decode, eos_id: int | None, max_tokens: int, rng: random.Random, stop: Stop | None = None):
    """``sample_many`` as a generator (``drive`` runs it): yields the unfinished samples' token ids each step,
    receives their next-token log-probs, returns ``[(text, tokens drawn)]``."""
    seqs: list[tuple[int, ...]] = [()] * n
    texts, done = [""] * n, [False] * n
    while live := [i for i in range(n) if not done[i]]:
        for i, q in zip(live, (yield [seqs[i] for i in live])):
            tok = _draw(q, rng)
            seqs[i] += (tok,)
            texts[i] = decode(seqs[i][:-1] if tok == eos_id else seqs[i])
            done[i] = tok == eos_id or len(seqs[i]) >= max_tokens or (stop is not None and stop(texts[i]))
    return [(t, len(ids)) for t, ids in zip(texts, seqs)]


def sample_many(
    proposal: Proposal,
    n: int,
    decode,
    eos_id: int | None,
    max_tokens: int,
    rng: random.Random,
    stop: Stop | None = None,
) -> list[tuple[str, int]]:
    """``n`` independent samples drawn in lockstep (one ``_batched`` call per step for the unfinished ones):
    ``[(text, tokens drawn)]`` in order, each distributed as ``sample_once``'s. With a batched proposal this is
    one forward pass per step for all ``n``; the random numbers are used in another order than ``n`` calls of
    ``sample_once``, so the same seed gives other samples from the same distribution."""
    return drive(sample_loop(n, decode, eos_id, max_tokens, rng, stop), lambda prefixes: _batched(proposal, prefixes))


def greedy_loop(decode, eos_id: int | None, max_tokens: int, stop: Stop | None = None):
    """Greedy decoding as a loop generator (``drive``, ``smc_hf.drive_many``): yields ``[ids]``, receives their
    log-probs, takes the most likely token until EOS, ``max_tokens`` or ``stop(text)``; returns ``(text, tokens)``,
    EOS counted."""
    ids: tuple[int, ...] = ()
    while len(ids) < max_tokens:
        (q,) = yield [ids]
        tok = int(np.argmax(q))
        ids += (tok,)
        if tok == eos_id:
            return decode(ids[:-1]), len(ids)
        if stop is not None and stop(decode(ids)):
            break
    return decode(ids), len(ids)


@dataclass
class BestOfN:
    """``text``: the first verified sample, else the last one drawn; ``verified``; ``tries``; ``tokens`` drawn."""

    text: str | None
    verified: bool
    tries: int
    tokens: int


@dataclass
class _Tally:
    """Best-of-N's running count over the samples taken so far; ``result`` is set once it is decided."""

    tokens: int = 0
    tries: int = 0
    text: str | None = None
    result: BestOfN | None = None


def _take(tally: _Tally, samples, verify: Callable[[str], bool], budget: int | None) -> None:
    """Take ``samples`` in order into ``tally``: stop at the first one ``verify`` accepts, or cut at ``budget``."""
    for sample, used in samples:
        tally.tries += 1
        if budget is not None and tally.tokens + used > budget:
            tally.tokens = budget  # cut at the budget, unfinished: not accepted
            tally.result = BestOfN(tally.text, False, tally.tries, budget)
            return
        tally.tokens, tally.text = tally.tokens + used, sample
        if verify(sample):
            tally.result = BestOfN(sample, True, tally.tries, tally.tokens)
            return


def _more(tally: _Tally, n: int, budget: int | None) -> bool:
    """Whether best-of-N draws again: undecided, fewer than ``n`` tries, budget left."""
    return tally.result is None and tally.tries < n and (budget is None or tally.tokens < budget)


def best_of_n_loop(
    verify: Callable[[str], bool],
    *,
    decode,
    eos_id: int | None,
    n: int,
    max_tokens: int = 32,
    budget: int | None = None,
    stop: Stop | None = None,
    chunk: int = 1,
    seed: int = 0,
):
    """``best_of_n`` as a generator (``drive`` runs it): ``chunk`` samples at a time through ``sample_loop``;
    returns the ``BestOfN``. ``best_of_n``'s docstring has the rules."""
    rng, tally = random.Random(seed), _Tally()
    while _more(tally, n, budget):
        k = min(max(1, chunk), n - tally.tries)
        _take(tally, (yield from sample_loop(k, decode, eos_id, max_tokens, rng, stop)), verify, budget)
    return tally.result or BestOfN(tally.text, False, tally.tries, tally.tokens)


def best_of_n(
    proposal: Proposal,
    verify: Callable[[str], bool],
    *,
    decode,
    eos_id: int | None,
    n: int,
    max_tokens: int = 32,
    budget: int | None = None,
    stop: Stop | None = None,
    chunk: int = 8,
    seed: int = 0,
) -> BestOfN:
    """Best-of-N with a verifier (rejection sampling): draw up to ``n`` samples, return the first that
    ``verify`` accepts. Tokens are counted as in ``smc_steer`` (every token drawn), so the two compare at a matched
    budget (the baseline of DisCIPL, Grand et al., arXiv 2504.07081).

    ``budget``: at most this many tokens in all. The sample that would cross it is cut there: its tokens up to
    the budget are counted and it cannot be accepted (it is unfinished), so ``tokens <= budget``. A proposal with
    a ``batch`` method draws ``chunk`` samples at a time in lockstep (``sample_many``); the samples are still
    taken in order and counted up to the first accepted one, as a one-at-a-time sampler would have drawn them
    (the rest of its chunk is computed but not counted). ``text``: the accepted sample, else the last finished
    one.
    """
    chunk = max(1, chunk) if hasattr(proposal, "batch") else 1
    loop = best_of_n_loop(verify, decode=decode, eos_id=eos_id, n=n, max_tokens=max_tokens, budget=budget, stop=stop,
                          chunk=chunk, seed=seed)  # fmt: skip
    return drive(loop, lambda prefixes: _batched(proposal, prefixes))
