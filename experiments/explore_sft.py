"""SFT curves for the demo's warm start: held-out accuracy split by carry, and agreement with the
teacher's most likely answer, every --every steps.  Saves the final model state to --save.

python experiments/explore_sft.py --seed 0 --steps 1000 --lr 1e-3 --batch 128 --every 100
"""
import argparse, json, time, torch
from grpo_lab.models import build_tiny_model
from grpo_lab.sft import sft_train
from grpo_lab.tasks import get_task
from grpo_lab.evaluation import evaluate

ap = argparse.ArgumentParser()
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--steps", type=int, default=1000)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--warmup", type=int, default=20)
ap.add_argument("--drop", type=float, default=0.65)
ap.add_argument("--every", type=int, default=100)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--save", default=None)
args = ap.parse_args()
torch.set_num_threads(args.threads)
task = get_task("addition")
held = task.heldout(500, seed=12345)
model, tok = build_tiny_model("tiny", seed=args.seed)


def probe(step):
    r = evaluate(model, tok, task, held)
    carry = [(p, c.strip(), ok) for p, c, ok in zip(held, r.completions, r.correct) if int(p.answer) >= 100]
    non = [ok for p, ok in zip(held, r.correct) if int(p.answer) < 100]
    sloppy = sum(c == str(int(p.answer) - 100) for p, c, _ in carry) / len(carry)
    return {"step": step, "acc": r.accuracy, "acc_noncarry": sum(non) / len(non),
            "acc_carry": sum(ok for *_, ok in carry) / len(carry), "carry_sloppy": sloppy,
            "t": round(time.perf_counter() - t0, 1)}


t0 = time.perf_counter()
curve = []

def cb(rec):
    if rec["step"] % args.every == 0:
        model.eval(); curve.append(probe(rec["step"])); model.train()
        print(json.dumps({**curve[-1], "loss": round(rec["loss"], 4)}), flush=True)

res = sft_train(model, tok, task, max_steps=args.steps, batch_size=args.batch, learning_rate=args.lr,
                warmup_steps=args.warmup, eval_every=0, teacher_drop=args.drop, seed=args.seed, progress=False, callback=cb)
print(json.dumps({"done": True, "sft_s": round(res.seconds, 1), **vars(args)}))
if args.save:
    torch.save(model.state_dict(), args.save)
