"""Benchmark: one GRPO step on SmolLM2-135M-Instruct, from-scratch trainer vs TRL 1.16, same configuration.

    .venv/bin/python benchmarks/bench_step.py [--steps 3] [--threads 2] [--plain] [--json out.json]

The configuration: 4 prompts x 8 completions (``num_generations=8``, ``per_device_train_batch_size=32``),
``max_completion_length=64``, temperature 1, ``beta=0``, ``loss_type="dapo"``, lr 1e-6, seed 0, fp32, the same
four chat prompts for both backends. Completions are forced to the full 64 tokens: a forward hook on the
LM head sets the logits of every end-of-sequence id to -1e4 (in place, without autograd, so it costs
neither backend a copy of the logits), in both backends, so neither wins by sampling shorter answers. Both
processes keep the memory they free (``grpo_lab.env.reuse_freed_memory``, as ``grpo-lab``'s entry point does
for either backend). ``--plain`` runs the from-scratch trainer's rollout and log-probs with ``fast=False``
(``grpo_lab.rollout``'s reading path) instead of the default fast path (``grpo_lab.rollout_fast``). The reward (digit share of the completion) varies inside every group, so every step runs
the loss and its backward.

Each backend runs in its own process (a fresh model load; peak RSS is that process's ``ru_maxrss``): one
warm-up step, then ``--steps`` timed steps. Columns: the median wall time of a whole step, of generation
(from-scratch: ``rollout.sample_groups``; TRL: ``GRPOTrainer._generate``) and of loss + backward
(from-scratch: ``GRPOTrainer.update`` minus the optimizer step; TRL: ``training_step`` minus
``_prepare_inputs``, which holds generation and scoring). Prints the machine (CPU model, threads, torch,
load average before and after) with the table: the machine is shared, report the load with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYSTEM = "Answer with the final number only, as '#### <number>'."
QUESTIONS = ["What is 17 + 25?", "What is 64 - 19?", "What is 8 + 7 + 6?", "What is 13 + 48?"]
KNOBS = dict(
    learning_rate=1e-6,
    num_generations=8,
    per_device_train_batch_size=32,
    max_completion_length=64,
    max_steps=100,
    temperature=1.0,
    beta=0.0,
    loss_type="dapo",
    scale_rewards="group",
    seed=0,
    eval_steps=0,
    lr_scheduler_type="constant",
)


def digit_share(prompts, completions, **kwargs):
    """Share of digits in the completion: varies inside every group, so every step has a gradient."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def load(threads: int):
    """SmolLM2 in fp32 on the CPU with every EOS logit pushed to -1e4 (fixed-length completions)."""
    import torch

    from grpo_lab.env import reuse_freed_memory
    from grpo_lab.models import load_smollm2
    from grpo_lab.rollout import eos_token_ids

    torch.set_num_threads(threads)
    reuse_freed_memory()  # this process is the benchmark's: what grpo-lab's command line does for both backends
    model, tok = load_smollm2(progress=False)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    eos = torch.tensor(eos_token_ids(model, tok.eos_token_id))

    def no_eos(mod, args, out):
        with torch.no_grad():  # in place and outside autograd: the hook adds no copy of the logits to either step
            out.index_fill_(-1, eos.to(out.device), -1e4)

    model.lm_head.register_forward_hook(no_eos)
    prompts = [
        tok.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for q in QUESTIONS
    ]
    return model, tok, prompts


