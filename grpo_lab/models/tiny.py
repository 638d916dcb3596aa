"""Tiny char-level models: a ``Qwen2ForCausalLM`` of a few layers and a one-token-per-character tokenizer.

They are real ``transformers`` objects (``Qwen2ForCausalLM`` + ``PreTrainedTokenizerFast``) so every line of
course code that works on them also works on a pretrained model, and TRL accepts them. The tokenizer is
character-level (built with the ``tokenizers`` library): a model that must learn arithmetic digit by digit
is small, fast on a CPU and easy to inspect.
"""

from __future__ import annotations

import string

import torch

from grpo_lab.models.devices import ModelLoadError

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
SPECIAL_TOKENS = [PAD, EOS, BOS, UNK]
# Printable ASCII (without the rarely useful vertical whitespace) plus newline: enough for arithmetic,
# Countdown expressions and short English prompts.
DEFAULT_CHARS = "".join(c for c in string.printable if c not in "\t\r\x0b\x0c")

# name -> Qwen2 config overrides; parameter counts are printed by `describe_zoo()`.
TINY_SIZES: dict[str, dict] = {
    "nano": dict(
        hidden_size=32, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    ),
    "micro": dict(
        hidden_size=64, intermediate_size=192, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2
    ),
    "tiny": dict(
        hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2
    ),
    "small": dict(
        hidden_size=256, intermediate_size=768, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=4
    ),
}


def build_char_tokenizer(chars: str = DEFAULT_CHARS):
    """A character-level ``PreTrainedTokenizerFast``: one token per character, plus ``<pad> <eos> <bos> <unk>``.

    Contract: ``decode(encode(s)) == s`` for any string over ``chars``; ids 0..3 are the special tokens;
    ``eos_token`` ends every completion. Built with the ``tokenizers`` library (a WordLevel model behind a
    split-every-character pre-tokenizer and a fusing decoder), so it saves and loads with
    ``save_pretrained`` / ``from_pretrained`` like any Hugging Face tokenizer.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for c in dict.fromkeys(chars):  # keeps order, drops repeats
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=BOS,
        unk_token=UNK,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    # Char-level models see raw prompts; a trivial template keeps chat-style code paths working.
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}{% if not loop.last %}\n{% endif %}{% endfor %}"
    return fast


def build_tiny_model(size: str = "tiny", tokenizer=None, seed: int = 0, **overrides):
    """Build a randomly initialised Qwen2-style causal LM and its char tokenizer.

    ``size`` is one of ``TINY_SIZES`` (``nano`` ~50k parameters to ``small`` ~5M); ``overrides`` go to
    ``Qwen2Config``. Dropout is off (GRPO's importance ratio and KL would be noisy otherwise) and the input
    and output embeddings are tied, as in small Qwen2 models. Returns ``(model, tokenizer)``; the model is
    in eval mode on the CPU in float32.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if size not in TINY_SIZES:
        raise ModelLoadError(f"unknown tiny size {size!r}; choose one of {sorted(TINY_SIZES)}")
    tokenizer = tokenizer or build_char_tokenizer()
    cfg = dict(TINY_SIZES[size])
    cfg.update(overrides)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=cfg.pop("max_position_embeddings", 256),
        tie_word_embeddings=True,
        attention_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        rope_theta=10000.0,
        **cfg,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.eval()
    return model, tokenizer


def count_parameters(model) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
