"""Profile the SFT warm start of the demo: s/step for the pieces, eager vs sdpa, eval cost.

Usage: .venv/bin/python experiments/profile_sft.py [--steps 60] [--threads 1]
"""
import argparse, random, time
import torch
from grpo_lab.models import build_tiny_model
from grpo_lab.sft import sft_batch
from grpo_lab.tasks import get_task
from grpo_lab.evaluation import evaluate

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=60)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--batch", type=int, default=128)
args = ap.parse_args()
torch.set_num_threads(args.threads)
task = get_task("addition")
pool = task.train(20000, seed=0)
val = task.train(256, seed=10000)

def run(attn):
    model, tok = build_tiny_model("tiny", seed=0)
    if attn:
        model.config._attn_implementation = attn  # same weights, different kernel
        for m in model.modules():
            if hasattr(m, "config"): m.config._attn_implementation = attn
    print("attn impl:", model.config._attn_implementation)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    rng = random.Random(0); cache = {}
    tb = tf = tbw = to = 0.0
    model.train()
    for s in range(args.steps):
        t0 = time.perf_counter()
        batch = rng.sample(pool, args.batch)
        ans = [task.sloppy_answer(p, rng, 0.65) for p in batch]
        ids, att, lab = sft_batch(tok, batch, None, ans, cache=cache)
        t1 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True); loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
        t4 = time.perf_counter()
        if s >= 10:
            tb += t1 - t0; tf += t2 - t1; tbw += t3 - t2; to += t4 - t3
    n = args.steps - 10
    print(f"  per step ms: batch {1e3*tb/n:.1f} fwd {1e3*tf/n:.1f} bwd {1e3*tbw/n:.1f} opt {1e3*to/n:.1f} total {1e3*(tb+tf+tbw+to)/n:.1f}  shape {tuple(ids.shape)}")
    model.eval()
    t0 = time.perf_counter(); acc = evaluate(model, tok, task, val).accuracy; print(f"  eval 256: {time.perf_counter()-t0:.2f}s")
    return model

for attn in ["eager", "sdpa"]:
    run(attn)
