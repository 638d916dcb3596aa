"""Run a preset's TRL training data-parallel: one process per GPU (or CPU process), launched by torchrun or accelerate.

    torchrun --nproc_per_node 2 scripts/launch_trl_ddp.py --preset cpu-tiny-gsm8k --steps 2 --out runs/ddp
    accelerate launch --num_processes 2 scripts/launch_trl_ddp.py --preset t4-qwen2.5-0.5b-gsm8k   # 2 GPUs
    python scripts/launch_trl_ddp.py --write-accelerate-config cpu2.yaml   # then, on CPUs:
    accelerate launch --config_file cpu2.yaml scripts/launch_trl_ddp.py --preset cpu-tiny-gsm8k --steps 2

Design notes:

- No distributed code of ours: TRL's ``GRPOTrainer`` (through ``accelerate``) reads the launcher's environment
  (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``), wraps the model in DDP (gloo on CPUs, NCCL on GPUs), splits the
  prompts between processes, gathers rewards to compute group advantages, and averages gradients.
- Every process builds the same starting model (same seed) and the same data; each writes
  ``out/rank<r>.json`` (its history and a checksum of its final weights) so a test can check that all ranks
  ran and ended with identical weights, which is what data parallelism promises.
- ``accelerate launch --cpu --num_processes 2`` starts one process, and so does a ``MULTI_CPU`` config
  (accelerate 1.x expects mpirun for it). ``--write-accelerate-config`` writes a config for accelerate's
  torchrun-based launcher instead, which runs two CPU processes with gloo (tested).
- In TRL ``per_device_train_batch_size`` counts completions per process: the generation batch is
  ``per_device_train_batch_size * num_processes * steps_per_generation`` and must be divisible by
  ``num_generations``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# accelerate 1.x starts several CPU processes only through its multi-GPU launcher (torchrun underneath):
# with `distributed_type: MULTI_CPU` (+ use_cpu) it ran a single process here, since that path expects
# mpirun. On a machine without GPUs the torchrun launcher's processes fall back to the CPU and gloo.
ACCELERATE_CPU_CONFIG = """compute_environment: LOCAL_MACHINE
distributed_type: MULTI_GPU
num_machines: 1
num_processes: {n}
machine_rank: 0
main_training_function: main
mixed_precision: 'no'
dynamo_config: {{}}
use_cpu: false
rdzv_backend: static
same_network: true
"""


def weights_checksum(model) -> float:
    """A float summary of all parameters (sum of |w| in float64): equal across ranks iff replicas agree
    (up to reduction order, which DDP makes identical on every rank)."""
    import torch

    with torch.no_grad():
        return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


def digit_share(prompts, completions, **kwargs) -> list[float]:
    """Plumbing reward (not for learning math): the share of digit characters in each completion."""
    from grpo_lab.rewards import completion_text

    texts = [completion_text(c) or "" for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(1, len(t)) for t in texts]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu-tiny-gsm8k")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", default="runs/trl-ddp")
    ap.add_argument("--write-accelerate-config", metavar="PATH", help="write a MULTI_CPU accelerate config and exit")
    ap.add_argument("--num-processes", type=int, default=2)
    ap.add_argument(
        "--reward",
        choices=["correctness", "digits"],
        default="correctness",
        help="'digits' (share of digit characters) is a plumbing reward for tests: it varies within "
        "groups even for a random model, so gradients are non-zero and the ranks' agreement means something",
    )
    args = ap.parse_args(argv)
    if args.write_accelerate_config:
        Path(args.write_accelerate_config).write_text(ACCELERATE_CPU_CONFIG.format(n=args.num_processes))
        print(f"wrote {args.write_accelerate_config}")
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from grpo_lab.cli import _quiet_libraries

    _quiet_libraries()
    from grpo_lab.jobs import train_preset
    from grpo_lab.models import load_for_preset
    from grpo_lab.presets import get_preset
    from grpo_lab.tasks import get_task

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    preset = get_preset(args.preset)
    if args.steps is not None:
        preset.grpo["max_steps"] = args.steps
    model, tok = load_for_preset(preset, device="cpu" if preset.hardware == "cpu" else None)
    task = get_task(preset.task, tokenizer=tok)
    out = Path(args.out)
    init = weights_checksum(model)
    funcs = [digit_share] if args.reward == "digits" else None
    summary, history = train_preset(
        model, tok, preset, out / f"rank{rank}", task=task, backend="trl", progress=False, reward_funcs=funcs
    )
    rec = {
        "rank": rank,
        "world_size": world,
        "steps": summary["steps"],
        "seconds": summary["seconds"],
        "checksum_init": init,
        "checksum": weights_checksum(model),
        "history": history,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(rec, indent=1))
    print(
        f"rank {rank}/{world}: {summary['steps']} steps in {summary['seconds']:.1f} s, checksum {rec['checksum']:.6f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