def timed(owner, name: str, log: list):
    """Replace ``owner.name`` by a wrapper appending each call's wall time to ``log``."""
    fn = getattr(owner, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            log.append(time.perf_counter() - t)

    setattr(owner, name, wrapper)


def plain_path(fn):
    """``fn`` (``rollout.sample_groups`` or ``completion_logps``) always called with ``fast=False``."""

    def wrapper(*a, **k):
        return fn(*a, **{**k, "fast": False})

    return wrapper


def run_grpo_lab(steps: int, threads: int, plain: bool = False) -> dict:
    """Warm-up + ``steps`` steps of ``trainer.GRPOTrainer``; per-step times. ``plain``: the rollout's plain path."""
    import grpo_lab.trainer as tr_mod
    from grpo_lab.tasks import Problem

    if plain:
        tr_mod.sample_groups, tr_mod.completion_logps = map(
            plain_path, (tr_mod.sample_groups, tr_mod.completion_logps)
        )
    model, tok, prompts = load(threads)
    problems = [Problem(p, q, "") for p, q in zip(prompts, QUESTIONS)]
    tr = tr_mod.GRPOTrainer(
        model, [digit_share], args=tr_mod.GRPOConfig(**KNOBS), train_dataset=problems, processing_class=tok
    )
    gen, upd, opt = [], [], []
    timed(tr_mod, "sample_groups", gen)
    timed(tr, "update", upd)
    timed(tr.opt, "step", opt)
    step = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        tr.step()
        step.append(time.perf_counter() - t)
    return {"step": step[1:], "generation": gen[1:], "loss_backward": [u - o for u, o in zip(upd, opt)][1:]}


def run_trl(steps: int, threads: int) -> dict:
    """Warm-up + ``steps`` steps of ``trl.GRPOTrainer`` on the same knobs (``trl_backend.trl_args``)."""
    import warnings

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from grpo_lab.trl_backend import trl_args

    model, tok, prompts = load(threads)
    args = trl_args(
        {**KNOBS, "max_steps": steps + 1}, tempfile.mkdtemp(prefix="bench_step_"), device="cpu", progress=False
    )
    data = Dataset.from_dict({"prompt": prompts * 50})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(
            model=model, reward_funcs=[digit_share], args=args, train_dataset=data, processing_class=tok
        )
    gen, prep, ts, step = [], [], [], []

    class StepClock(TrainerCallback):
        t = None

        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            step.append(time.perf_counter() - self.t)

    trainer.add_callback(StepClock())
    timed(trainer, "_generate", gen)
    timed(trainer, "_prepare_inputs", prep)
    timed(trainer, "training_step", ts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return {"step": step[1:], "generation": gen[1:], "loss_backward": [t - p for t, p in zip(ts, prep)][1:]}


def machine() -> dict:
    """CPU model, core count, torch version and the load average."""
    import torch

    from grpo_lab.jobs.report import machine_info

    cpu = machine_info()["cpu"]
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "load": os.getloadavg()}


def child(backend: str, steps: int, threads: int, out: str, plain: bool) -> None:
    res = run_grpo_lab(steps, threads, plain) if backend == "grpo_lab" else run_trl(steps, threads)
    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    Path(out).write_text(json.dumps(res))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per backend (after one warm-up step)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backends", default="grpo_lab,trl")
    ap.add_argument("--plain", action="store_true", help="grpo_lab: the rollout's plain path (fast=False)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child(a.child, a.steps, a.threads, a.out, a.plain)
    before = machine()
    rows = {}
    for backend in a.backends.split(","):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    backend,
                    "--out",
                    f.name,
                    "--steps",
                    str(a.steps),
                    "--threads",
                    str(a.threads),
                    *(["--plain"] if a.plain else []),
                ],
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": str(a.threads)},
            )
            rows[backend] = json.loads(Path(f.name).read_text())
        r = rows[backend]  # printed as soon as it is known: a long run killed later keeps this line
        print(
            f"{backend}: steps {[round(t, 1) for t in r['step']]} s, peak RSS {r['peak_rss_gb']:.2f} GB, "
            f"load now {os.getloadavg()}",
            flush=True,
        )
    after = machine()
    print(f"machine: {before['cpu']}, {before['cores']} cores, {a.threads} torch threads, torch {before['torch']}")
    print(f"load average (1/5/15 min): before {before['load']}, after {after['load']}")
    print(
        f"config: 4 prompts x 8 completions x 64 tokens (EOS suppressed), fp32, {a.steps} timed steps after 1 warm-up, "
        f"grpo_lab rollout: {'plain' if a.plain else 'fast'} path"
    )
    print(f"{'backend':10s} {'s/step':>8s} {'generation s':>13s} {'loss+backward s':>16s} {'peak RSS GB':>12s}")
    med = {}
    for b, r in rows.items():
        med[b] = {k: statistics.median(r[k]) for k in ("step", "generation", "loss_backward")}
        print(
            f"{b:10s} {med[b]['step']:8.1f} {med[b]['generation']:13.1f} {med[b]['loss_backward']:16.1f} "
            f"{r['peak_rss_gb']:12.2f}"
        )
    if {"grpo_lab", "trl"} <= set(med):
        print(f"ratio grpo_lab / trl s/step: {med['grpo_lab']['step'] / med['trl']['step']:.2f}")
    result = {"machine": before, "load_after": after["load"], "threads": a.threads, "plain": a.plain}
    result.update(rows=rows, median=med)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
