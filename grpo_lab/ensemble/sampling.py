"""Real models as voters: sampled answers for self-consistency and chat generators for consensus.

Both decode with ``grpo_lab.rollout`` (KV cache, batched), so a notebook gets the same sampler that GRPO
training uses. Sampling draws from an explicit ``torch.Generator`` on the model's device, seeded
(``rollout.make_generator``, the trainers' rule: ``torch.multinomial`` on CUDA needs a CUDA generator), so a run is
reproducible on any device; passing no generator on a GPU would draw from the device's global, unseeded one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from grpo_lab.ensemble.consensus import Generator
from grpo_lab.rewards import extract_answer

__all__ = ["hf_generator", "sample_answers"]


def hf_generator(
    model,
    tokenizer,
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> Generator:
    """Wrap a Hugging Face causal LM + tokenizer as a generator ``messages -> text``.

    The messages are rendered with the tokenizer's chat template (generation prompt appended) and decoded
    with ``grpo_lab.rollout.generate`` (KV cache): greedy when ``temperature == 0``, else sampled at
    ``temperature`` (optionally ``top_k``) from a generator on the model's device (``rollout.make_generator``)
    seeded with ``seed``, so a run is reproducible on any device; ``seed`` None: the default seed of a fresh
    ``torch.Generator`` (what an unseeded call always drew from). Returns the completion text without special tokens.
    """
    import torch

    from grpo_lab.rollout import encode_prompts, generate, make_generator

    device = next(model.parameters()).device
    gen = make_generator(device, torch.Generator().initial_seed() if seed is None else seed)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos

    def call(messages: list[dict]) -> str:
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids, mask = encode_prompts(tokenizer, [prompt], device)
        was_training = model.training
        model.eval()
        try:
            sample = temperature > 0
            toks, cmask, _, _ = generate(
                model,
                ids,
                mask,
                max_completion_length=max_new_tokens,
                eos_token_id=eos,
                pad_token_id=pad,
                temperature=temperature if sample else 1.0,
                top_k=top_k,
                do_sample=sample,
                generator=gen if sample else None,
            )
        finally:
            model.train(was_training)
        return tokenizer.decode(toks[0][cmask[0].bool()], skip_special_tokens=True)

    return call


def sample_answers(
    model,
    tokenizer,
    prompts: Sequence[str],
    n: int,
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.7,
    top_k: int | None = None,
    seed: int = 0,
    extract: Callable[[str], str | None] = extract_answer,
) -> tuple[list[list[str]], list[list[str | None]]]:
    """``n`` sampled completions per prompt (already formatted, e.g. with a chat template), decoded in one
    batch by ``grpo_lab.rollout.sample_groups`` from a generator on the model's device seeded with ``seed``
    (``rollout.make_generator``: the same draws for the same seed on a GPU too); returns ``(texts, answers)``,
    each ``[len(prompts)][n]``. The input of self-consistency: ``majority_vote(answers[i])``."""
    from grpo_lab.rollout import make_generator, sample_groups

    device = next(model.parameters()).device
    r = sample_groups(
        model,
        tokenizer,
        list(prompts),
        n,
        max_completion_length=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        do_sample=True,
        generator=make_generator(device, seed),
    )
    texts = [r.texts[i * n : (i + 1) * n] for i in range(len(prompts))]
    return texts, [[extract(t) for t in row] for row in texts]
