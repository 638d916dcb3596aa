"""grpo_lab.trl_backend: the preset run on TRL 1.16's GRPOTrainer (short runs on tiny:nano, CPU)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl")

from transformers import TrainerCallback  # noqa: E402

from grpo_lab.errors import ConfigError  # noqa: E402
from grpo_lab.models import build_tiny_model, load_pretrained_dir  # noqa: E402
from grpo_lab.presets import get_preset  # noqa: E402
from grpo_lab.tasks import get_task  # noqa: E402
from grpo_lab.trl_backend import problems_to_dataset, train_with_trl, trl_args, trl_reward  # noqa: E402

HISTORY_KEYS = {
    "step",
    "reward",
    "accuracy",
    "frac_reward_zero_std",
    "entropy",
    "clip_ratio/low_mean",
    "clip_ratio/high_mean",
    "clip_ratio/region_mean",
    "completion_length",
    "truncated_share",
    "learning_rate",
    "step_time",
    "loss",
    "grad_norm",
}


def small_preset(**over):
    p = get_preset("cpu-addition")
    # a constant rate so the logged learning rate can be compared with the preset's at every step
    p.grpo.update(
        max_steps=3,
        per_device_train_batch_size=16,
        num_generations=4,
        eval_steps=2,
        eval_size=20,
        lr_scheduler_type="constant",
    )
    p.grpo.update(over)
    return p


def digits(prompts, completions, **kwargs):
    """A dense reward a random model can earn: the share of digit characters (so groups differ)."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def test_short_run_trains_and_records_comparable_history(tmp_path):
    torch.manual_seed(0)
    model, tok = build_tiny_model("nano", seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    seen = []
    p = small_preset(beta=0.04)  # beta > 0: TRL must find the reference on disk (saved from memory)
    summary, history = train_with_trl(
        model, tok, p, tmp_path, progress=False, callbacks=[seen.append], reward_funcs=[digits]
    )
    assert summary["steps"] == 3 and summary["seconds"] > 0
    assert [r["step"] for r in history] == [1, 2, 3]
    assert seen == history  # plain callables get each record, as with the from-scratch trainer
    for rec in history:
        assert HISTORY_KEYS - {"accuracy"} <= set(rec), HISTORY_KEYS - set(rec)
        assert "kl" in rec and rec["kl"] >= 0
        assert 0 < rec["completion_length"] <= p.grpo["max_completion_length"]
        assert rec["learning_rate"] == pytest.approx(p.grpo["learning_rate"])
    # held-out accuracy at eval_steps=2 and at the last step, not at step 1
    assert ["eval_accuracy" in r for r in history] == [False, True, True]
    assert any(r["reward_std"] > 0 for r in history)  # the digit reward varies within groups
    changed = sum(float((a - b.detach()).abs().sum()) for a, b in zip(before, model.parameters()))
    assert changed > 0, "TRL did not update the model passed in"
    # out/final holds the trained weights + the char tokenizer; the temp reference path was not leaked
    m2, t2 = load_pretrained_dir(tmp_path / "final")
    assert t2.decode(t2.encode("12+35=47", add_special_tokens=False)) == "12+35=47"
    for a, b in zip(model.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b)
    assert "grpo_lab_trl_ref_" not in (model.config._name_or_path or "")


def test_default_reward_is_the_task_checker(tmp_path):
    task = get_task("addition")
    probs = task.train(4, seed=1)
    ds = problems_to_dataset(probs)
    f = trl_reward(task)
    cols = {k: ds[k] for k in ds.column_names if k != "prompt"}
    right = [p.answer for p in probs]
    assert f(prompts=ds["prompt"], completions=right, **cols) == [1.0] * 4
    assert f(prompts=ds["prompt"], completions=[a + "1" for a in right], **cols) == [0.0] * 4
    # a dataset with only prompt + answer (what students build in notebook 05) works too
    assert f(prompts=ds["prompt"], completions=[" " + a for a in right], answer=right) == [1.0] * 4
    assert f.__name__ == "addition_correct"

    model, tok = build_tiny_model("nano", seed=0)
    summary, history = train_with_trl(model, tok, small_preset(max_steps=1, eval_steps=0), tmp_path, progress=False)
    assert summary["steps"] == 1 and "rewards/addition_correct" in history[0] and "accuracy" in history[0]
    assert "eval_accuracy" not in history[0]


def test_knobs_map_one_to_one():
    p = small_preset(
        temperature=0.7,
        epsilon_high=0.28,
        loss_type="dr_grpo",
        scale_rewards="none",
        top_k=5,
        warmup_steps=2,
        save_steps=0,
    )
    a = trl_args(p.grpo, "/tmp/unused", device="cpu", progress=False)
    for k in (
        "learning_rate",
        "num_generations",
        "per_device_train_batch_size",
        "max_completion_length",
        "max_steps",
        "temperature",
        "beta",
        "epsilon",
        "epsilon_high",
        "loss_type",
        "scale_rewards",
        "max_grad_norm",
        "seed",
        "top_k",
    ):
        assert getattr(a, k) == p.grpo[k], k
    assert (a.bf16, a.use_cpu, a.report_to, a.gradient_accumulation_steps, a.steps_per_generation) == (
        False,
        True,
        [],
        1,
        1,
    )
    assert a.lr_scheduler_type == "constant_with_warmup"
    lin = trl_args({**p.grpo, "lr_scheduler_type": "linear"}, "/tmp/unused", device="cpu", progress=False)
    assert lin.lr_scheduler_type == "linear"
    assert a.save_strategy == "no" and a.logging_steps == 1


@pytest.mark.parametrize(
    "over, match",
    [
        ({"bf16": True}, "compute_dtype"),
        ({"compute_dtype": "fp8"}, "compute_dtype"),
        ({"num_generations": 1}, "num_generations"),
        ({"per_device_train_batch_size": 10, "num_generations": 4}, "multiple of 4"),
        ({"loss_type": "ppo"}, "loss_type"),
        ({"dynamic_sampling": True}, "dynamic_sampling"),
        ({"not_a_knob": 1}, "unknown"),
    ],
)
def test_bad_configs_fail_before_training(tmp_path, over, match):
    model, tok = build_tiny_model("nano", seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ConfigError, match=match):
        train_with_trl(model, tok, small_preset(**over), tmp_path, progress=False)
    assert not (tmp_path / "final").exists()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_bad_reward_signature_is_refused(tmp_path):
    model, tok = build_tiny_model("nano", seed=0)

    def no_kwargs(prompts, completions):
        return [0.0] * len(completions)

    with pytest.raises(ConfigError, match="kwargs"):
        train_with_trl(model, tok, small_preset(), tmp_path, progress=False, reward_funcs=[no_kwargs])
    with pytest.raises(ConfigError, match="completions"):
        train_with_trl(
            model, tok, small_preset(), tmp_path, progress=False, reward_funcs=[lambda texts, **kw: [0.0] * len(texts)]
        )


@pytest.mark.parametrize("dtype,flags", [("fp32", (False, False)), ("bf16", (True, False)), ("fp16", (False, True))])
def test_compute_dtype_maps_to_trls_precision_flags(dtype, flags):
    a = trl_args({**small_preset().grpo, "compute_dtype": dtype}, "/tmp/unused", device="cpu", progress=False)
    assert (a.bf16, a.fp16) == flags


def test_vllm_is_requested_in_colocate_mode_or_named_when_missing(tmp_path, monkeypatch):
    import importlib.util

    from grpo_lab import trl_backend
    from grpo_lab.errors import MissingDependencyError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    p = small_preset()
    p.runtime = {**p.runtime, "use_vllm": True}
    model, tok = build_tiny_model("nano", seed=0)
    with pytest.raises(MissingDependencyError, match=r'pip install "grpo-lab\[vllm\]"'):
        train_with_trl(model, tok, p, tmp_path, progress=False)
    assert not (tmp_path / "final").exists()
    assert trl_backend.vllm_kwargs(False) == {}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))
    assert trl_backend.vllm_kwargs(True) == {"use_vllm": True, "vllm_mode": "colocate"}


