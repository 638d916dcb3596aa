"""The fast path of ``grpo_lab.rollout``: the same completions, log-probs and gradients with less work.

``rollout.py`` is the version to read: a plain decoding loop over transformers' own cache and a plain
log-softmax. Its public functions take ``fast=True`` (the default) and then call this module, which
holds every speed-up and every transformers internal the speed-ups touch, so that a new transformers
release can break only this file, and ``available()`` refuses it (with a warning; the plain path runs)
outside the versions it was written for, ``TRANSFORMERS_VERSIONS``:

- **In-place KV cache** (``reserve_cache``): transformers' ``DynamicLayer`` appends each decoded
  position with ``torch.cat``, a copy of the whole cache per step; a subclass, installed by rewriting
  ``layer.__class__`` on the live cache, writes into spare room instead (``is_initialized``, ``keys``,
  ``values``, ``update``, ``batch_select_indices``).
- **Shared prompt forward** for a group of G completions of one prompt: the prompt runs once and its
  cache is repeated (``Cache.batch_repeat_interleave``), in decoding and in the training forward.
- **Finished rows leave the batch** (``Cache.batch_select_indices``), so a short completion costs nothing
  for the rest of the decode.
- **Selective log-softmax with a hand-written backward** (``_SelectiveLogSoftmax``): no fp32 copies of the
  ``[B, T, V]`` logits kept for autograd, and the entropy from the logsumexp's own exponentials.
- ``logits_to_keep`` without the identity slice (whose backward zero-fills a ``[B, T, V]`` buffer), and
  the forward's cache keyword, ``cache=`` (transformers >= 5.24) or ``past_key_values=`` (earlier 5.x).

What stays equal to the plain path bit for bit, and what only to float rounding, is stated on each
function and tested in ``tests/test_generation.py``. Times are in ``benchmarks/step_times.md``.
"""

from __future__ import annotations

import functools
import inspect
import warnings

import torch

# [lowest, first unsupported) transformers release for the internals listed above; the plain path runs outside.
TRANSFORMERS_VERSIONS = ("5.0", "6.0")


@functools.cache
def available() -> bool:
    """True when the installed transformers lies in ``TRANSFORMERS_VERSIONS``; otherwise warns (once) that
    the plain path runs instead: same results to float rounding, slower."""
    from importlib.metadata import version

    from packaging.version import Version

    lo, hi = TRANSFORMERS_VERSIONS
    found = version("transformers")
    if Version(lo) <= Version(found) < Version(hi):
        return True
    warnings.warn(
        f"grpo_lab.rollout: the fast path was written for transformers >= {lo}, < {hi}; found {found}. "
        "Using the plain path (same results to float rounding, slower).",
        stacklevel=3,
    )
    return False


def _forward_params(model) -> set[str]:
    """The keyword names of the transformers model's ``forward``, through a peft wrapper (whose own forward
    takes ``**kwargs`` and passes them on)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def cache_kwarg(model) -> str:
    """The forward's KV-cache keyword: ``cache`` from transformers 5.24 (which deprecates
    ``past_key_values``, to be removed in 5.40), ``past_key_values`` in the earlier 5.x releases."""
    return "cache" if "cache" in _forward_params(model) else "past_key_values"


def cache_of(out):
    """The cache a forward returned (``out.cache``, before 5.24 ``out.past_key_values``; reading the old name
    on 5.24 logs a deprecation); None when the model made none (``use_cache`` switched off, as under
    gradient checkpointing in train mode)."""
    fields = getattr(type(out), "__dataclass_fields__", {})
    return getattr(out, "cache" if "cache" in fields else "past_key_values", None)


def last_logits(model, keep: int, **inputs) -> tuple[torch.Tensor, object]:
    """``(logits of the last keep positions [B, keep, V], model output)`` of one forward pass.

    The LM head runs on those positions only (``logits_to_keep``, where the forward takes it), and there is
    no slice when the head already kept exactly ``keep`` positions: even a whole-tensor slice costs a zeroed
    ``[B, keep, V]`` buffer and a copy in the backward pass.
    """
    extra = {"logits_to_keep": keep} if "logits_to_keep" in _forward_params(model) else {}
    out = model(**inputs, **extra)
    return (out.logits if out.logits.shape[1] == keep else out.logits[:, -keep:, :]), out


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

    Attention then gets views of the same keys and values that ``torch.cat`` would have built, so decoding
    gives the same tokens and log-probs bit for bit (tested). Other layer kinds (sliding windows,
    quantized, ...) and caches without ``layers`` are left as they are.
    """
    from transformers.cache_utils import DynamicLayer

    cls = _in_place_layer_class()
    for layer in getattr(cache, "layers", []):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys is not None and layer.keys.dim() == 4:
            layer.__class__ = cls
            layer.reserve(layer.keys.shape[-2] + extra)


@torch.no_grad()
def ends(tok, stop, counted, seen, rows):
    """Which of the drawn tokens ``tok`` [b] end their row: an EOS in ``stop``, or (``counted`` = ``(ids, n)``
    of a ``rollout.StopAfter``) the n-th token of ``ids`` in that row; ``seen[rows]`` [b] keeps the counts."""
    done = torch.isin(tok, stop)
    if counted is not None:
        seen[rows] += torch.isin(tok, counted[0]).long()
        done |= seen[rows] >= counted[1]
    return done


