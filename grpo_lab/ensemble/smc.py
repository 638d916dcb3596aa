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
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "BestOfN",
    "HFProposal",
    "Particle",
    "SMCResult",
    "best_of_n",
    "ess",
    "hf_proposal",
    "resample",
    "smc_steer",
]

Proposal = Callable[[tuple[int, ...]], Sequence[float]]  # generated ids -> next-token log-probs
Potential = Callable[[str, bool], float]  # (text so far, finished?) -> log-potential


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
    """One token id drawn from next-token log-probabilities."""
    top = max(logprobs)
    return rng.choices(range(len(logprobs)), weights=[math.exp(x - top) for x in logprobs])[0]


def _extend(p: Particle, proposal, target, potential, decode, eos_id, max_tokens, rng) -> None:
    """Extend a live particle by one token from ``q`` and multiply in ``p/q * exp(phi_new - phi_old)``."""
    q = list(proposal(p.ids))
    tok = _draw(q, rng)
    ids = p.ids + (tok,)
    done = tok == eos_id or len(ids) >= max_tokens
    text = decode(ids[:-1] if tok == eos_id else ids)
    phi = potential(text, done)
    lp = q[tok] if target is None else list(target(p.ids))[tok]
    p.weight += lp - q[tok] + phi - p.phi if phi > -math.inf else -math.inf  # -inf - -inf would be nan
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
    seed: int = 0,
) -> SMCResult:
    """SMC steering (Lew et al., arXiv 2306.03081; DisCIPL, Grand et al., arXiv 2504.07081) of ``proposal`` by
    ``potential``: the module docstring has the weights, the resampling rule and what ``tokens`` counts.

    Each step extends every live (unfinished, non-zero weight) particle by one token; dead particles are not
    extended (no tokens spent on them). After the step, if the ESS is below ``ess_threshold * n_particles``
    the particles are resampled (finished ones included: they compete for the same mass). It stops when no
    particle is live. ``target``: the model the weights correct towards when the proposal differs from it.
    """
    if n_particles < 1 or max_tokens < 1:
        raise ValueError("n_particles and max_tokens must be >= 1")
    rng = random.Random(seed)
    phi0 = potential("", False)
    parts = [Particle(phi=phi0, weight=0.0 if phi0 > -math.inf else -math.inf) for _ in range(n_particles)]
    tokens = resamples = steps = 0
    log_z, history = 0.0, []
    while live := [p for p in parts if not p.done and p.weight > -math.inf]:
        for p in live:
            _extend(p, proposal, target, potential, decode, eos_id, max_tokens, rng)
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


def sample_once(proposal: Proposal, decode, eos_id: int | None, max_tokens: int, rng: random.Random):
    """One plain sample from ``proposal`` until EOS or ``max_tokens``: ``(text, tokens drawn)``, EOS counted."""
    ids: tuple[int, ...] = ()
    while len(ids) < max_tokens:
        tok = _draw(list(proposal(ids)), rng)
        ids += (tok,)
        if tok == eos_id:
            return decode(ids[:-1]), len(ids)
    return decode(ids), len(ids)


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
    seed: int = 0,
) -> BestOfN:
    """Best-of-N with a verifier (rejection sampling): draw up to ``n`` samples, return the first that
    ``verify`` accepts. Tokens are counted as in ``smc_steer`` (every token drawn), so the two compare at a matched
    budget (the baseline of DisCIPL, Grand et al., arXiv 2504.07081)."""
    rng, tokens, text = random.Random(seed), 0, None
    for i in range(n):
        text, used = sample_once(proposal, decode, eos_id, max_tokens, rng)
        tokens += used
        if verify(text):
            return BestOfN(text, True, i + 1, tokens)
    return BestOfN(text, False, n, tokens)


class HFProposal:
    """Next-token log-probs of a Hugging Face causal LM after ``prompt``, computed without a KV cache: each call
    runs the model on prompt + generated ids (quadratic, but short outputs and no cache bookkeeping to read).

    ``temperature`` divides the logits (a sharper or flatter proposal; pass the T=1 one as ``smc_steer``'s ``target``
    to correct for it). Calls are memoised per prefix (``cache`` entries), so particles that share a prefix
    after resampling cost one forward pass. ``decode`` and ``eos_id`` are what ``smc_steer`` and ``best_of_n`` take.
    """

    def __init__(self, model, tokenizer, prompt: str, temperature: float = 1.0, cache: int = 4096):
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.model, self.tokenizer, self.temperature, self.cache = model, tokenizer, temperature, cache
        self.prompt_ids = tuple(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        self.eos_id = tokenizer.eos_token_id
        self.forward_passes = 0
        self._memo: dict[tuple[int, ...], list[float]] = {}

    def __call__(self, ids: tuple[int, ...]) -> list[float]:
        if ids not in self._memo:
            import torch

            with torch.no_grad():
                x = torch.tensor([self.prompt_ids + tuple(ids)], device=self.model.device)
                logits = self.model(input_ids=x).logits[0, -1].float() / self.temperature
            self.forward_passes += 1
            if len(self._memo) >= self.cache:
                self._memo.clear()  # a simple bound: the prefixes of one run are what repeat
            self._memo[ids] = torch.log_softmax(logits, -1).tolist()
        return self._memo[ids]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def hf_proposal(model, tokenizer, prompt: str, temperature: float = 1.0) -> HFProposal:
    """An ``HFProposal`` for ``model`` after ``prompt`` (SMC's proposal, Lew et al., arXiv 2306.03081)."""
    return HFProposal(model, tokenizer, prompt, temperature)
