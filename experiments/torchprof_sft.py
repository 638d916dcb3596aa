"""torch.profiler table of a few SFT steps (1 thread): which ops dominate forward and backward."""
import random, torch
from torch.profiler import profile, ProfilerActivity
from grpo_lab.models import build_tiny_model
from grpo_lab.sft import sft_batch
from grpo_lab.tasks import get_task
torch.set_num_threads(1)
task = get_task("addition"); pool = task.train(2000, seed=0)
model, tok = build_tiny_model("tiny", seed=0); model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
rng = random.Random(0)
def step():
    ids, att, lab = sft_batch(tok, rng.sample(pool, 128), None, None)
    loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3): step()
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(5): step()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22))
