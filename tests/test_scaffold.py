"""The shared trainer scaffold (``grpo_lab.loop``): trainers import no sibling trainer, one generator rule per
device, TRL's data and callback conventions, and the reward scoring every backend uses."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

import grpo_lab.ppo as ppo_mod
import grpo_lab.trainer as trainer_mod
from grpo_lab import loop
from grpo_lab.config import GRPOConfig, PPOConfig
from grpo_lab.models import build_tiny_model
from grpo_lab.tasks import AdditionTask

PKG = Path(__file__).resolve().parents[1] / "grpo_lab"
TRAINERS = ("trainer", "ppo", "trl_backend")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, lazy imports inside functions included (``from grpo_lab import x`` as
    ``grpo_lab.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


@pytest.mark.parametrize("name", TRAINERS)
def test_no_trainer_imports_another_trainers_implementation(name):
    others = {f"grpo_lab.{o}" for o in TRAINERS if o != name}
    bad = sorted(_imports(PKG / f"{name}.py") & others)
    assert not bad, f"grpo_lab.{name} imports {bad}: share code through grpo_lab.loop / grpo_lab.config instead"


class FakeGenerator:
    """Stands in for ``torch.Generator`` on a machine without the device: records where it was made."""

    made: list[str] = []

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        FakeGenerator.made.append(self.device.type)

    def manual_seed(self, seed):
        return self


class Stop(Exception):
    pass


def _fake_device(monkeypatch, kind):
    FakeGenerator.made = []
    monkeypatch.setattr(torch, "Generator", FakeGenerator)
    monkeypatch.setattr(loop, "model_device", lambda model: torch.device(kind))
    seen = {}

    def sampling(*a, generator=None, **k):
        seen["generator"] = generator
        raise Stop

    monkeypatch.setattr(trainer_mod, "sample_groups", sampling)
    monkeypatch.setattr(ppo_mod, "sample_groups", sampling)
    return seen


def length(prompts, completions, **kwargs):
    return [float(len(c)) for c in completions]


@pytest.mark.parametrize("kind", ["cuda", "mps", "cpu"])
@pytest.mark.parametrize("algo", ["GRPO", "PPO"])
def test_sampling_generator_lives_on_the_models_device(monkeypatch, kind, algo):
    seen = _fake_device(monkeypatch, kind)
    model, tok = build_tiny_model("nano", seed=0)
    common = dict(per_device_train_batch_size=8, max_completion_length=2, max_steps=1)
    if algo == "GRPO":
        args = GRPOConfig(num_generations=4, **common)
        tr = trainer_mod.GRPOTrainer(
            model, [length], args=args, train_dataset=AdditionTask().train(8), processing_class=tok
        )
    else:
        args = PPOConfig(kl_coef=0.0, **common)
        tr = ppo_mod.PPOTrainer(
            model, [length], args=args, train_dataset=AdditionTask().train(8), processing_class=tok
        )
    assert FakeGenerator.made == [kind if kind != "cpu" else "cpu"]
    assert tr.gen.device.type == kind
    with pytest.raises(Stop):
        tr.step()
    assert seen["generator"] is tr.gen  # the sampling receives the device's generator


def test_make_generator_rule():
    assert loop.make_generator("cpu", 3).device.type == "cpu"
    a, b = loop.make_generator("cpu", 3), loop.make_generator(torch.device("cpu"), 3)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


def test_scheduler_name_maps_constant_once():
    assert loop.scheduler_name("constant") == "constant_with_warmup"
    assert loop.scheduler_name("linear") == "linear" and loop.scheduler_name("cosine") == "cosine"


def test_score_weights_and_none():
    def half(prompts, completions, **kw):
        return [0.5, None]

    def one(prompts, completions, **kw):
        return [1.0, 1.0]

    total, per = loop.score([half, one], torch.tensor([2.0, 1.0]), ["a", "b"], ["x", "y"], {})
    assert total.tolist() == [2.0, 1.0] and per == {"half": [0.5, 0.0], "one": [1.0, 1.0]}
    with pytest.raises(loop.ConfigError, match="returned 1 scores"):
        loop.score([lambda prompts, completions, **kw: [1.0]], torch.ones(1), ["a", "b"], ["x", "y"], {})


class Recorder(TrainerCallback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, args, state, control, **kw):
        self.events.append(("begin", state.global_step))

    def on_step_end(self, args, state, control, **kw):
        self.events.append(("step_end", state.global_step))

    def on_log(self, args, state, control, logs=None, **kw):
        self.events.append(("log", logs["step"]))


def test_dataset_columns_reach_rewards_and_callbacks_follow_transformers():
    from datasets import Dataset

    task = AdditionTask()
    probs = task.train(8, seed=0)
    ds = Dataset.from_dict(
        {"prompt": [p.prompt for p in probs], "answer": [p.answer for p in probs], "tag": ["t"] * 8}
    )
    got = {}

    def spy(prompts, completions, answer, tag, **kwargs):
        got.update(prompts=prompts, answer=answer, tag=tag, n=len(completions))
        return [0.0] * len(completions)

    model, tok = build_tiny_model("nano", seed=0)
    plain, rec = [], Recorder()
    args = GRPOConfig(num_generations=4, per_device_train_batch_size=8, max_completion_length=2, max_steps=2)
    tr = trainer_mod.GRPOTrainer(
        model,
        [spy, trainer_mod.task_reward(task)],
        args=args,
        train_dataset=ds,
        eval_dataset=ds,
        processing_class=tok,
        callbacks=[plain.append, rec],
        task=task,
    )
    res = tr.train(progress=False)
    assert got["n"] == 8 and got["tag"] == ["t"] * 8 and len(got["answer"]) == 8
    assert all(p in ds["prompt"] for p in got["prompts"])
    assert plain == res.history == tr.state.log_history and len(plain) == 2
    assert rec.events == [("begin", 0), ("step_end", 1), ("log", 1), ("step_end", 2), ("log", 2)]
    assert tr.eval_problems[0].answer == probs[0].answer  # the eval rows became Problems for held-out accuracy
    assert "rewards/addition_correct" in res.history[-1]


def test_a_dataset_without_prompt_is_refused():
    model, tok = build_tiny_model("nano", seed=0)
    with pytest.raises(loop.ConfigError, match="prompt"):
        trainer_mod.GRPOTrainer(
            model,
            [length],
            args=GRPOConfig(num_generations=4, per_device_train_batch_size=8),
            train_dataset=[{"q": 1}],
            processing_class=tok,
        )


def test_ppo_resumes_exactly_with_its_critic(tmp_path):
    """PPO's checkpoint also holds the critic (value_model.pt): a resumed run ends where an uninterrupted one does."""

    def make(**over):
        model, tok = build_tiny_model("nano", seed=0)
        args = PPOConfig(
            learning_rate=3e-3, per_device_train_batch_size=8, max_completion_length=3, max_steps=3, seed=2, **over
        )
        return ppo_mod.PPOTrainer(
            model, [length], args=args, train_dataset=AdditionTask().train(32), processing_class=tok
        )

    full = make()
    full.train(progress=False)
    part = make(save_steps=2, output_dir=str(tmp_path))
    for _ in range(2):
        part.step()
    assert (tmp_path / "checkpoint-2" / "value_model.pt").is_file()
    resumed = make(output_dir=str(tmp_path))
    resumed.train(resume_from_checkpoint=True, progress=False)
    for a, b in zip(
        [*full.model.parameters(), *full.value_model.parameters()],
        [
            *resumed.model.parameters(),
            *resumed.value_model.parameters(),
        ],
    ):
        assert torch.equal(a, b)
    assert [r["reward"] for r in resumed.history] == [r["reward"] for r in full.history]


