"""The memory terms of one GRPO step, by phase, for each backend (see ``grpo_lab.plan``'s docstring for what each
backend builds and where in the installed TRL / torch source it is done). Every function returns bytes."""

from __future__ import annotations

from dataclasses import dataclass

# TRL 1.16 trl/kernels/chunked_logprob.py: rows of hidden states per projection tile (TOKEN_CHUNK_SIZE) and
# trl/trainer/utils.py: vocabulary columns per tile (_CHUNKED_LOGPROB_CHUNK_SIZE).
TRL_TOKEN_TILE = 4096
TRL_VOCAB_TILE = 32768
# fp32 [rows, cols] temporaries of one tile in TRL's torch fallback (_forward_tile / _backward_tile: tile.float(),
# the scaled z, exp, p, log_p, grad), used where Triton is not (CPU): counted as 6 live at once.
TRL_CPU_TILE_TEMPS = 6
# rollout_fast.selective_logps works on this many rows at a time, with two fp32 [rows, T, V] temporaries.
SELECTIVE_ROWS = 8


@dataclass(frozen=True)
class Shape:
    """The sizes one step works on: ``B`` completions (``rows`` of them in one update forward), ``Lp`` prompt and
    ``T`` completion tokens, ``w``/``c`` bytes of the stored and the autocast dtype, ``r`` of the residual stream
    (the embeddings' stored dtype), ``trainable`` parameters; ``G`` completions a prompt, whose prompt runs once
    for the group when ``shared_prompt`` (the from-scratch trainer's ``rollout_fast``, unless checkpointing)."""

    B: int
    rows: int
    Lp: int
    T: int
    w: int
    c: int
    trainable: int
    lora: bool
    checkpointing: bool
    G: int = 1
    shared_prompt: bool = False

    @property
    def L(self) -> int:
        return self.Lp + self.T

    def tokens(self, rows: int) -> int:
        """Tokens one forward over ``rows`` completions runs: the prompt once per group when it is shared."""
        return rows // self.G * self.Lp + rows * self.T if self.shared_prompt else rows * self.L


def resident(arch: dict, P: int, s: Shape, reference: bool) -> dict:
    """State held for the whole run: full fine-tuning keeps weights, gradients and two AdamW moments in the stored
    dtype (torch.optim.AdamW's ``exp_avg``/``exp_avg_sq`` are ``zeros_like(param)``) and, with ``reference``, a
    frozen copy; LoRA (Hu et al., arXiv 2106.09685) the frozen base and fp32 adapters with gradients and moments
    (16 bytes each), and no copy (the reference is the model with its adapters disabled, as TRL does)."""
    if s.lora:
        return {"weights (frozen base)": P * s.w, "LoRA weights+grads+Adam (fp32)": s.trainable * 16}
    mem = {"weights": P * s.w, "gradients": P * s.w, "Adam moments": 2 * P * s.w}
    if reference:
        mem["reference model (frozen copy)"] = P * s.w
    return mem


def rollout(arch: dict, P: int, s: Shape) -> dict:
    """Sampling: the KV cache of every row at full length (K and V, every layer, compute dtype), the last
    position's logits with the sampler's fp32 copies, and autocast's low-precision weight copies for the duration
    of one forward (cached until the region exits; ``torch.autocast``) when ``c < w``."""
    kv = arch["num_key_value_heads"] * arch["head_dim"]
    mem = {
        "rollout: KV cache": 2 * arch["num_hidden_layers"] * kv * s.B * s.L * s.c,
        "rollout: last-position logits + sampling": s.B * arch["vocab_size"] * (s.c + 8),
    }
    if s.c < s.w:
        mem["rollout: autocast weight copies (one forward)"] = P * s.c
    return mem


