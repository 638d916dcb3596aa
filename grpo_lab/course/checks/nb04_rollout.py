"""Notebook 04: the two halves of a rollout, written by the student.

- ``04-token-logps``: ``fn(logits, completion_ids, temperature=1.0) -> Tensor[B, T]``. ``logits`` [B, L, V] is
  the model's output over prompt + completion (``L = P + T``); position ``j`` predicts token ``j + 1``, so the
  log-prob of completion token ``t`` is read at position ``P - 1 + t``, from ``log_softmax(logits / temperature)``.
- ``04-sampling``: ``fn(model, prompt_ids, max_new_tokens, eos_token_id, pad_token_id, temperature=1.0,
  generator=None) -> (completion_ids, completion_mask)``, both [B, max_new_tokens]: a decoding loop without a
  KV cache (the whole sequence is fed to ``model(input_ids=...)`` at every step), sampling from
  ``softmax(logits[:, -1] / temperature)`` with ``torch.multinomial(..., generator=generator)``; after a row's
  first EOS its tokens are ``pad_token_id`` and its mask 0 (the EOS itself has mask 1).

Checks use stored values on hand-made logits, a fake bigram "model" whose next-token distribution is known
exactly, and a tiny random transformer compared with the library's rollout code.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from grpo_lab.course.registry import exercise_test

LOGPS, SAMPLE = "04-token-logps", "04-sampling"
D = torch.float64


# --------------------------------------------------------------------------------------------------
# 04-token-logps
# --------------------------------------------------------------------------------------------------


def _hand_logits():
    """B=1, prompt of 1 token, completion of 2 tokens (ids 2, 0), V=3: the three positions' logits."""
    return torch.log(torch.tensor([[[1.0, 1.0, 1.0], [4.0, 1.0, 1.0], [1.0, 9.0, 1.0]]], dtype=D))


def _logps_of(fn, logits, ids, temperature, what):
    got = fn(logits, ids, temperature)
    assert torch.is_tensor(got), f"{what}: return a tensor, got {type(got).__name__}"
    assert got.shape == ids.shape, (
        f"{what}: expected shape {tuple(ids.shape)} (one log-prob per completion token), got {tuple(got.shape)}"
    )
    return got


@exercise_test(
    LOGPS,
    title="Per-token log-probs from logits",
    forbid=("grpo_lab.rollout.completion_logps",),
    hint="Position j predicts token j+1: completion token t is read at position P-1+t, i.e. logits[:, -T-1:-1].",
)
def test_one_position_shift(fn):
    # Position 0 is uniform (token 2 has prob 1/3); position 1 gives token 0 prob 4/6. Reading positions 1 and 2
    # instead (no shift) would give log(1/6) and log(1/11).
    got = _logps_of(fn, _hand_logits(), torch.tensor([[2, 0]]), 1.0, "hand example")
    want = torch.tensor([[-1.0986123, -0.4054651]], dtype=D)
    assert (got.to(D) - want).abs().max() < 1e-6, (
        f"expected {want[0].tolist()}, got {[round(x, 7) for x in got[0].tolist()]}"
    )


@exercise_test(
    LOGPS,
    hint="Divide the logits by the temperature BEFORE log_softmax; the sampler drew from that tempered distribution.",
)
def test_temperature(fn):
    # At temperature 2 position 1 becomes (2, 1, 1) in probability ratio: token 0 has 2/4; position 0 stays uniform.
    got = _logps_of(fn, _hand_logits(), torch.tensor([[2, 0]]), 2.0, "temperature 2")
    want = torch.tensor([[-1.0986123, -0.6931472]], dtype=D)
    assert (got.to(D) - want).abs().max() < 1e-6, (
        f"expected {want[0].tolist()}, got {[round(x, 7) for x in got[0].tolist()]}"
    )


