"""Batched sampling of groups of completions, with per-token log-probs and masks.

Design notes:

- One hand-written decoding loop over the model's KV cache instead of ``model.generate``: it is short
  enough to read, returns exactly what GRPO needs (token ids, log-probs of the sampled tokens at the
  sampling temperature, a completion mask cut after the first EOS, truncation flags), and on tiny models
  it avoids most of ``generate``'s per-step overhead.
- Prompts are left-padded so that every row's next token sits in the last column; position ids are
  computed from the attention mask so padding does not shift positions.
- The log-probs are ``log_softmax(logits / temperature)``, the same convention TRL uses for the ratio, so
  they are the "old" log-probs of the sampling policy.
- Sampling uses an explicit ``torch.Generator`` so a trainer can checkpoint and resume it exactly.
- A row stops at any of its end-of-sequence ids: the tokenizer's EOS and every id in the model's
  ``generation_config.eos_token_id`` (Qwen2.5 and Llama chat models list several: end of turn and end of
  text), as ``model.generate`` and TRL do.
- The KV cache gets room for the whole completion after the prompt pass (``reserve_cache``), so each step
  writes one position in place instead of copying the cache with ``torch.cat``; the values, and so the
  sampled tokens, are the same bit for bit.
- Memory: the training forward asks the model for the logits of the completion positions only
  (transformers' ``logits_to_keep``), so no [B, P + T, V] logits tensor exists; the log-prob of the
  sampled token is ``logit - logsumexp`` (no full log-softmax kept), and the entropy, a diagnostic, is
  computed from detached logits without a graph.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    """A batch of B completions (the G completions of each prompt are consecutive).

    ``prompt_ids``/``prompt_mask``: [B, P] left-padded. ``completion_ids``: [B, T] (pad after EOS).
    ``completion_mask``: [B, T], 1 up to and including the first EOS. ``logps``: [B, T] log-probs of the
    sampled tokens under the sampling policy (0 where masked). ``truncated``: [B] bool, no EOS within
    ``max_completion_length``. ``texts``: decoded completions without special tokens.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    logps: torch.Tensor
    truncated: torch.Tensor
    texts: list[str]

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(1)