def activations(arch: dict, s: Shape) -> int:
    """Tensors autograd saves for the backward of ``rows`` rows of ``L`` tokens: per token and layer, the two
    RMSNorm inputs on the residual stream (``r`` bytes) and, in the compute dtype, the norm outputs, q/k/v/o
    inputs and outputs and the MLP's gate, up, activation and down input. With gradient checkpointing only each
    layer's input is kept, plus one layer's worth while it is recomputed (transformers' non-reentrant
    ``torch.utils.checkpoint`` per decoder layer)."""
    h, i = arch["hidden_size"], arch["intermediate_size"]
    kv = arch["num_key_value_heads"] * arch["head_dim"]
    r = s.w  # the embeddings' dtype: fp32 master weights keep an fp32 residual stream under autocast
    per_token_layer = 2 * h * r + (5 * h + 2 * kv) * s.c + 4 * i * s.c
    tokens = s.tokens(s.rows)
    if s.checkpointing:
        return tokens * h * r * arch["num_hidden_layers"] + tokens * per_token_layer
    return tokens * per_token_layer * arch["num_hidden_layers"]


def head_grpo_lab(arch: dict, s: Shape) -> dict:
    """The from-scratch trainer's log-probs (``rollout.completion_logps`` -> ``rollout_fast.selective_logps``):
    the logits of the completion positions only (``logits_to_keep = T + 1``) in the compute dtype and their
    gradient, plus fp32 temporaries of ``SELECTIVE_ROWS`` rows (its hand-written backward keeps no fp32 copy)."""
    V = arch["vocab_size"]
    return {
        "update: completion logits + grad [B,T+1,V]": 2 * s.rows * (s.T + 1) * V * s.c,
        "update: selective_logps fp32 temporaries": 2 * min(s.rows, SELECTIVE_ROWS) * s.T * V * 4,
    }


def head_trl(arch: dict, s: Shape, cuda: bool) -> dict:
    """TRL 1.16's fused LM head (``trl/trainer/utils.py`` ``add_fused_lm_head``, applied by ``GRPOTrainer.__init__``
    on every device; ``kernels/chunked_logprob.py`` ``ChunkedLogProbFunction``): no ``[B, T, V]`` logits. Held:
    one ``[4096, 32768]`` projection tile in the compute dtype (forward and again in backward), the saved hidden
    states of the scored positions, an fp32 gradient of those hidden states, and, when the head's weight trains
    (full fine-tuning; tied to the embeddings in Qwen2.5), an fp32 ``[V, h]`` weight-gradient buffer (cast to the
    weight's dtype after, one more copy unless fp32). On CUDA (Triton) only completion positions are scored; on
    a CPU every position is, and the torch fallback makes fp32 copies of each tile."""
    V, h = arch["vocab_size"], arch["hidden_size"]
    n = s.rows * s.T if cuda else s.rows * (s.L - 1)
    tile = min(n, TRL_TOKEN_TILE) * min(V, TRL_VOCAB_TILE)
    mem = {
        "update: TRL head tiles (no [B,T,V] logits)": tile * s.c + (0 if cuda else TRL_CPU_TILE_TEMPS * tile * 4),
        "update: TRL head hidden states + fp32 grad": n * h * (s.c + 4),
    }
    if not s.lora:
        mem["update: TRL head fp32 weight-grad buffer"] = V * h * 4 + (V * h * s.w if s.w != 4 else 0)
    return mem


def optimizer(arch: dict, P: int, s: Shape, cuda: bool) -> dict:
    """AdamW's temporaries at ``optimizer.step()``: torch.optim.AdamW defaults to its foreach path when every
    parameter is on CUDA (``optimizer._default_to_fused_or_foreach``) and ``_multi_tensor_adam`` then holds
    ``exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs)``, one copy of all trainable parameters; on a CPU the
    per-tensor loop holds about two copies of the largest tensor (``sqrt`` then the division)."""
    w_opt = 4 if s.lora else s.w
    if cuda:
        return {"optimizer: AdamW foreach temporaries": s.trainable * w_opt}
    largest = min(s.trainable, arch["vocab_size"] * arch["hidden_size"]) if not s.lora else s.trainable
    return {"optimizer: AdamW per-tensor temporaries": 2 * largest * w_opt}
