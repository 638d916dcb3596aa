"""Per-step cost of an SFT step vs batch size (interleaved, same process): is it overhead or FLOPs?"""
import random, time, torch
from grpo_lab.models import build_tiny_model
from grpo_lab.sft import sft_batch
from grpo_lab.tasks import get_task
torch.set_num_threads(1)
task = get_task("addition"); pool = task.train(20000, seed=0)
model, tok = build_tiny_model("tiny", seed=0); model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
rng = random.Random(0); cache = {}
res = {b: [] for b in (16, 64, 128, 256, 512)}
for rep in range(6):
    for b in res:
        batch = rng.sample(pool, b)
        ids, att, lab = sft_batch(tok, batch, None, None, cache=cache)
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        opt.zero_grad(); loss.backward(); opt.step()
        if rep: res[b].append(time.perf_counter() - t0)
for b, v in res.items():
    v.sort(); print(f"batch {b:4d}: {1e3*v[len(v)//2]:.1f} ms/step median, {1e3*v[0]:.1f} min, {1e3*v[0]/b:.2f} ms/row")