def generate(
    model, prompt_ids, prompt_mask, max_completion_length, stop, pad_token_id, pick, num_generations, counted=None
):
    """``rollout.generate``'s loop, with the prompt run once per group, the in-place cache and finished rows
    dropped from the batch. ``pick(logits [b, V]) -> (tokens [b], logps [b])`` is ``rollout.next_token``,
    called on the live rows only, in row order, as the plain loop does: the same generator draws.
    ``counted``: ``(token ids, n)`` of a ``rollout.StopAfter`` rule, or None."""
    T, G = max_completion_length, num_generations
    positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)  # [N, P]
    kw = dict(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True)
    logits, out = last_logits(model, 1, **kw)
    cache, logits = cache_of(out), logits[:, -1, :]  # logits [N, V]
    attn, next_pos = prompt_mask, positions[:, -1:] + 1
    if G > 1:  # rows i*G .. i*G+G-1 continue prompt i
        cache.batch_repeat_interleave(G)
        logits, attn, next_pos = (t.repeat_interleave(G, dim=0) for t in (logits, attn, next_pos))
    reserve_cache(cache, T)
    B, device = logits.shape[0], logits.device
    tokens = torch.full((B, T), pad_token_id, dtype=torch.long, device=device)
    logps = torch.zeros(B, T, device=device)
    mask = torch.zeros(B, T, dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    rows = torch.arange(B, device=device)  # [b]: the output row of each live batch row
    seen = torch.zeros(B, dtype=torch.long, device=device)  # [B]: tokens of the stop rule so far
    cache_kw = cache_kwarg(model)
    for t in range(T):
        tok, lp = pick(logits)
        tokens[rows, t], logps[rows, t], mask[rows, t] = tok, lp, 1
        done = ends(tok, stop, counted, seen, rows)
        finished[rows[done]] = True
        if bool(finished.all()) or t == T - 1:
            break
        if bool(done.any()):
            live = (~done).nonzero().squeeze(1)
            cache.batch_select_indices(live)
            rows, tok, attn, next_pos = rows[live], tok[live], attn[live], next_pos[live]
        attn = torch.cat([attn, attn.new_ones(attn.shape[0], 1)], dim=1)
        kw = dict(input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos, use_cache=True)
        out = model(**kw, **{cache_kw: cache})
        cache, logits, next_pos = cache_of(out), out.logits[:, -1, :], next_pos + 1
    return tokens, mask, logps, ~finished


def completion_logps(model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature, with_entropy, G):
    """``rollout.completion_logps``: one forward over prompt + completion (``G == 1``), or with ``G > 1`` the
    prompt once per group and its cache, repeated G times, under a forward over the completions only.

    The repeat is differentiable, so the gradient through the prompt's keys and values is the one of a full
    forward per row, to float rounding (the matrix products see other shapes); the pass sees
    ``B/G * P + B * T`` tokens instead of ``B * (P + T)``. When the prompt pass returns no cache (gradient
    checkpointing in train mode switches ``use_cache`` off) the full forward runs after it. The log-probs
    and entropies are ``selective_logps``'s.
    """
    B, T = completion_ids.shape
    if G > 1 and B % G:
        raise ValueError(f"group_size={G} must divide the batch ({B} rows): rows i*G .. i*G+G-1 are one group")
    attn = torch.cat([prompt_mask, completion_mask.to(prompt_mask.dtype)], dim=1)  # [B, P + T]
    positions = (attn.cumsum(1) - 1).clamp(min=0)
    cache = None
    if G > 1:
        kw = dict(attention_mask=prompt_mask[::G], position_ids=positions[::G, : prompt_ids.shape[1]])
        head, out = last_logits(model, 1, input_ids=prompt_ids[::G], use_cache=True, **kw)  # head [B/G, 1, V]
        cache = cache_of(out)
    if cache is not None:
        cache.batch_repeat_interleave(G)
        kw = dict(attention_mask=attn, position_ids=positions[:, -T:], use_cache=True)
        tail, _ = last_logits(model, T, input_ids=completion_ids, **kw, **{cache_kwarg(model): cache})
        # The first completion token is predicted by the prompt's last position, the others by the completion's
        # own positions (the tail's last predicts nothing): scored piece by piece, never concatenated.
        pieces = [(head.repeat_interleave(G, dim=0), completion_ids[:, :1]), (tail, completion_ids[:, 1:])]
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
    ``selective_log_softmax`` of ``logits / temperature`` for fp32 logits, and ``rollout.completion_logps``'s
    plain expression, bit for bit with the gradient. Memory stays at the logits plus ``chunk`` rows of
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
    ``lse - sum_v e_v z_v / sum_v e_v``: one pass over the ``[.., V]`` block instead of a second softmax
    (and closer to float64 than the softmax form; tested). A diagnostic, without a graph.
    """
    m = z.amax(-1, keepdim=True)
    m.masked_fill_(m.abs() == float("inf"), 0)  # as torch.logsumexp: a row of -inf gives -inf, not NaN
    e = (z - m).exp_()
    s = e.sum(-1)
    lse = s.log().add_(m.squeeze(-1))
    return lse, (lse - e.mul_(z).sum(-1).div_(s)) if with_entropy else None