class _OptimizerAtStart(TrainerCallback):
    """Records the step counter and the first AdamW moment when TRL starts training (after a resume loaded them)."""

    def on_train_begin(self, args, state, control, optimizer=None, **kw):
        self.step = state.global_step
        first = next(iter(optimizer.state_dict()["state"].values()), None)
        self.exp_avg = None if first is None else first["exp_avg"].detach().clone()


def test_trl_resume_restores_step_counter_and_optimizer_state(tmp_path):
    torch.manual_seed(0)
    model, tok = build_tiny_model("nano", seed=0)
    p = small_preset(max_steps=2, eval_steps=0, save_steps=2)
    train_with_trl(model, tok, p, tmp_path, progress=False, reward_funcs=[digits])
    ckpt = tmp_path / "checkpoints" / "checkpoint-2"
    assert (ckpt / "optimizer.pt").is_file() and (ckpt / "trainer_state.json").is_file()
    saved = torch.load(ckpt / "optimizer.pt", weights_only=True)["state"][0]["exp_avg"]

    fresh, tok2 = build_tiny_model("nano", seed=1)  # other weights: the checkpoint must overwrite them
    seen = _OptimizerAtStart()
    summary, history = train_with_trl(
        fresh,
        tok2,
        small_preset(max_steps=3, eval_steps=0, save_steps=2),
        tmp_path,
        progress=False,
        callbacks=[seen],
        reward_funcs=[digits],
        resume_from_checkpoint=True,
    )
    assert seen.step == 2 and seen.exp_avg is not None and torch.equal(seen.exp_avg, saved)
    assert summary["steps"] == 3 and [r["step"] for r in history] == [3]