def test_a_save_killed_midway_leaves_no_checkpoint_and_is_cleaned(tmp_path, monkeypatch):
    """Atomic checkpoints: files go to tmp-checkpoint-N; only a finished save is renamed to checkpoint-N."""
    from grpo_lab import checkpoint

    model, tok = build_tiny_model("nano", seed=0)
    args = GRPOConfig(num_generations=4, per_device_train_batch_size=8, max_completion_length=2, max_steps=2)
    tr = trainer_mod.GRPOTrainer(
        model, [length], args=args, train_dataset=AdditionTask().train(8), processing_class=tok
    )
    tr.step()
    real = torch.save

    def dies_at_the_rng_file(obj, f, *a, **k):
        if str(f).endswith("rng_state.pth"):
            raise KeyboardInterrupt  # the process dies mid-save
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", dies_at_the_rng_file)
    with pytest.raises(KeyboardInterrupt):
        tr.save_checkpoint(tmp_path)
    assert (tmp_path / "tmp-checkpoint-1").is_dir() and not (tmp_path / "checkpoint-1").exists()
    assert loop.latest_checkpoint(tmp_path) is None
    monkeypatch.setattr(torch, "save", real)
    done = tr.save_checkpoint(tmp_path)
    assert done.name == "checkpoint-1" and loop.latest_checkpoint(tmp_path) == done
    assert not list(tmp_path.glob("tmp-*"))
    assert checkpoint.resolve(True, tmp_path) == done and checkpoint.resolve(tmp_path, None) == done
