"""How often SmolLM2-135M-Instruct solves notebook 10's Countdown, untrained: the measurement behind the
notebook's statement that SmolLM2 members do not fit its stack on 2 CPU cores.

The task is notebook 10's (2 or 3 numbers from 1 to 20, ``+`` and ``-``); the prompt is the chat template with the
system prompt below and the problem's question; the reply's first line is checked by the same label-free
verifier as the notebook's (an expression, or worked steps). Greedy on ``--n`` held-out problems, then ``--k``
samples at temperature 1 on the first ``--groups`` of them: a GRPO group is "mixed" (has a learning signal) when
some samples pass and some fail.

    python -m benchmarks.smollm2_countdown [--n 40] [--k 8] [--groups 20]
"""

from __future__ import annotations

import argparse
import time

import torch

SYSTEM = "Reply with one arithmetic expression only, using each given number at most once and only + and -."


def main(argv=None) -> None:
    from grpo_lab.env import set_threads
    from grpo_lab.models import load_smollm2
    from grpo_lab.rollout import sample_groups
    from grpo_lab.tasks import CountdownTask
    from grpo_lab.tasks.label_free import LabelFreeVerifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--groups", type=int, default=20)
    args = ap.parse_args(argv)
    set_threads()
    model, tok = load_smollm2(progress=False)
    task = CountdownTask(n_numbers=3, hi=20, min_numbers=2, ops="+-")
    verifier = LabelFreeVerifier(task)
    problems = task.heldout_distinct(args.n, seed=7)
    prompts = [
        tok.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p.question}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for p in problems
    ]

    def verdicts(texts, probs):
        return [verifier(p, (t.strip().splitlines() or [""])[0].strip().rstrip(".")) for p, t in zip(probs, texts)]

    t0 = time.perf_counter()
    greedy = sample_groups(model, tok, prompts, 1, max_completion_length=32, do_sample=False)
    ok = verdicts(greedy.texts, problems)
    g = args.groups
    gen = torch.Generator().manual_seed(0)
    sampled = sample_groups(model, tok, prompts[:g], args.k, max_completion_length=32, temperature=1.0, generator=gen)
    groups = [verdicts(sampled.texts[i * args.k : (i + 1) * args.k], [problems[i]] * args.k) for i in range(g)]
    mixed = sum(0 < sum(v) < args.k for v in groups)
    hits = sum(sum(v) for v in groups)
    print(f"task: {task.describe()}; system prompt: {SYSTEM!r}")
    print(f"greedy: {sum(ok)} of {len(ok)} right; e.g. {[t.strip()[:40] for t in greedy.texts[:4]]}")
    print(f"temperature 1, {args.k} samples: {hits} of {g * args.k} right, {mixed} of {g} groups mixed")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
