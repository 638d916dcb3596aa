"""The main job end to end at toy size: every file the README promises, a report with the promised keys."""

import json

from grpo_lab import presets
from grpo_lab.jobs import run_demo


def test_demo_writes_models_plot_and_report(tmp_path):
    base = presets.get_preset("cpu-addition")
    toy = presets.Preset(
        name="test-toy-demo", description="cpu-addition at toy size", model="tiny:nano", task="addition",
        sft={**base.sft, "max_steps": 30, "eval_every": 15, "val_size": 32},
        grpo={**base.grpo, "max_steps": 4, "per_device_train_batch_size": 32, "eval_steps": 2, "eval_size": 32},
        eval_size=64,
    )
    presets.register(toy)
    try:
        report = run_demo(tmp_path, "test-toy-demo", progress=False, seed=3)
    finally:
        presets.PRESETS.pop("test-toy-demo")
    for sub in ("sft", "final"):
        assert (tmp_path / sub / "config.json").exists() and (tmp_path / sub / "tokenizer.json").exists()
    assert (tmp_path / "grpo.png").stat().st_size > 5000
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["status"] == "done" and saved == json.loads(json.dumps(report))
    for key in ("accuracy_before", "accuracy_after", "seconds_sft", "seconds_grpo", "seconds_total", "history",
                "accuracy_after_all_heldout"):
        assert key in saved, key
    # The training seed reaches both phases (GRPO's config is saved; SFT's seed is the same number).
    assert saved["seed"] == 3 and saved["grpo_config"]["seed"] == 3
    assert len(saved["history"]) == 4 and all("reward" in r and "frac_reward_zero_std" in r for r in saved["history"])
    assert 0.0 <= saved["accuracy_before"] <= 1.0 and 0.0 <= saved["accuracy_after"] <= 1.0
