"""Batched sampling of groups of completions, with per-token log-probs and masks: the data GRPO needs.

``generate`` is a decoding loop over transformers' KV cache (a prompt pass, then one token at a time) that
returns what ``model.generate`` does not: each sampled token's log-prob at the sampling temperature (the
"old" log-probs of the sampling policy), a mask that ends at the first EOS, and truncation flags. Prompts
are left-padded, so every row's next token sits in the last column, and position ids come from the
attention mask. ``completion_logps`` is the training forward, as TRL computes it. Sampling draws from an
explicit ``torch.Generator``, so a trainer can checkpoint and resume it exactly.

The public functions take ``fast=True`` (the default): the same computation with less work in
``grpo_lab.rollout_fast`` (see there). ``fast=False`` runs the code below, the one to read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from grpo_lab import rollout_fast


@dataclass
class Rollout:
    """A batch of B completions; the G completions of each prompt are consecutive rows."""

    prompt_ids: torch.Tensor  # [B, P], left-padded
    prompt_mask: torch.Tensor  # [B, P]
    completion_ids: torch.Tensor  # [B, T], padding after the first EOS
    completion_mask: torch.Tensor  # [B, T], 1 up to and including the first EOS
    logps: torch.Tensor  # [B, T], log-probs of the sampled tokens under the sampling policy, 0 where masked
    truncated: torch.Tensor  # [B] bool: no EOS within max_completion_length
    texts: list[str]  # the completions decoded, special tokens removed

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(1)


@dataclass(frozen=True)
class StopAfter:
    """A stop rule besides EOS: a row ends at the token that brings its count of ``token_ids`` to ``count``.

    The code task uses it with every vocabulary token that contains a Markdown fence and ``count=2``: a row
    ends where its first fenced block closes, the only part its reward reads (a stop string, as vLLM's
    ``stop`` and transformers' ``stop_strings`` offer, counted in tokens). The stopping token is kept and
    scored, as an EOS is; the row is not truncated.
    """

    token_ids: tuple[int, ...]
    count: int = 1

    @classmethod
    def containing(cls, tokenizer, text: str, count: int = 1) -> StopAfter:
        """The rule for every token of ``tokenizer`` whose decoded text contains ``text``."""
        vocab = tokenizer.get_vocab()
        ids = tuple(sorted(i for i in vocab.values() if text in tokenizer.decode([i])))
        if not ids:
            raise ValueError(f"no token of this tokenizer contains {text!r}")
        return cls(ids, count)

    def counter(self, device) -> tuple[torch.Tensor, int]:
        """``(token ids as a tensor on device, count)`` for the decoding loops."""
        return torch.tensor(self.token_ids, device=device), int(self.count)


def encode_prompts(tokenizer, prompts: list[str], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(input_ids, attention_mask)`` for a list of prompt strings (no special tokens added)."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def eos_token_ids(model, eos: int | list[int] | None = None) -> list[int]:
    """Every id that ends a completion, without duplicates: ``eos`` (the tokenizer's; one id or several), then
    ``model.generation_config.eos_token_id``, where Qwen2.5 and Llama chat models list several (end of turn,
    end of text). ``model.generate`` stops at the latter, TRL at both."""
    ids: list[int] = []
    cfg = getattr(model, "generation_config", None)
    for src in (eos, getattr(cfg, "eos_token_id", None)):
        for i in src if isinstance(src, (list, tuple)) else [src]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    return ids


def make_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """The sampling generator: on the model's device for CUDA and MPS, where ``torch.multinomial`` and
    ``torch.randperm`` need a generator of the tensors' device; on the CPU otherwise. Seeded with ``seed``."""
    device = torch.device(device)
    gen = torch.Generator(device=device) if device.type in ("cuda", "mps") else torch.Generator()
    return gen.manual_seed(seed)


def next_token(logits, *, temperature=1.0, greedy=False, top_k=None, generator=None):
    """``(token [b], its log-prob [b])`` drawn from ``logits`` [b, V]: ``softmax(logits / temperature)``, cut
    to the ``top_k`` most likely tokens if set, or the argmax when ``greedy``. The log-prob is of the
    tempered distribution before the top-k cut (TRL's convention for the ratio)."""
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)  # [b, V]
    if greedy:
        tok = logprobs.argmax(-1)
    else:
        probs = logprobs.exp()
        if top_k:
            kth = probs.topk(top_k, dim=-1).values[:, -1:]
            probs = probs.masked_fill(probs < kth, 0.0)
        tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return tok, logprobs.gather(1, tok[:, None]).squeeze(1)


@torch.no_grad()
def generate(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    *,
    max_completion_length: int,
    eos_token_id: int | list[int],
    pad_token_id: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    do_sample: bool = True,
    generator: torch.Generator | None = None,
    num_generations: int = 1,
    fast: bool = True,
    stop_after: StopAfter | None = None,
):
    """Decode up to ``max_completion_length`` tokens for each row, reusing the KV cache; returns
    ``(completion_ids, completion_mask, logps, truncated)`` as in ``Rollout``. ``do_sample=False`` (or
    ``temperature == 0``) is greedy, with ``logps`` at temperature 1. ``num_generations = G`` continues each of
    the N prompts G times (rows ``i*G .. i*G+G-1``). A row ends at its first token in
    ``eos_token_ids(model, eos_token_id)``, ``model.generate``'s rule, and then draws nothing more; with
    ``stop_after`` (a ``StopAfter``) also at the token that completes that rule's count.
    """
    greedy = (not do_sample) or temperature == 0
    pick = functools.partial(
        next_token, temperature=1.0 if greedy else temperature, greedy=greedy, top_k=top_k, generator=generator
    )
    stop = torch.tensor(eos_token_ids(model, eos_token_id), device=prompt_ids.device)
    T, G = max_completion_length, num_generations
    counted = stop_after.counter(prompt_ids.device) if stop_after is not None else None
    if fast and rollout_fast.available():
        return rollout_fast.generate(model, prompt_ids, prompt_mask, T, stop, pad_token_id, pick, G, counted)
    ids, attn = prompt_ids.repeat_interleave(G, dim=0), prompt_mask.repeat_interleave(G, dim=0)  # [B, P]
    positions = (attn.cumsum(1) - 1).clamp(min=0)  # [B, P]; 0 on the left padding
    # The prompt pass fills transformers' DynamicCache with every layer's keys and values; each step hands it
    # back, and the model appends one position. The keyword is `cache` from transformers 5.24 on and
    # `past_key_values` before (Colab's 5.15), so it is looked up rather than written.
    cache_kw = rollout_fast.cache_kwarg(model)
    out = model(input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=True, logits_to_keep=1)
    next_pos = positions[:, -1:] + 1  # [B, 1]
    B = ids.shape[0]
    tokens = torch.full((B, T), pad_token_id, dtype=torch.long, device=ids.device)  # [B, T]
    logps = torch.zeros(B, T, device=ids.device)  # [B, T]
    mask = torch.zeros(B, T, dtype=torch.long, device=ids.device)  # [B, T]
    finished = torch.zeros(B, dtype=torch.bool, device=ids.device)  # [B]
    seen = torch.zeros(B, dtype=torch.long, device=ids.device)  # [B]: tokens of the stop_after rule so far
    for t in range(T):
        live = ~finished  # [B]: only rows still going draw (the fast path, which drops the others, draws the same)
        tok, lp = pick(out.logits[live, -1, :])  # [b], [b]
        tokens[live, t], logps[live, t], mask[live, t] = tok, lp, 1
        finished[live] = rollout_fast.ends(tok, stop, counted, seen, live)
        if bool(finished.all()) or t == T - 1:
            break
        attn = torch.cat([attn, attn.new_ones(B, 1)], dim=1)  # [B, P + t + 1]
        cache = {cache_kw: rollout_fast.cache_of(out)}
        out = model(
            input_ids=tokens[:, t : t + 1], attention_mask=attn, position_ids=next_pos, use_cache=True, **cache
        )
        next_pos = next_pos + 1
    return tokens, mask, logps, ~finished


def sample_groups(
    model,
    tokenizer,
    prompts: list[str],
    num_generations: int,
    *,
    max_completion_length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    do_sample: bool = True,
    generator: torch.Generator | None = None,
    fast: bool = True,
    stop_after: StopAfter | None = None,
) -> Rollout:
    """Sample G = ``num_generations`` completions of each prompt, in eval mode: B = len(prompts) * G rows, the G
    of a prompt consecutive (the layout of ``grpo.group_advantages`` and of TRL's ``RepeatSampler``).
    ``stop_after``: an extra stop rule (``StopAfter``), e.g. the code task's closing fence."""
    ids, am = encode_prompts(tokenizer, list(prompts), next(model.parameters()).device)
    eos, pad = eos_token_ids(model, tokenizer.eos_token_id), tokenizer.pad_token_id
    kw = dict(temperature=temperature, top_k=top_k, do_sample=do_sample, generator=generator, fast=fast)
    kw.update(stop_after=stop_after, num_generations=num_generations, max_completion_length=max_completion_length)
    was_training = model.training
    model.eval()
    try:
        c_ids, c_mask, logps, trunc = generate(model, ids, am, eos_token_id=eos, pad_token_id=pad, **kw)
    finally:
        model.train(was_training)
    ids, am = ids.repeat_interleave(num_generations, dim=0), am.repeat_interleave(num_generations, dim=0)
    # Columns after the longest completion are pure padding: dropping them shrinks the training forward.
    width = max(int(c_mask.sum(1).max()), 1)
    c_ids, c_mask, logps = c_ids[:, :width], c_mask[:, :width], logps[:, :width]
    texts = tokenizer.batch_decode(c_ids * c_mask + pad * (1 - c_mask), skip_special_tokens=True)
    return Rollout(ids, am, c_ids, c_mask, logps, trunc, texts)


def completion_logps(
    model,
    prompt_ids,
    prompt_mask,
    completion_ids,
    completion_mask,
    temperature: float = 1.0,
    with_entropy: bool = False,
    group_size: int = 1,
    *,
    fast: bool = True,
):
    """Per-token log-probs [B, T] of ``completion_ids`` under ``model`` (with gradients), at ``temperature``,
    as TRL 1.16's ``_get_per_token_logps_and_entropies``: one forward over prompt + completion, the logits of
    the last ``T + 1`` positions only (``logits_to_keep``), ``z = logits / temperature`` in fp32 whatever the
    autocast dtype, and ``z_y - logsumexp(z)`` at each completion token (its ``selective_log_softmax``).
    ``with_entropy`` also returns the entropy [B, T] of each tempered next-token distribution (TRL's
    ``entropy_from_logits``; no gradient: a diagnostic). ``group_size = G`` says rows ``i*G .. i*G+G-1`` share
    one prompt (``sample_groups``' layout): the fast path then runs each prompt once.
    """
    if fast and rollout_fast.available():
        return rollout_fast.completion_logps(
            model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature, with_entropy, group_size
        )
    T = completion_ids.shape[1]
    ids = torch.cat([prompt_ids, completion_ids], dim=1)  # [B, P + T]
    attn = torch.cat([prompt_mask, completion_mask.to(prompt_mask.dtype)], dim=1)  # [B, P + T]
    positions = (attn.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=False, logits_to_keep=T + 1)
    z = out.logits[:, -(T + 1) : -1].float() / temperature  # [B, T, V]: position P - 1 + t predicts token t
    # log_softmax(z)[y] written as TRL writes it for fp32 logits; log_softmax(z).gather(...) is the same number
    # computed in another order, so it can differ in the last bit.
    lp = z.gather(-1, completion_ids[..., None]).squeeze(-1) - z.logsumexp(-1)  # [B, T]
    if not with_entropy:
        return lp
    with torch.no_grad():
        logp_all = torch.log_softmax(z, dim=-1)  # [B, T, V]
        return lp, -(logp_all.exp() * logp_all).sum(-1)


def greedy_complete(
    model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size=256, *, fast=True, stop_after=None
):
    """Greedy completions (text, special tokens removed) for many prompts, ``batch_size`` prompts at a time;
    ``stop_after``: an extra stop rule (``StopAfter``)."""
    batches = (prompts[i : i + batch_size] for i in range(0, len(prompts), batch_size))
    kw = dict(max_completion_length=max_new_tokens, do_sample=False, fast=fast, stop_after=stop_after)
    return [text for batch in batches for text in sample_groups(model, tokenizer, batch, 1, **kw).texts]
