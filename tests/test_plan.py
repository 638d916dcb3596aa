"""Presets and dry-run plans: every preset plans on a CPU with no network; estimates behave."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grpo_lab import cli, plan
from grpo_lab.presets import PRESETS, get_preset

ROOT = Path(__file__).resolve().parents[1]


def test_list_presets_prints_names_one_a_line(capsys):
    assert cli.main(["train", "--list-presets"]) == 0
    names = capsys.readouterr().out.split()
    assert set(names) == set(PRESETS)
    for want in (
        "cpu-smollm2-gsm8k",
        "t4-qwen2.5-0.5b-gsm8k",
        "t4-qwen2.5-0.5b-gsm8k-lora",
        "a100-qwen2.5-0.5b-gsm8k",
    ):
        assert want in names


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_dry_run_every_preset(name, capsys):
    assert cli.main(["train", "--preset", name, "--dry-run", "--steps", "7"]) == 0
    out = capsys.readouterr().out
    assert name in out and "peak memory (estimate)" in out and "time per step (estimate)" in out
    assert "total for 7 steps" in out and "ESTIMATES" in out


def test_dry_run_in_a_fresh_offline_process():
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-m", "grpo_lab.cli", "train", "--preset", "t4-qwen2.5-0.5b-gsm8k", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "494.03M parameters" in r.stdout and "fits in 15 GiB" in r.stdout


def test_param_counts_match_real_models():
    from grpo_lab.models import TINY_SIZES, build_tiny_model, count_parameters

    for size in TINY_SIZES:
        m, _ = build_tiny_model(size)
        assert plan.param_count(plan.architecture(f"tiny:{size}")) == count_parameters(m)
    assert plan.param_count(plan.architecture("Qwen/Qwen2.5-0.5B-Instruct")) == 494_032_768  # published size
    assert plan.param_count(plan.architecture("smollm2")) == 134_515_008


def test_param_count_matches_a_model_built_from_the_config():
    from transformers import AutoModelForCausalLM

    from grpo_lab.models import count_parameters

    arch = dict(
        plan.architecture("Qwen/Qwen2.5-0.5B-Instruct"),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=300,
    )
    m = AutoModelForCausalLM.from_config(plan.hf_config(arch))
    assert plan.param_count(arch) == count_parameters(m)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(KeyError, match="downloads nothing"):
        plan.architecture("someone/unknown-7b")


@pytest.mark.parametrize("name", ["t4-qwen2.5-0.5b-gsm8k", "cpu-smollm2-gsm8k", "a100-qwen2.5-0.5b-gsm8k"])
def test_estimates_are_monotone_in_batch_group_and_length(name):
    p = get_preset(name)
    G = p.grpo["num_generations"]
    base = plan.estimate(p)
    for kw in (
        dict(batch=2 * p.grpo["per_device_train_batch_size"]),
        dict(max_completion_length=2 * p.grpo["max_completion_length"]),
    ):
        big = plan.estimate(p, **kw)
        assert big.peak_bytes > base.peak_bytes and big.step_seconds > base.step_seconds
    # more completions per prompt (G) at the same number of prompts
    n_prompts = p.grpo["per_device_train_batch_size"] // G
    more_g = plan.estimate(p, num_generations=2 * G, batch=2 * G * n_prompts)
    assert more_g.peak_bytes > base.peak_bytes and more_g.step_seconds > base.step_seconds


def test_t4_presets_fit_in_16_gb_by_the_estimate():
    for name in ("t4-qwen2.5-0.5b-gsm8k", "t4-qwen2.5-0.5b-gsm8k-lora"):
        est = plan.estimate(get_preset(name), device="t4")
        assert est.peak_gib < 14.5, (name, est.peak_gib)  # the cap benchmarks/gpu_check.sh runs them under
        assert get_preset(name).runtime["compute_dtype"] == "fp16"  # a T4 has no bf16
    # LoRA saves memory; a 40 GB preset fits its class
    full = plan.estimate(get_preset("t4-qwen2.5-0.5b-gsm8k"), use_peft=False)
    lora = plan.estimate(get_preset("t4-qwen2.5-0.5b-gsm8k"), use_peft=True)
    assert lora.peak_bytes < full.peak_bytes and lora.trainable < full.trainable / 20
    assert plan.estimate(get_preset("a100-qwen2.5-0.5b-gsm8k")).peak_gib < 39.5
    assert plan.estimate(get_preset("a100-qwen2.5-0.5b-gsm8k-lora")).peak_gib < 39.5


def test_gpu_presets_are_sized_to_learn():
    """Several prompts a step, enough steps, 500 evaluation problems, published learning-rate ranges, the
    precision each GPU has, and a default backend."""
    for name, p in PRESETS.items():
        if p.hardware == "cpu":
            continue
        g, rt = p.grpo, p.runtime
        assert g["per_device_train_batch_size"] // g["num_generations"] >= 4 and g["num_generations"] >= 8, name
        assert g["max_steps"] >= 200 and p.eval_size >= 500, name
        lo, hi = (1e-5, 5e-5) if rt["use_peft"] else (1e-6, 3e-6)
        assert lo <= g["learning_rate"] <= hi, name
        assert rt["compute_dtype"] == ("fp16" if p.hardware == "t4" else "bf16"), name
        assert p.backend in ("grpo_lab", "trl")


def test_memory_counts_what_the_trainer_holds():
    p = get_preset("t4-qwen2.5-0.5b-gsm8k")
    P = plan.param_count(plan.architecture(p.model))
    est = plan.estimate(p, backend="grpo_lab")
    assert est.memory["weights"] == est.memory["gradients"] == P * 4 and est.memory["Adam moments"] == 2 * P * 4
    assert est.memory["autocast weight copy (one forward)"] == P * 2  # fp16 over fp32 master weights
    assert not any("reference" in k for k in est.memory)  # beta = 0: no reference model
    with_ref = plan.estimate(p.copy(beta=0.04), backend="grpo_lab")
    assert with_ref.memory["reference model (frozen copy)"] == P * 4
    lora_ref = plan.estimate(get_preset("t4-qwen2.5-0.5b-gsm8k-lora").copy(beta=0.04))
    assert not any("reference" in k for k in lora_ref.memory)  # the adapters switched off are the reference
    # Completion positions only: the logits term grows with the completion length, not with the prompt.
    B, T, V = 32, p.grpo["max_completion_length"], 151936
    assert est.memory["update: completion logits + grad"] == 2 * B * (T + 1) * V * 2 + 2 * 8 * T * V * 4
    assert plan.estimate(p, backend="trl").peak_bytes < est.peak_bytes  # TRL's fused log-prob kernel


def test_gsm8k_preset_knobs_are_accepted_by_the_trainer_config():
    from grpo_lab.trainer import GRPOConfig

    for name, p in PRESETS.items():
        cfg = GRPOConfig.from_dict(p.grpo)  # raises on a key the backends do not know
        assert cfg.per_device_train_batch_size % cfg.num_generations == 0
        assert cfg.loss_type in ("grpo", "bnpo", "dr_grpo", "dapo")