def test_mixed_precision_run_leaves_the_models_own_forward(tmp_path):
    """accelerate's ``prepare`` wraps ``model.forward`` in autocast (outputs cast to fp32) and never undoes it;
    after ``train_with_trl`` the model must be back to its own forward, so an evaluation after training runs
    in the precision the one before training ran in."""
    torch.manual_seed(0)
    model, tok = build_tiny_model("nano", seed=0)
    p = small_preset(max_steps=1, eval_steps=0)
    p.runtime = {**p.runtime, "compute_dtype": "bf16"}
    train_with_trl(model, tok, p, tmp_path, progress=False, reward_funcs=[digits])
    assert "_original_forward" not in model.__dict__ and "forward" not in model.__dict__, "accelerate's wrapper"
    ids = tok("1+2=", return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(input_ids=ids).logits.dtype == torch.bfloat16, "no fp32 cast of the outputs left behind"


def test_progress_is_one_bar_not_trls_notebook_table(tmp_path, monkeypatch, capsys):
    """In Jupyter, transformers' Trainer shows NotebookProgressCallback: an HTML table with a row per logged step
    (200 rows in a stored 200-step notebook). ``train_with_trl(progress=True)`` keeps TRL's display off and
    draws the from-scratch trainer's bar instead."""
    import transformers.trainer as hf_trainer
    from transformers.utils.notebook import NotebookProgressCallback

    from grpo_lab import trl_backend

    monkeypatch.setattr(hf_trainer, "DEFAULT_PROGRESS_CALLBACK", NotebookProgressCallback)  # as inside Jupyter
    built = []
    real_fit = trl_backend._fit

    def spy(*a, **kw):
        trainer, seconds = real_fit(*a, **kw)
        built.append(trainer)
        return trainer, seconds

    monkeypatch.setattr(trl_backend, "_fit", spy)
    model, tok = build_tiny_model("nano", seed=0)
    train_with_trl(model, tok, small_preset(max_steps=2, eval_steps=0), tmp_path, progress=True, reward_funcs=[digits])
    kinds = {type(c).__name__ for c in built[0].callback_handler.callbacks}
    assert not kinds & {"NotebookProgressCallback", "ProgressCallback", "PrinterCallback"}, kinds
    err = capsys.readouterr().err
    assert "GRPO: 100%" in err and "2/2" in err


def test_vllm_settings_reach_trls_config_and_a_t4_is_refused_with_the_caveats(monkeypatch):
    import dataclasses
    import importlib.util

    from trl import GRPOConfig as TRLConfig

    from grpo_lab import trl_backend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))
    rt = get_preset("t4-qwen2.5-0.5b-gsm8k-lora").runtime
    with pytest.raises(ConfigError, match=r"7\.5.*FlashAttention.*fp16.*pins its own torch.*use_vllm=False"):
        trl_backend.vllm_kwargs(True, rt, capability=(7, 5))
    kw = trl_backend.vllm_kwargs(True, rt, capability=(8, 0))
    fields = {f.name for f in dataclasses.fields(TRLConfig)}
    assert set(trl_backend.VLLM_SETTINGS) <= fields  # TRL 1.16's own names
    assert {k: kw[k] for k in trl_backend.VLLM_SETTINGS} == {k: rt[k] for k in trl_backend.VLLM_SETTINGS}


def test_trl_checkpoints_as_the_preset_says_on_cuda_only_and_logs_nonfinite_losses():
    knobs = small_preset().grpo
    cpu = trl_args(knobs, "/tmp/unused", device="cpu", progress=False, gradient_checkpointing=True)
    assert cpu.gradient_checkpointing is False  # CPU presets and CPU runs keep the two backends' work equal
    gpu = trl_args(knobs, "/tmp/unused", device="cuda", progress=False, gradient_checkpointing=True)
    assert gpu.gradient_checkpointing is True and gpu.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert trl_args(knobs, "/tmp/unused", device="cuda", progress=False).gradient_checkpointing is False
    assert cpu.logging_nan_inf_filter is False  # a NaN loss is logged as NaN, for loop.NonFiniteStopCallback


def test_trl_is_not_asked_to_checkpoint_a_model_that_already_does(tmp_path):
    """models.load_for_preset turns checkpointing on for a GPU preset; train_with_trl must not enable it a second time
    (TRL's Trainer would call activation_checkpointing_enable again and add a second input-grad hook)."""
    from grpo_lab.trl_backend import _trl_config

    rt = {"gradient_checkpointing": True}
    model, _ = build_tiny_model("nano", seed=0)
    assert _trl_config(model, small_preset().grpo, rt, tmp_path, "cuda", False).gradient_checkpointing is True
    model.gradient_checkpointing_enable()  # what load_for_preset does on CUDA
    assert _trl_config(model, small_preset().grpo, rt, tmp_path, "cuda", False).gradient_checkpointing is False
    assert _trl_config(model, small_preset().grpo, {}, tmp_path, "cuda", False).gradient_checkpointing is False
