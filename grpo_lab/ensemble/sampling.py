"""Real models as voters: sampled answers for self-consistency and chat generators for consensus.

Both decode with ``grpo_lab.rollout`` (KV cache, batched), so a notebook gets the same sampler that GRPO
training uses. Sampling on the CPU uses an explicit ``torch.Generator`` so a run is reproducible.
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
    ``temperature`` (optionally ``top_k``) from a ``torch.Generator`` seeded with ``seed``, so a run is
    reproducible (on a GPU the sampler uses the device's global generator: seed it with ``torch.manual_seed``).
    Returns the completion text without special tokens.
    """
    import torch

    from grpo_lab.rollout import encode_prompts, generate

    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu")
    if seed is not None:
        gen.manual_seed(seed)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos

    def call(messages: list[dict]) -> str:
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids, mask = encode_prompts(tokenizer, [prompt], device)
        was_training = model.training
        model.eval()
        try:
            sample = temperature > 0
            # Sampling on CPU with an explicit generator keeps runs reproducible on any device.
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
                generator=gen if (sample and device.type == "cpu") else None,
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
    batch by ``grpo_lab.rollout.sample_groups``; returns ``(texts, answers)``, each ``[len(prompts)][n]``.
    The input of self-consistency: ``majority_vote(answers[i])``."""
    import torch

    from grpo_lab.rollout import sample_groups

    g = torch.Generator(device="cpu").manual_seed(seed)
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
        generator=g if device.type == "cpu" else None,
    )
    texts = [r.texts[i * n : (i + 1) * n] for i in range(len(prompts))]
    return texts, [[extract(t) for t in row] for row in texts]