def encode_prompts(tokenizer, prompts: list[str], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(input_ids, attention_mask)`` for a list of prompt strings (no special tokens added)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def _forward_params(model) -> set[str]:
    """The keyword names of the underlying transformers model's ``forward`` (through a peft wrapper, whose
    own ``forward`` takes ``**kwargs`` and passes them on)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def _cache_kwarg(model) -> str:
    """The forward's KV-cache keyword: ``cache`` in recent 5.x releases (5.24 deprecates ``past_key_values``,
    to be removed in 5.40), ``past_key_values`` in the earlier 5.x ones that ``transformers>=5`` still admits."""
    return "cache" if "cache" in _forward_params(model) else "past_key_values"


def last_logits(model, keep: int, **inputs) -> tuple[torch.Tensor, object]:
    """``(logits of the last keep positions [B, keep, V], model output)`` of one forward pass.

    Passes ``logits_to_keep=keep`` when the model accepts it (transformers' causal LMs), so the LM head runs
    on those positions only: on a 36-token prompt and 64 completion tokens this skips a third of the
    head's work and never materialises the [B, P + T, V] logits.
    """
    extra = {"logits_to_keep": keep} if "logits_to_keep" in _forward_params(model) else {}
    out = model(**inputs, **extra)
    # No slice when the head already kept exactly `keep` positions: a slice, even a whole one, costs a zeroed
    # [B, keep, V] buffer and a copy in the backward pass (1 s a step for SmolLM2's 32 x 64 x 49,152 logits).
    return (out.logits if out.logits.shape[1] == keep else out.logits[:, -keep:, :]), out


def eos_token_ids(model, eos: int | list[int] | None = None) -> list[int]:
    """Every id that ends a completion: ``eos`` (the tokenizer's ``eos_token_id``; one id or several) plus
    ``model.generation_config.eos_token_id`` (an int or a list), in that order, without duplicates.
    ``model.generate`` stops at the latter and TRL at both (its generation config carries the model's and
    the tokenizer's EOS)."""
    ids: list[int] = []
    cfg = getattr(model, "generation_config", None)
    for src in (eos, getattr(cfg, "eos_token_id", None)):
        for i in src if isinstance(src, (list, tuple)) else [src]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    return ids


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


@functools.cache
def _in_place_layer_class():
    """A subclass of transformers' ``DynamicLayer`` that keeps its keys and values in buffers with room to
    spare and writes each new position in place; ``keys``/``values`` are views of the filled part."""
    from transformers.cache_utils import DynamicLayer

    class InPlaceLayer(DynamicLayer):
        def reserve(self, total: int) -> None:
            B, H, n, D = self.keys.shape
            k, v = self.keys.new_empty(B, H, max(total, n), D), self.values.new_empty(B, H, max(total, n), D)
            k[:, :, :n], v[:, :, :n] = self.keys, self.values
            self._k, self._v = k, v
            self.keys, self.values = k[:, :, :n], v[:, :, :n]

        def update(self, key_states, value_states, *args, **kwargs):
            n, m = self.keys.shape[-2], key_states.shape[-2]
            if n + m > self._k.shape[-2]:
                self.reserve(2 * (n + m))
            self._k[:, :, n : n + m], self._v[:, :, n : n + m] = key_states, value_states
            self.keys, self.values = self._k[:, :, : n + m], self._v[:, :, : n + m]
            return self.keys, self.values

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            n = self.keys.shape[-2]
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

    return InPlaceLayer


def reserve_cache(cache, extra: int) -> None:
    """Give every plain ``DynamicLayer`` of a transformers cache room for ``extra`` more positions.

    ``DynamicLayer.update`` appends each decoded position with ``torch.cat``, which copies the whole cache at
    every step: for SmolLM2 with 32 rows and a 100-position cache that copy is about a tenth of a decode step.
    The reserved layer writes the new key and value into spare room instead and hands attention views of
    the same values, so decoding gives the same tokens and log-probs bit for bit (tested). Other layer kinds
    (sliding windows, quantized, ...) and caches without ``layers`` are left as they are.
    """
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # a transformers without per-layer caches: keep its own
        return
    cls = _in_place_layer_class()
    for layer in getattr(cache, "layers", []):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys is not None and layer.keys.dim() == 4:
            layer.__class__ = cls
            layer.reserve(layer.keys.shape[-2] + extra)


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
):
    """Decode up to ``max_completion_length`` tokens for each row, reusing the KV cache.

    Returns ``(completion_ids, completion_mask, logps, truncated)`` as described in ``Rollout``. With
    ``do_sample=False`` (or ``temperature == 0``) decoding is greedy and ``logps`` are at temperature 1.
    With ``num_generations = G > 1`` the N prompt rows are encoded once and their cache is repeated G times
    (rows ``i*G .. i*G+G-1`` continue prompt ``i``): the prompt forward is shared by the whole group.
    A row ends at the first token in ``eos_token_id`` (one id or several) or in the model's
    ``generation_config.eos_token_id`` (``eos_token_ids``), the stopping rule of ``model.generate``.
    A row that has ended leaves the batch and the KV cache (``batch_select_indices``).

    Why one function: it is the decoding loop a student reads to see how sampling works (prompt pass, then
    one token at a time with the cache, stop rule, bookkeeping); split up, the loop state would be passed
    between helpers and the algorithm would no longer be readable in one place.
    """
    greedy = (not do_sample) or temperature == 0
    temp = 1.0 if greedy else float(temperature)
    device = prompt_ids.device
    attn = prompt_mask.clone()
    positions = (attn.cumsum(1) - 1).clamp(min=0)
    cache_kw = _cache_kwarg(model)
    stop = torch.tensor(eos_token_ids(model, eos_token_id), device=device)
    logits, out = last_logits(
        model, 1, input_ids=prompt_ids, attention_mask=attn, position_ids=positions, use_cache=True
    )
    cache, logits = _cache_of(out), logits[:, -1, :]
    next_pos = positions[:, -1:] + 1
    if num_generations > 1:
        cache.batch_repeat_interleave(num_generations)
        logits, attn, next_pos = (t.repeat_interleave(num_generations, dim=0) for t in (logits, attn, next_pos))
    reserve_cache(cache, max_completion_length)
    B = logits.shape[0]

    tokens = torch.full((B, max_completion_length), pad_token_id, dtype=torch.long, device=device)
    logps = torch.zeros(B, max_completion_length, device=device)
    mask = torch.zeros(B, max_completion_length, dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    rows = torch.arange(B, device=device)  # the output row of each live batch row
    for t in range(max_completion_length):
        z = logits.float()
        logprobs = torch.log_softmax(z if temp == 1.0 else z / temp, dim=-1)  # x / 1.0 == x: skip a [B, V] copy
        if greedy:
            tok = logprobs.argmax(-1)
        else:
            probs = logprobs.exp()
            if top_k:
                kth = probs.topk(top_k, dim=-1).values[:, -1:]
                probs = probs.masked_fill(probs < kth, 0.0)
            tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        tokens[rows, t] = tok
        logps[rows, t] = logprobs.gather(1, tok[:, None]).squeeze(1)
        mask[rows, t] = 1
        done = torch.isin(tok, stop)
        finished[rows[done]] = True
        if bool(finished.all()) or t == max_completion_length - 1:
            break
        if bool(done.any()):
            # A finished row leaves the batch and the KV cache: it costs nothing for the rest of the decode,
            # which matters when lengths vary (a greedy evaluation with a generous budget).
            live = (~done).nonzero().squeeze(1)
            cache.batch_select_indices(live)
            rows, tok, attn, next_pos = rows[live], tok[live], attn[live], next_pos[live]
        attn = torch.cat([attn, torch.ones(attn.shape[0], 1, dtype=attn.dtype, device=device)], dim=1)
        out = model(
            input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos, use_cache=True, **{cache_kw: cache}
        )
        cache, logits = _cache_of(out), out.logits[:, -1, :]
        next_pos = next_pos + 1
    truncated = ~finished
    return tokens, mask, logps, truncated


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
) -> Rollout:
    """Sample ``num_generations`` (G) completions for each prompt: B = len(prompts) * G rows, grouped.

    Rows are grouped consecutively (prompt 0 x G, prompt 1 x G, ...), the layout that
    ``grpo.group_advantages`` expects; each prompt is encoded once and its KV cache shared by its group.
    """
    device = next(model.parameters()).device
    ids, am = encode_prompts(tokenizer, list(prompts), device)
    was_training = model.training
    model.eval()
    try:
        c_ids, c_mask, logps, trunc = generate(
            model,
            ids,
            am,
            max_completion_length=max_completion_length,
            eos_token_id=eos_token_ids(model, tokenizer.eos_token_id),
            pad_token_id=tokenizer.pad_token_id,
            temperature=temperature,
            top_k=top_k,
            do_sample=do_sample,
            generator=generator,
            num_generations=num_generations,
        )
    finally:
        model.train(was_training)
    ids, am = ids.repeat_interleave(num_generations, dim=0), am.repeat_interleave(num_generations, dim=0)
    # Columns after the longest completion are pure padding: dropping them shrinks the training forward.
    width = max(int(c_mask.sum(1).max()), 1)
    c_ids, c_mask, logps = c_ids[:, :width], c_mask[:, :width], logps[:, :width]
    texts = tokenizer.batch_decode(c_ids * c_mask + tokenizer.pad_token_id * (1 - c_mask), skip_special_tokens=True)
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
):
    """Per-token log-probs [B, T] of ``completion_ids`` under ``model`` (with gradients), at ``temperature``.

    Logits at position ``p`` predict token ``p + 1``, so only the last ``T + 1`` positions are needed
    (``last_logits``). With ``z = logits / temperature`` (in fp32 whatever the autocast dtype) the log-prob
    of token ``y`` is ``z_y - logsumexp(z)``, TRL's ``selective_log_softmax``. With ``with_entropy`` also
    returns the per-token entropy of the tempered next-token distribution (no gradient: a diagnostic).

    ``group_size = G > 1`` says rows ``i*G .. i*G+G-1`` share one prompt (the layout of ``sample_groups``):
    the prompt then runs once per group and its KV cache, repeated G times, feeds a forward over the
    completions only. The repeat is differentiable, so the gradient through the prompt's keys and values
    is the same as with one full forward per row (TRL's computation), to float rounding (tested); the pass
    sees ``B/G * P + B * T`` tokens instead of ``B * (P + T)``, about half the work for a 36-token prompt
    and 16-32 completion tokens. The log-probs come from ``selective_logps``, which keeps no fp32 copy of
    the logits for the backward pass.
    """
    T = completion_ids.shape[1]
    attn = torch.cat([prompt_mask, completion_mask.to(prompt_mask.dtype)], dim=1)
    positions = (attn.cumsum(1) - 1).clamp(min=0)
    if group_size > 1:
        if completion_ids.shape[0] % group_size:
            raise ValueError(
                f"group_size={group_size} must divide the batch ({completion_ids.shape[0]} rows): rows "
                "i*G .. i*G+G-1 are one prompt's group"
            )
        head, out = last_logits(
            model,
            1,
            input_ids=prompt_ids[::group_size],
            attention_mask=prompt_mask[::group_size],
            position_ids=positions[::group_size, : prompt_ids.shape[1]],
            use_cache=True,
        )
        cache = _cache_of(out)
        cache.batch_repeat_interleave(group_size)
        tail, _ = last_logits(
            model,
            T,
            input_ids=completion_ids,
            attention_mask=attn,
            position_ids=positions[:, -T:],
            use_cache=True,
            **{_cache_kwarg(model): cache},
        )
        # The first completion token is predicted by the prompt's last position, the others by the completion's
        # own positions (the tail's last position predicts nothing): scored piece by piece, so the [B, T, V]
        # logits are never concatenated into a copy.
        pieces = [(head.repeat_interleave(group_size, dim=0), completion_ids[:, :1]), (tail, completion_ids[:, 1:])]
    else:
        ids = torch.cat([prompt_ids, completion_ids], dim=1)
        logits, _ = last_logits(
            model, T + 1, input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=False
        )
        pieces = [(logits, completion_ids)]
    scored = [_SelectiveLogSoftmax.apply(z, y, float(temperature), 8, with_entropy) for z, y in pieces if y.shape[1]]
    lp = torch.cat([s[0] for s in scored], dim=1)
    return (lp, torch.cat([s[1] for s in scored], dim=1)) if with_entropy else lp


class _SelectiveLogSoftmax(torch.autograd.Function):
    """``z_y - logsumexp(z)`` with ``z = logits / temperature`` in fp32, by chunks of rows, and its gradient.

    Autograd on the plain expression keeps an fp32 copy of the logits, a tempered copy and a full
    ``[B, T, V]`` temporary for each of logsumexp's, gather's and the division's backward. Here the forward
    keeps only the logits and the per-token logsumexp, and the backward writes
    ``d lp_t / d z = onehot(y_t) - softmax(z_t)`` (times the incoming gradient, divided by the temperature)
    into one buffer, chunk by chunk. The arithmetic is the one autograd does for the plain expression,
    operation for operation, so values and gradients are equal bit for bit (tested).
    """

    @staticmethod
    def forward(ctx, logits, ids, temperature, chunk, with_entropy):
        n = ids.shape[1]
        lps, lses, ents = [], [], []
        for zc, yc in zip(logits.split(chunk), ids.split(chunk)):
            z = zc[:, :n].float()
            if temperature != 1.0:
                z = z / temperature
            lse, ent = _logsumexp_entropy(z, with_entropy)
            lps.append(z.gather(2, yc[..., None]).squeeze(2) - lse)
            lses.append(lse)
            ents.append(ent)
        lse = torch.cat(lses)
        ctx.save_for_backward(logits, ids, lse)
        ctx.temperature, ctx.chunk = temperature, chunk
        ent = torch.cat(ents) if with_entropy else lse.new_zeros(0)
        ctx.mark_non_differentiable(ent)
        return torch.cat(lps), ent

    @staticmethod
    def backward(ctx, grad, _grad_ent):
        logits, ids, lse = ctx.saved_tensors
        n, temp, chunk = ids.shape[1], ctx.temperature, ctx.chunk
        out = torch.empty_like(logits)
        out[:, n:] = 0  # positions past n (the tail's last) predict nothing
        for i in range(0, logits.shape[0], chunk):
            z = logits[i : i + chunk, :n].float()
            if temp != 1.0:
                z = z / temp
            g = grad[i : i + chunk]
            # Written straight into the gradient buffer (fp32 logits) or one chunk-sized temporary (half
            # precision): the same elementwise operations as autograd's, so the same bits, without a copy.
            direct = out.dtype == z.dtype
            d = out[i : i + chunk, :n] if direct else torch.empty_like(z)
            torch.sub(z, lse[i : i + chunk, :, None], out=d).exp_().mul_(-g[..., None])  # logsumexp's backward
            d.scatter_add_(2, ids[i : i + chunk, :, None], g[..., None])  # gather's backward
            if temp != 1.0:
                d.div_(temp)
            if not direct:
                out[i : i + chunk, :n] = d
        return out, None, None, None, None


def selective_logps(
    logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0, *, chunk: int = 8, with_entropy: bool = False
):
    """Log-probs ``[B, n]`` of ``ids`` [B, n] under ``logits`` [B, L, V] (positions ``0..n-1``, n <= L), and with
    ``with_entropy`` the entropies ``[B, n]`` of the same tempered distributions (no gradient).

    ``lp_t = z_{t, y_t} - logsumexp(z_t)``, ``z = logits / temperature`` in fp32: TRL 1.16's
    ``selective_log_softmax`` of ``logits / temperature``. Memory stays at the logits plus ``chunk`` rows of
    temporaries, forward and backward (``_SelectiveLogSoftmax``).
    """
    lp, ent = _SelectiveLogSoftmax.apply(logits, ids, float(temperature), chunk, with_entropy)
    return (lp, ent) if with_entropy else lp


@torch.no_grad()
def token_entropy(logits: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Entropy ``H = logsumexp(z) - sum_v softmax(z)_v z_v`` of each row of ``logits`` [..., V], without a
    graph, ``chunk`` rows of the leading dimension at a time (bounds the temporaries); ``_logsumexp_entropy``."""
    return torch.cat([_logsumexp_entropy(z.float(), True)[1] for z in logits.split(chunk)])


def _logsumexp_entropy(z: torch.Tensor, with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``logsumexp(z)`` over the last dimension and, with ``with_entropy``, the entropy of ``softmax(z)``.

    ``lse = log(sum_v e_v) + m`` with ``m = max_v z_v`` and ``e = exp(z - m)``: torch.logsumexp's own steps in
    its order, so the same bits (tested against it). The entropy TRL logs, ``H = -sum_v p_v log p_v =
    lse - sum_v p_v z_v`` with ``p = softmax(z)``, is computed from the same exponentials as
    ``lse - sum_v e_v z_v / sum_v e_v``: one pass over the ``[.., V]`` block instead of a second softmax, and
    closer to float64 than the softmax form (largest error 2e-5 against 5e-4 on SmolLM2's logits). A
    diagnostic, without a graph.
    """
    m = z.amax(-1, keepdim=True)
    m.masked_fill_(m.abs() == float("inf"), 0)  # as torch.logsumexp: a row of -inf gives -inf, not NaN
    e = (z - m).exp_()
    s = e.sum(-1)
    lse = s.log().add_(m.squeeze(-1))
    return lse, (lse - e.mul_(z).sum(-1).div_(s)) if with_entropy else None


@torch.no_grad()
def greedy_complete(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 256) -> list[str]:
    """Greedy completions (text, special tokens removed) for many prompts, in batches."""
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        r = sample_groups(
            model, tokenizer, prompts[i : i + batch_size], 1, max_completion_length=max_new_tokens, do_sample=False
        )
        out.extend(r.texts)
    return out
