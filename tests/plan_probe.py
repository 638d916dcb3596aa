"""Run by tests/test_plan.py in a fresh process: two GRPO steps of a randomly initialised model of a given shape with
one backend, printing (last line, JSON) the peak RSS above the RSS before the first step, sampled every 2 ms.

    python tests/plan_probe.py {grpo_lab|trl} '<arch json>' '<GRPO knobs json>'

The tokenizer is a word-level one over the model's whole vocabulary ("w0", "w1", ...), so sampled ids decode; the
reward is a seeded random number, so every group has a gradient. Prompts are 16 tokens (the plan is told so).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tokenizer(vocab: int):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({f"w{i}": i for i in range(vocab)}, unk_token="w0"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="w0", pad_token="w0", eos_token="w1")


def main() -> None:
    backend, arch, knobs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from grpo_lab import plan

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(plan.hf_config(arch))
    tok = tokenizer(arch["vocab_size"])
    rng = torch.Generator().manual_seed(1)
    prompts = [
        " ".join(f"w{int(i)}" for i in torch.randint(2, arch["vocab_size"], (16,), generator=rng)) for _ in range(64)
    ]
    data = Dataset.from_dict({"prompt": prompts})

    def noise(prompts, completions, **kw):
        return torch.rand(len(completions), generator=rng).tolist()

    cfg = dict(knobs, learning_rate=1e-4, temperature=1.0, beta=0.0, loss_type="dapo", seed=0, eval_steps=0)
    if backend == "trl":
        from trl import GRPOTrainer as TRLTrainer

        from grpo_lab.trl_backend import trl_args

        args = trl_args(cfg, tempfile.mkdtemp(), device="cpu", progress=False)
        tr = TRLTrainer(model=model, reward_funcs=[noise], args=args, train_dataset=data, processing_class=tok)
        run = tr.train
    else:
        from grpo_lab.trainer import GRPOConfig, GRPOTrainer

        tr = GRPOTrainer(model, [noise], args=GRPOConfig.from_dict(cfg), train_dataset=data, processing_class=tok)

        def run():
            for _ in range(knobs["max_steps"]):
                tr.step()

    proc = psutil.Process()
    base, peak, done = proc.memory_info().rss, [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    run()
    done.set()
    t.join()
    print(json.dumps({"peak_delta_bytes": peak[0] - base, "base_rss_bytes": base}))


if __name__ == "__main__":
    main()
