"""Milliseconds per generated token of ``model.generate`` (KV cache, greedy, no early stop), the per-token floor of
``grpo_lab.plan`` for the device this runs on.

    OMP_NUM_THREADS=2 python benchmarks/decode_latency.py --model smollm2 --batch 1 --new 16

Decoding one token at a time runs every layer's kernels once per token, whatever the batch: on a GPU a small
model's step is bounded by kernel launches and Python overhead, not by FLOPs or memory bandwidth, so the time per
token hardly grows with the batch. The script prints, for each batch size, the time of a 1-token generation
(prompt pass) and the extra time per token of a ``--new``-token generation, and the plan's current figure, between
two speed checks (``benchmarks/speed_check.py``): the machine is shared, so report the figure with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def ms_per_token(model, tok, batch: int, new: int, prompt_len: int = 32, repeats: int = 2) -> float:
    """(seconds of ``new`` tokens - seconds of 1 token) / (new - 1), best of ``repeats``: the prompt pass cancels."""
    ids = torch.randint(10, min(tok.vocab_size, 1000), (batch, prompt_len))
    mask = torch.ones_like(ids)
    kw = dict(do_sample=False, pad_token_id=tok.pad_token_id or 0, eos_token_id=None)

    def run(n: int) -> float:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, **kw)
            best = min(best, time.perf_counter() - t0)
            assert out.shape[1] == prompt_len + n
        return best

    run(2)  # warm-up
    return 1e3 * (run(new) - run(1)) / (new - 1)


def main() -> None:
    from grpo_lab import plan
    from grpo_lab.models import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    from benchmarks.speed_check import speed_check

    print(f"speed check before: {speed_check():.1f} ms a step (42-55 is a fast phase of the course's machine)")
    model, tok = load_model(a.model, device=a.device)
    model.eval()
    print(f"{a.model} on {a.device}, torch threads {torch.get_num_threads()}, load {os.getloadavg()}")
    for b in a.batch:
        print(f"  batch {b:3d}: {ms_per_token(model, tok, b, a.new):7.1f} ms/token")
    print(f"speed check after: {speed_check():.1f} ms a step, load {os.getloadavg()}")
    print(f"plan.TOKEN_FLOOR_MS: {getattr(plan, 'TOKEN_FLOOR_MS', None)}")


if __name__ == "__main__":
    main()
