"""GRPO from a saved SFT state (experiments/explore_sft.py --save) with preset overrides; held-out accuracy
(the demo's 500 problems) every --every steps, and on all held-out problems at the end.

python experiments/explore_grpo.py --init /tmp/x13/sft_s0.pt --seed 0 --grpo '{"learning_rate": 3e-5}'
"""
import argparse, json, time, torch
from grpo_lab.models import build_tiny_model
from grpo_lab.presets import get_preset
from grpo_lab.jobs import run_grpo
from grpo_lab.tasks import get_task
from grpo_lab.evaluation import evaluate

ap = argparse.ArgumentParser()
ap.add_argument("--init", required=True)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--grpo", default="{}")
ap.add_argument("--every", type=int, default=50)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--tag", default="")
args = ap.parse_args()
torch.set_num_threads(args.threads)
task = get_task("addition")
held = task.heldout(500, seed=12345)
model, tok = build_tiny_model("tiny", seed=args.seed)
model.load_state_dict(torch.load(args.init))
preset = get_preset("cpu-addition")
preset.grpo.update({"seed": args.seed, "eval_steps": 0, **json.loads(args.grpo)})
curve = [(0, evaluate(model, tok, task, held).accuracy)]
t0 = time.perf_counter()

def cb(rec):
    if rec["step"] % args.every == 0:
        curve.append((rec["step"], evaluate(model, tok, task, held).accuracy))
        print(json.dumps({"step": rec["step"], "acc": curve[-1][1], "reward": rec["reward"],
                          "t": round(time.perf_counter() - t0, 1)}), flush=True)

t0 = time.perf_counter()
summary, hist = run_grpo(model, tok, preset, None, progress=False, callbacks=[cb])
allacc = evaluate(model, tok, task, task.all_problems("test")).accuracy
print(json.dumps({"tag": args.tag, "seed": args.seed, "init": args.init, "grpo": json.loads(args.grpo),
                  "curve": curve, "all": allacc, "grpo_s": round(summary["seconds"], 1),
                  "s_per_step": round(summary["seconds"] / summary["steps"], 3)}), flush=True)
