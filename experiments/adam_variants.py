"""Same process, interleaved: s/step of an SFT step (batch 128) with AdamW default (for-loop on CPU),
foreach=True and fused=True."""
import random, time, torch
from grpo_lab.models import build_tiny_model
from grpo_lab.sft import sft_batch
from grpo_lab.tasks import get_task
torch.set_num_threads(1)
task = get_task("addition"); pool = task.train(2000, seed=0); rng = random.Random(0)
models = {}
for kind in ("default", "foreach", "fused"):
    m, tok = build_tiny_model("tiny", seed=0); m.train()
    kw = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[kind]
    models[kind] = (m, torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.98), **kw))
times = {k: [] for k in models}; opt_t = {k: [] for k in models}
for rep in range(12):
    ids, att, lab = sft_batch(tok, rng.sample(pool, 128), None, None)
    for k, (m, opt) in models.items():
        t0 = time.perf_counter()
        loss = m(input_ids=ids, attention_mask=att, labels=lab).loss
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        t1 = time.perf_counter(); opt.step(); t2 = time.perf_counter()
        if rep >= 2: times[k].append(t2 - t0); opt_t[k].append(t2 - t1)
for k in models:
    print(f"{k:8s} step {1e3*sorted(times[k])[5]:.1f} ms (median), optimizer {1e3*sorted(opt_t[k])[5]:.1f} ms")
