"""Presets are objects: a typed runtime that refuses misspelt settings, ``replace`` over every field, no registry
edits needed to run a variant."""

import pytest

from grpo_lab import presets
from grpo_lab.errors import GrpoLabError, UnknownNameError
from grpo_lab.presets import Preset, Runtime


def test_replace_covers_every_field_and_leaves_the_original_alone():
    base = presets.get_preset("cpu-smollm2")
    p = base.replace(
        model="tiny:nano",
        eval_size=9,
        sft={"max_steps": 3},
        grpo={"max_steps": 4, "learning_rate": 1e-3},
        runtime={"eval_k": 2},
        task_args={"hi": 5},
        backend="trl",
    )
    assert (p.model, p.eval_size, p.sft, p.backend) == ("tiny:nano", 9, {"max_steps": 3}, "trl")
    assert p.grpo["max_steps"] == 4 and p.grpo["num_generations"] == base.grpo["num_generations"]
    assert p.runtime.eval_k == 2 and p.runtime.eval_max_new_tokens == 32 and p.task_args["hi"] == 5
    assert base == presets.PRESETS["cpu-smollm2"]  # untouched, and so is the registry
    assert base.copy(max_steps=7, seed=None).grpo["max_steps"] == 7  # notebook 05's shorthand


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda p: p.replace(lr=1), "valid: name"),
        (lambda p: p.replace(grpo={"lr": 1}), "learning_rate"),
        (lambda p: p.copy(bf16=True), "compute_dtype='bf16'"),
        (lambda p: p.replace(runtime={"gradient_checkpoint": True}), "gradient_checkpointing"),
        (lambda p: Runtime(lora_rank=8), "lora_r"),
        (lambda p: setattr(p.runtime, "lora_rank", 8), "lora_r"),
        (lambda p: p.runtime.update(eval_max_new_token=8), "eval_max_new_tokens"),
    ],
)
def test_a_misspelt_setting_names_the_valid_ones(make, needle):
    with pytest.raises(GrpoLabError, match=needle):
        make(presets.get_preset("cpu-smollm2"))


def test_runtime_reads_like_the_dict_it_was():
    rt = presets.get_preset("t4-qwen2.5-0.5b-gsm8k").runtime
    assert rt["compute_dtype"] == "fp16" and rt.get("use_vllm", False) is False and "use_vllm" not in rt
    assert {**rt}["lora_r"] == 16 and set(rt) == set(rt.as_dict())
    p = presets.get_preset("cpu-addition")
    p.runtime = {"compute_dtype": "bf16"}  # a dict assigned is converted and checked
    assert isinstance(p.runtime, Runtime) and p.runtime.compute_dtype == "bf16"


def test_resolve_copies_objects_and_names():
    p = presets.get_preset("cpu-addition").replace(name="mine")
    q = presets.resolve(p)
    assert q == p and q is not p and presets.resolve("cpu-addition") == presets.PRESETS["cpu-addition"]
    with pytest.raises(UnknownNameError, match="unknown preset"):
        presets.resolve("nope")


def test_gpu_presets_checkpoint_by_default_and_teachers_are_a_preset():
    for p in presets.PRESETS.values():
        assert bool(p.grpo.get("save_steps")) == (p.hardware != "cpu"), p.name
    t = presets.TEACHER_PRESET
    assert isinstance(t, Preset) and t.name not in presets.PRESETS and t.grpo["learning_rate"] == 1e-4
    presets.check_grpo_names(t.grpo)


def test_task_budgets_are_task_attributes():
    from grpo_lab.evaluation import max_answer_tokens
    from grpo_lab.tasks import get_task

    assert [max_answer_tokens(get_task(n)) for n in ("addition", "arithmetic", "countdown")] == [5, 8, 24]
