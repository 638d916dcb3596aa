"""Sequential Monte Carlo steering: particles extended a token at a time, weighted by a potential, resampled.

The method of Lew et al., "Sequential Monte Carlo Steering of Large Language Models using Probabilistic
Programs" (arXiv 2306.03081), which DisCIPL (Grand et al., arXiv 2504.07081) runs with a planner-written
program. The target over complete outputs ``x`` is ``p(x) * exp(phi_final(x))``: the language model ``p``
restricted (``phi`` 0 / -inf) or tilted (finite ``phi``) by the program. Written from the papers, for reading.

- A proposal is any callable from the generated token ids (a tuple) to next-token log-probabilities (a list,
  one per token id), so a toy table and a Hugging Face causal LM (``hf_proposal``) plug in alike.
- Weights: extending ``x`` by token ``t`` drawn from ``q`` multiplies the weight by
  ``p(t | x) / q(t | x) * exp(phi(x t) - phi(x))`` (the potential's change is the twist); without a separate
  ``target``, ``p = q`` and only the potential's change remains. A particle that reaches EOS or ``max_tokens``
  is finished: its potential is then taken with ``final=True`` (the exact check) and it is not extended again.
- Resampling (systematic, or multinomial) when the effective sample size ``(sum w)^2 / sum w^2`` falls below
  ``ess_threshold * n``; afterwards every particle carries the average weight, so the estimate of the normaliser
  ``Z = E_p[exp(phi_final)]`` (``SMCResult.log_evidence``) stays unbiased.
- ``tokens`` counts every token drawn from the proposal, for particles later discarded too: the cost to compare
  with best-of-N (``best_of_n``) at a matched budget.
- A proposal with a ``batch`` method (``HFProposal``) is asked for all live particles at once, one batched
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
    "HFProposal",
    "Particle",
    "SMCResult",
    "best_of_n",
    "ess",
    "hf_proposal",
    "resample",
    "sample_many",
    "sample_once",
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
        qs = _batched(proposal, [p.ids for p in live])
        targets = _batched(target, [p.ids for p in live]) if target is not None else [None] * len(live)
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


def sample_once(
    proposal: Proposal, decode, eos_id: int | None, max_tokens: int, rng: random.Random, stop: Stop | None = None
):
    """One plain sample from ``proposal`` until EOS, ``max_tokens`` or ``stop(text)``: ``(text, tokens drawn)``,
    EOS counted."""
    ids: tuple[int, ...] = ()
    while len(ids) < max_tokens:
        tok = _draw(proposal(ids), rng)
        ids += (tok,)
        if tok == eos_id:
            return decode(ids[:-1]), len(ids)
        if stop is not None and stop(decode(ids)):
            break
    return decode(ids), len(ids)


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
    seqs: list[tuple[int, ...]] = [()] * n
    texts, done = [""] * n, [False] * n
    while live := [i for i in range(n) if not done[i]]:
        for i, q in zip(live, _batched(proposal, [seqs[i] for i in live])):
            tok = _draw(q, rng)
            seqs[i] += (tok,)
            texts[i] = decode(seqs[i][:-1] if tok == eos_id else seqs[i])
            done[i] = tok == eos_id or len(seqs[i]) >= max_tokens or (stop is not None and stop(texts[i]))
    return [(t, len(ids)) for t, ids in zip(texts, seqs)]


@dataclass
class BestOfN:
    """``text``: the first verified sample, else the last one drawn; ``verified``; ``tries``; ``tokens`` drawn."""

    text: str | None
    verified: bool
    tries: int
    tokens: int


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
    rng, tokens, tries, text = random.Random(seed), 0, 0, None
    step = max(1, chunk) if hasattr(proposal, "batch") else 1
    while tries < n and (budget is None or tokens < budget):
        k = min(step, n - tries)
        if k == 1:
            samples = [sample_once(proposal, decode, eos_id, max_tokens, rng, stop)]
        else:
            samples = sample_many(proposal, k, decode, eos_id, max_tokens, rng, stop)
        for sample, used in samples:
            tries += 1
            if budget is not None and tokens + used > budget:
                return BestOfN(text, False, tries, budget)  # cut at the budget, unfinished: not accepted
            tokens, text = tokens + used, sample
            if verify(sample):
                return BestOfN(sample, True, tries, tokens)
    return BestOfN(text, False, tries, tokens)


class HFProposal:
    """Next-token log-probs of a Hugging Face causal LM after ``prompt``: SMC's proposal (Lew et al., arXiv
    2306.03081) over a real model.

    - Called on one prefix (``proposal(ids)``) it runs the model on prompt + generated ids with no key/value
      cache (quadratic in the length, but nothing to keep in step): the reference.
    - ``batch(list_of_ids)``, what ``smc_steer`` and ``best_of_n`` use when it exists, answers every prefix of
      one step at once. The prefixes of one step have the same length, and each extends a prefix of the step
      before by one token, so it keeps the key/value cache of the previous batch, selects (and copies, for
      particles resampled more than once) the rows of their parents, and runs one token per row: one forward
      pass of ``len(batch)`` tokens per step instead of ``len(batch)`` passes over the whole text. Identical
      prefixes are computed once. When a prefix's parent is not in the cache (the first call, or prefixes of
      other lengths) it falls back to a full forward pass over prompt + ids, which starts a new cache.

    ``temperature`` divides the logits (a sharper or flatter proposal; pass the T=1 one as ``smc_steer``'s
    ``target`` to correct for it). Log-probs are numpy float32 arrays of the vocabulary's size. Single calls are
    memoised per prefix (up to ``cache`` entries, ~200 kB each for a 50k vocabulary). ``forward_passes`` counts
    model calls, ``positions`` the token positions they processed (prompt included): the compute actually
    spent. ``decode`` and ``eos_id`` are what ``smc_steer`` and ``best_of_n`` take.
    """

    def __init__(self, model, tokenizer, prompt: str, temperature: float = 1.0, cache: int = 256):
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.model, self.tokenizer, self.temperature, self.cache = model, tokenizer, temperature, cache
        self.prompt_ids = tuple(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        self.eos_id = tokenizer.eos_token_id
        self.forward_passes = self.positions = 0
        self._memo: dict[tuple[int, ...], np.ndarray] = {}
        self._past = None  # the key/value cache of the last batch, one row per entry of _rows
        self._rows: dict[tuple[int, ...], int] = {}

    def _logprobs(self, logits) -> np.ndarray:
        import torch

        return torch.log_softmax(logits.float() / self.temperature, -1).cpu().numpy()

    def __call__(self, ids: tuple[int, ...]) -> np.ndarray:
        ids = tuple(ids)
        if ids not in self._memo:
            import torch

            with torch.no_grad():
                x = torch.tensor([self.prompt_ids + ids], device=self.model.device)
                logits = self.model(input_ids=x, use_cache=False, logits_to_keep=1).logits[0, -1]
            self.forward_passes, self.positions = self.forward_passes + 1, self.positions + x.shape[1]
            if len(self._memo) >= self.cache:
                self._memo.clear()  # a simple bound: the prefixes of one run are what repeat
            self._memo[ids] = self._logprobs(logits)
        return self._memo[ids]

    def batch(self, batch: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Next-token log-probs for every prefix of ``batch``, in order (the class docstring has how)."""
        import torch

        keys = [tuple(ids) for ids in batch]
        unique = list(dict.fromkeys(keys))
        if not unique:
            return []
        if len({len(k) for k in unique}) > 1:
            return [self(k) for k in keys]  # not one SMC step: no common cache to extend
        parents = [k[:-1] for k in unique]
        from grpo_lab.rollout_fast import cache_kwarg, cache_of  # the cache keyword changed within 5.x

        dev = self.model.device
        with torch.no_grad():
            if unique[0] and self._past is not None and all(p in self._rows for p in parents):
                rows = torch.tensor([self._rows[p] for p in parents], device=dev)
                self._past.reorder_cache(rows)  # index_select on the batch axis: the parents' rows, in order
                x = torch.tensor([[k[-1]] for k in unique], device=dev)
                out = self.model(
                    input_ids=x, use_cache=True, logits_to_keep=1, **{cache_kwarg(self.model): self._past}
                )
            else:
                x = torch.tensor([self.prompt_ids + k for k in unique], device=dev)
                out = self.model(input_ids=x, use_cache=True, logits_to_keep=1)
        self.forward_passes, self.positions = self.forward_passes + 1, self.positions + x.numel()
        self._past, self._rows = cache_of(out), {k: i for i, k in enumerate(unique)}
        lps = self._logprobs(out.logits[:, -1])
        found = {k: lps[i] for i, k in enumerate(unique)}
        return [found[k] for k in keys]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of generated token ids (special tokens skipped)."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def hf_proposal(model, tokenizer, prompt: str, temperature: float = 1.0) -> HFProposal:
    """An ``HFProposal`` for ``model`` after ``prompt`` (SMC's proposal, Lew et al., arXiv 2306.03081)."""
    return HFProposal(model, tokenizer, prompt, temperature)
