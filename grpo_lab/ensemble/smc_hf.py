"""SMC steering (Lew et al., arXiv 2306.03081) over Hugging Face causal LMs, for one prompt or many at once.

- ``HFProposal`` (``hf_proposal``): one prompt. Called on one prefix it runs the model without a cache (the
  reference); its ``batch`` answers all live particles of a step in one forward pass over a key/value cache.
- ``HFMultiProposal`` with ``smc_steer_many`` and ``best_of_n_many``: many prompts. On a CPU a forward pass of a
  small model costs a fixed overhead plus a little per row, so eight particles of one task leave most of a pass
  unused. The loops of ``smc`` (``smc_loop``, ``sample_loop``, written as generators) for many tasks run in
  lockstep (``drive_many``), and ``HFMultiProposal`` answers all their prefixes in one batch over a key/value
  cache shared by every task's particles: the prompts are left-padded to one length, with an attention mask and
  position ids that skip the padding (the layout of ``grpo_lab.rollout``). Each task's loop keeps its own random
  numbers, so its result is the one ``smc_steer`` or ``best_of_n`` gives for that task alone (up to
  floating-point rounding of the padded batch). The best-of-N baseline is DisCIPL's (Grand et al., arXiv
  2504.07081).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np

from grpo_lab.ensemble.smc import BestOfN, Potential, SMCResult, Stop, _more, _take, _Tally, sample_loop, smc_loop

__all__ = ["HFMultiProposal", "HFProposal", "best_of_n_many", "drive_many", "hf_proposal", "smc_steer_many"]

Key = tuple[int, tuple[int, ...]]  # (task index, generated token ids)


def drive_many(loops: Sequence, answer: Callable[[list[Key]], list]) -> list:
    """Run loop generators (``smc.drive``'s kind) in lockstep: every step, the requests of all loops still
    running are answered by ONE call ``answer([(loop index, prefix), ...])`` and split back; returns each loop's
    return value, in order."""
    results: list = [None] * len(loops)
    pending: dict[int, list] = {}
    for i, loop in enumerate(loops):
        try:
            pending[i] = list(next(loop))
        except StopIteration as done:
            results[i] = done.value
    while pending:
        keys = [(i, tuple(ids)) for i, req in pending.items() for ids in req]
        answers, start, nxt = list(answer(keys)), 0, {}
        for i, req in pending.items():
            part, start = answers[start : start + len(req)], start + len(req)
            try:
                nxt[i] = list(loops[i].send(part))
            except StopIteration as done:
                results[i] = done.value
        pending = nxt
    return results


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


class HFMultiProposal:
    """Next-token log-probs of a Hugging Face causal LM after each of ``prompts`` (task ``t`` reads
    ``prompts[t]``), for ``drive_many``: ``batch_many([(t, ids), ...])`` answers every prefix in one forward
    pass. As ``HFProposal.batch``, it keeps the key/value cache of the previous call and extends the rows of
    the parents ``(t, ids[:-1])`` by one token each; otherwise (the first call, prefixes of unequal lengths, a
    parent not in the cache) it runs prompt + ids in full, left-padded. ``temperature`` divides the logits.
    ``prefix``: text every prompt starts with (a few-shot prompt), computed once and its cache copied to every
    row, so it costs one pass however many prompts follow it; it and each prompt are tokenized apart, so split
    them where a special token starts (a chat turn), where the tokenization of the whole is the same.
    ``forward_passes`` and ``positions`` count the model calls and the token positions they processed (padding
    included)."""

    def __init__(self, model, tokenizer, prompts: Sequence[str], temperature: float = 1.0, prefix: str = ""):
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.model, self.tokenizer, self.temperature = model, tokenizer, temperature
        ids_of = lambda text: tuple(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        self.prefix_ids, self.prompt_ids = ids_of(prefix) if prefix else (), [ids_of(p) for p in prompts]
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.forward_passes = self.positions = 0
        self._past = self._mask = self._next_pos = self._prefix_cache = None
        self._rows: dict[Key, int] = {}

    def _prefix(self, rows: int, dev):
        """``(cache, mask)`` of the shared prefix repeated for ``rows`` rows (computed once, then copied)."""
        import copy

        import torch

        from grpo_lab.rollout_fast import cache_of

        if self._prefix_cache is None:
            x = torch.tensor([self.prefix_ids], device=dev)
            self._prefix_cache = cache_of(self.model(input_ids=x, use_cache=True, logits_to_keep=1))
            self.forward_passes, self.positions = self.forward_passes + 1, self.positions + x.numel()
        cache = copy.deepcopy(self._prefix_cache)
        cache.reorder_cache(torch.zeros(rows, dtype=torch.long, device=dev))
        return cache, torch.ones(rows, len(self.prefix_ids), dtype=torch.long, device=dev)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of generated token ids (special tokens skipped)."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def batch_many(self, keys: Sequence[Key]) -> list[np.ndarray]:
        """Next-token log-probs (numpy float32, one per vocabulary entry) for each ``(task, ids)``, in order."""
        import torch

        from grpo_lab.rollout_fast import cache_kwarg, cache_of

        keys = [(t, tuple(ids)) for t, ids in keys]
        unique = list(dict.fromkeys(keys))
        if not unique:
            return []
        dev = self.model.device
        parents = [(t, ids[:-1]) for t, ids in unique]
        same_len = len({len(ids) for _, ids in unique}) == 1
        with torch.no_grad():
            if same_len and unique[0][1] and self._past is not None and all(p in self._rows for p in parents):
                rows = torch.tensor([self._rows[p] for p in parents], device=dev)
                self._past.reorder_cache(rows)  # the parents' rows, in order (copied where taken twice)
                mask = torch.cat([self._mask[rows], self._mask.new_ones(len(unique), 1)], dim=1)
                pos = self._next_pos[rows]
                x = torch.tensor([[ids[-1]] for _, ids in unique], device=dev)
                kw = {cache_kwarg(self.model): self._past}
                out = self.model(input_ids=x, attention_mask=mask, position_ids=pos, use_cache=True,
                                 logits_to_keep=1, **kw)  # fmt: skip
            else:
                seqs = [self.prompt_ids[t] + ids for t, ids in unique]
                width = max(map(len, seqs))
                x = torch.tensor([(self.pad_id,) * (width - len(s)) + s for s in seqs], device=dev)
                mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=dev)
                # padding does not advance the positions; after a shared prefix they continue from its end
                pos = (mask.cumsum(1) - 1).clamp(min=0) + len(self.prefix_ids)
                kw = {}
                if self.prefix_ids:  # [prefix][padding][prompt + ids]: the padding is masked, wherever it sits
                    cache, ones = self._prefix(len(unique), dev)
                    mask, kw = torch.cat([ones, mask], dim=1), {cache_kwarg(self.model): cache}
                out = self.model(input_ids=x, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                                 **kw)  # fmt: skip
                pos = pos[:, -1:]
        self.forward_passes, self.positions = self.forward_passes + 1, self.positions + x.numel()
        self._past, self._mask, self._next_pos = cache_of(out), mask, pos + 1
        self._rows = {k: i for i, k in enumerate(unique)}
        lps = torch.log_softmax(out.logits[:, -1].float() / self.temperature, -1).cpu().numpy()
        found = {k: lps[i] for i, k in enumerate(unique)}
        return [found[k] for k in keys]


def smc_steer_many(
    proposal: HFMultiProposal,
    potentials: Sequence[Potential],
    *,
    seeds: Sequence[int] | None = None,
    n_particles: int = 16,
    max_tokens: int = 32,
    ess_threshold: float = 0.5,
    method: str = "systematic",
    stop: Stop | None = None,
) -> list[SMCResult]:
    """``smc.smc_steer`` (Lew et al., arXiv 2306.03081) for task ``t`` = ``potentials[t]`` after
    ``proposal``'s prompt ``t``, every task in lockstep with one forward pass per step; ``seeds[t]`` (default
    ``t``) seeds task ``t``. Returns one ``SMCResult`` per task, each what ``smc_steer`` gives for it alone."""
    seeds = list(seeds) if seeds is not None else list(range(len(potentials)))
    loops = [
        smc_loop(
            phi,
            decode=proposal.decode,
            eos_id=proposal.eos_id,
            n_particles=n_particles,
            max_tokens=max_tokens,
            ess_threshold=ess_threshold,
            method=method,
            stop=stop,
            seed=seed,
        )  # fmt: skip
        for phi, seed in zip(potentials, seeds, strict=True)
    ]
    return drive_many(loops, proposal.batch_many)


def best_of_n_many(
    proposal: HFMultiProposal,
    verifies: Sequence[Callable[[str], bool]],
    *,
    n: int,
    budgets: Sequence[int | None] | None = None,
    seeds: Sequence[int] | None = None,
    max_tokens: int = 32,
    stop: Stop | None = None,
    chunk: int = 8,
) -> list[BestOfN]:
    """``smc.best_of_n`` for task ``t`` = ``verifies[t]`` after ``proposal``'s prompt ``t`` (its token
    ``budgets[t]``, seed ``seeds[t]``, default ``t``), all tasks' chunks of samples drawn in lockstep. Returns
    one ``BestOfN`` per task, each what ``best_of_n`` with the same ``chunk`` gives for it alone (the same
    samples in the same order; chunks are drawn in rounds, so the compute of a round lasts as long as its longest
    chunk, but only the tokens of samples taken are counted)."""
    budgets = list(budgets) if budgets is not None else [None] * len(verifies)
    seeds = list(seeds) if seeds is not None else list(range(len(verifies)))
    rngs = [random.Random(seed) for seed in seeds]
    tallies = [_Tally() for _ in verifies]
    # Rounds of one chunk per undecided task, all started together: every task's samples then have the same
    # length at each step, which the shared cache needs. Each task uses its own random numbers in the order
    # best_of_n_loop does, so its result is the same.
    while active := [t for t in range(len(verifies)) if _more(tallies[t], n, budgets[t])]:
        loops = [sample_loop(min(max(1, chunk), n - tallies[t].tries), proposal.decode, proposal.eos_id, max_tokens,
                             rngs[t], stop) for t in active]  # fmt: skip
        drawn = drive_many(loops, lambda keys: proposal.batch_many([(active[i], ids) for i, ids in keys]))
        for t, samples in zip(active, drawn):
            _take(tallies[t], samples, verifies[t], budgets[t])
    return [x.result or BestOfN(x.text, False, x.tries, x.tokens) for x in tallies]
