"""cProfile of 30 SFT steps of the demo's warm start (1 thread): where does a step's time go?"""
import cProfile, pstats, torch
from grpo_lab.models import build_tiny_model
from grpo_lab.sft import sft_train
from grpo_lab.tasks import get_task
torch.set_num_threads(1)
task = get_task("addition")
model, tok = build_tiny_model("tiny", seed=0)
pr = cProfile.Profile(); pr.enable()
sft_train(model, tok, task, max_steps=30, batch_size=128, learning_rate=1e-3, eval_every=10, teacher_drop=0.65, progress=False)
pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(25)