@exercise_test(
    LOGPS,
    hint="The prompt length P is L - T; gather with completion_ids[..., None] along the vocabulary dimension.",
    time_limit_s=40,
)
def test_a_tiny_model(fn):
    from grpo_lab.models import build_tiny_model
    from grpo_lab.rollout import completion_logps, sample_groups

    model, tok = build_tiny_model("nano", seed=1)
    r = sample_groups(
        model,
        tok,
        ["12+35=", "7+8="],
        3,
        max_completion_length=5,
        temperature=0.8,
        generator=torch.Generator().manual_seed(1),
    )
    with torch.no_grad():
        ids = torch.cat([r.prompt_ids, r.completion_ids], 1)
        attn = torch.cat([r.prompt_mask, r.completion_mask], 1)
        logits = model(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(1) - 1).clamp(min=0)).logits
        want = completion_logps(model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask, 0.8)
    got = _logps_of(fn, logits, r.completion_ids, 0.8, "a tiny model's logits")
    err = ((got - want) * r.completion_mask).abs().max().item()
    assert err < 1e-5, (
        f"differs from the log-probs of the sampled tokens by {err:.2e} (prompt {tuple(r.prompt_ids.shape)}, completion {tuple(r.completion_ids.shape)})"
    )


@exercise_test(LOGPS, hint="Torch operations only: the training step backpropagates through these log-probs.")
def test_gradient_flows(fn):
    logits = torch.randn(2, 6, 5, dtype=D, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    ids = torch.tensor([[1, 4, 0], [3, 3, 2]])
    got = fn(logits, ids, 1.5)
    assert got.requires_grad, "the log-probs are not connected to the logits"
    got.sum().backward()
    assert logits.grad[:, :2].abs().max() == 0, "prompt positions before P-1 must not receive gradient"
    assert logits.grad[:, 2:5].abs().min() > 0 and logits.grad[:, 5].abs().max() == 0, (
        "exactly positions P-1 .. L-2 predict completion tokens; the last position predicts nothing here"
    )


# --------------------------------------------------------------------------------------------------
# 04-sampling
# --------------------------------------------------------------------------------------------------

EOS, PAD, V = 4, 5, 6


class _Bigram(torch.nn.Module):
    """A fake language model: the next token's logits depend only on the last token (a V x V table)."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(table.clone(), requires_grad=False)
        self.calls = 0

    def forward(self, input_ids=None, **kwargs):
        self.calls += 1
        return SimpleNamespace(logits=self.table[input_ids])


def _bigram(eos_logit=0.0):
    row = torch.tensor([1.0, 0.5, 0.0, -0.5, eos_logit, -30.0])  # PAD is never sampled
    table = row.repeat(V, 1)
    table[2] = torch.tensor([-1.0, 2.0, 0.0, 0.0, eos_logit, -30.0])  # after token 2, token 1 is likely
    return _Bigram(table)


def _sample(fn, model, prompt, n, temperature, seed):
    out = fn(model, prompt, n, EOS, PAD, temperature, torch.Generator().manual_seed(seed))
    assert isinstance(out, tuple) and len(out) == 2, (
        f"return (completion_ids, completion_mask), got {type(out).__name__}"
    )
    ids, mask = out
    B = prompt.shape[0]
    assert tuple(ids.shape) == (B, n) and tuple(mask.shape) == (B, n), (
        f"expected two tensors of shape {(B, n)}, got {tuple(ids.shape)} and {tuple(mask.shape)}"
    )
    assert ids.dtype == torch.long, f"completion_ids must be token ids (torch.long), got {ids.dtype}"
    return ids, mask.long()


@exercise_test(
    SAMPLE,
    title="A sampling loop with EOS masking",
    forbid=(
        "grpo_lab.rollout.generate",
        "model.generate",
        "grpo_lab.rollout.sample_groups",
        "grpo_lab.rollout.greedy_complete",
    ),
    hint="Keep a `finished` flag per row; after a row's first EOS write pad_token_id with mask 0.",
)
def test_masking_after_eos(fn):
    prompt = torch.tensor([[0, 2, 1]] * 64)
    ids, mask = _sample(fn, _bigram(eos_logit=0.5), prompt, 12, 1.0, seed=0)
    ended = 0
    for b in range(64):
        eos = (ids[b] == EOS).nonzero()
        first = int(eos[0]) if len(eos) else 12
        ended += first < 12
        want = (torch.arange(12) <= first).long() if first < 12 else torch.ones(12, dtype=torch.long)
        assert torch.equal(mask[b], want), (
            f"row {b}: ids {ids[b].tolist()} -> expected mask {want.tolist()}, got {mask[b].tolist()}"
        )
        assert (ids[b, first + 1 :] == PAD).all(), (
            f"row {b}: after the first EOS every id must be pad_token_id, got {ids[b].tolist()}"
        )
    assert ended > 32, f"only {ended} of 64 rows ended with EOS although EOS has probability ~0.2 per step"


@exercise_test(
    SAMPLE,
    hint="Divide the last position's logits by the temperature, softmax, then torch.multinomial(probs, 1, generator=generator).",
)
def test_samples_the_tempered_distribution(fn):
    model = _bigram()
    prompt = torch.tensor([[0]] * 4000)
    for temp in (0.5, 2.0):
        ids, _ = _sample(fn, model, prompt, 1, temp, seed=1)
        freq = torch.bincount(ids[:, 0], minlength=V).double() / 4000
        want = torch.softmax(model.table[0].double() / temp, 0)
        tv = 0.5 * (freq - want).abs().sum().item()
        assert tv < 0.04, (
            f"temperature {temp}: first-token frequencies {[round(x, 3) for x in freq.tolist()]} "
            f"vs softmax(logits / T) {[round(x, 3) for x in want.tolist()]} (total variation {tv:.3f})"
        )


@exercise_test(SAMPLE, hint="Pass the generator to torch.multinomial: the same seed must give the same completions.")
def test_uses_the_generator(fn):
    prompt = torch.tensor([[0, 1]] * 16)
    a, _ = _sample(fn, _bigram(), prompt, 6, 1.0, seed=5)
    b, _ = _sample(fn, _bigram(), prompt, 6, 1.0, seed=5)
    c, _ = _sample(fn, _bigram(), prompt, 6, 1.0, seed=6)
    assert torch.equal(a, b), "two calls with generators seeded alike gave different completions"
    assert not torch.equal(a, c), "different seeds gave identical completions: is the generator used?"


@exercise_test(SAMPLE, hint="Stop as soon as every row has finished (the remaining columns stay pad / 0).")
def test_stops_when_all_rows_finished(fn):
    table = torch.full((V, V), -30.0)
    table[:, EOS] = 10.0  # EOS first, always
    model = _Bigram(table)
    ids, mask = _sample(fn, model, torch.tensor([[0, 1]] * 3), 8, 1.0, seed=0)
    assert (ids[:, 0] == EOS).all() and (ids[:, 1:] == PAD).all() and mask.sum().item() == 3, (
        f"every row emits EOS first: expected ids [EOS, PAD, ...] and one real token each, got {ids.tolist()}"
    )
    assert model.calls <= 2, f"the model was called {model.calls} times after every row had finished at step 1"


@exercise_test(
    SAMPLE,
    hint="At a tiny temperature sampling becomes greedy decoding: your loop must agree with argmax decoding.",
    time_limit_s=40,
)
def test_tiny_temperature_is_greedy(fn):
    from grpo_lab.models import build_tiny_model
    from grpo_lab.rollout import encode_prompts, generate

    model, tok = build_tiny_model("nano", seed=2)
    ids, am = encode_prompts(tok, ["12+35=", "47+18=", "90+10="])  # same length: no padding
    want_ids, want_mask, _, _ = generate(
        model,
        ids,
        am,
        max_completion_length=6,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        do_sample=False,
    )
    with torch.no_grad():
        out = fn(model, ids, 6, tok.eos_token_id, tok.pad_token_id, 1e-4, torch.Generator().manual_seed(0))
    got_ids, got_mask = out
    assert torch.equal(got_ids, want_ids) and torch.equal(got_mask.long(), want_mask.long()), (
        f"at temperature 1e-4 expected the greedy completions {want_ids.tolist()}, got {got_ids.tolist()}"
    )
