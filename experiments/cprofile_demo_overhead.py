"""cProfile of run_demo with 20 SFT and 2 GRPO steps: what the demo spends outside training."""
import cProfile, pstats, sys, tempfile, torch
from grpo_lab import presets
from grpo_lab.jobs import run_demo
torch.set_num_threads(1)
presets.PRESETS["cpu-addition"].sft.update(max_steps=20, eval_every=10)
presets.PRESETS["cpu-addition"].grpo.update(max_steps=2)
pr = cProfile.Profile(); pr.enable()
run_demo(tempfile.mkdtemp(), progress=False)
pr.disable()
pstats.Stats(pr).sort_stats("cumtime").print_stats(35)
