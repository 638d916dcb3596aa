"""The main job end to end at toy size: every file the README promises, a report with the promised keys."""

import json

import pytest

from grpo_lab import jobs, presets
from grpo_lab.jobs import report as report_mod
from grpo_lab.jobs import run_demo
from grpo_lab.jobs import train as train_mod


def test_demo_writes_models_plot_and_report(tmp_path, capsys):
    toy = presets.get_preset("cpu-addition").replace(
        name="test-toy-demo",
        model="tiny:nano",
        sft={"max_steps": 30, "eval_every": 15, "val_size": 32},
        grpo={"max_steps": 4, "per_device_train_batch_size": 32, "eval_steps": 2, "eval_size": 32},
        eval_size=64,
    )
    report = run_demo(tmp_path, toy, progress=False, seed=3)
    assert "test-toy-demo" not in presets.PRESETS and toy.grpo["seed"] == 0  # no registry, the caller's copy kept
    for sub in ("sft", "final"):
        assert (tmp_path / sub / "config.json").exists() and (tmp_path / sub / "tokenizer.json").exists()
    assert (tmp_path / "grpo.png").stat().st_size > 5000
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["status"] == "done" and saved == json.loads(json.dumps(dict(report)))
    for key in (
        "accuracy_before",
        "accuracy_after",
        "seconds_sft",
        "seconds_train",
        "steps",
        "n_heldout",
        "seconds_total",
        "history",
        "accuracy_after_all_heldout",
        "machine",
        "paired_gain",
    ):
        assert key in saved, key
    assert {"cpu", "threads", "torch"} <= set(saved["machine"])
    printed = capsys.readouterr().out
    assert "None" not in printed and "30 steps of 64" in printed and "55%" in printed and "seed 3" in printed
    # before/after on the same problems: the paired difference is the plain one, with a paired standard error
    gain = saved["paired_gain"]
    assert gain["diff"] == pytest.approx(saved["accuracy_after"] - saved["accuracy_before"]) and gain["n"] == 64
    assert f"{gain['diff']:+.3f} +- {gain['se']:.3f} (paired standard error" in printed
    # The training seed reaches both phases (GRPO's config is saved; SFT's seed is the same number).
    assert saved["seed"] == 3 and saved["grpo_config"]["seed"] == 3
    assert len(saved["history"]) == 4 and all("reward" in r and "frac_reward_zero_std" in r for r in saved["history"])
    assert 0.0 <= saved["accuracy_before"] <= 1.0 and 0.0 <= saved["accuracy_after"] <= 1.0


@pytest.fixture
def toy_arithmetic():
    """cpu-smollm2's recipe on a tiny char model: a ``Preset`` object, never registered."""
    return presets.get_preset("cpu-smollm2").replace(
        name="test-toy-train",
        model="tiny:nano",
        eval_size=12,
        grpo={"max_steps": 2, "per_device_train_batch_size": 8, "num_generations": 4, "max_completion_length": 4},
        runtime={"eval_max_new_tokens": 4, "baseline_max_new_tokens": 8},
    )


def test_train_report_has_the_honest_baseline_lengths_samples_seed_and_machine(tmp_path, toy_arithmetic):
    rep = jobs.run_train(preset=toy_arithmetic, out=tmp_path, seed=3, progress=False)
    saved = json.loads((tmp_path / "report.json").read_text())
    for key in (
        "task",
        "accuracy_before",
        "accuracy_before_at_cap",
        "accuracy_after",
        "accuracy_after_generous",
        "n_heldout",
        "seconds_train",
        "mean_length_before",
        "mean_length_after",
        "samples",
        "seed",
        "machine",
    ):
        assert key in saved, key
    assert (
        saved["task"] == "arithmetic(max_terms=2, hi=12, heldout_buckets=4, negative=False)"
        and saved["seed"] == 3
        and saved["grpo_config"]["seed"] == 3
    )
    assert saved["before"]["max_new_tokens"] == 8 and saved["before_at_cap"]["max_new_tokens"] == 4  # generous vs cap
    assert saved["accuracy_before"] == saved["before"]["accuracy"] and saved["after"]["max_new_tokens"] == 4
    assert saved["n_heldout"] == 12 == saved["before"]["n"]
    assert {"threads", "torch", "cpu"} <= set(saved["machine"]) and saved["backend"] == "grpo_lab"
    assert len(saved["samples"]) == 3 and "before_generous" in saved["samples"][0]
    assert saved.get("system_prompt") is None  # a char model keeps the bare prompt (None: left out)
    assert json.loads((tmp_path / "final" / jobs.TASK_FILE).read_text())["task_args"]["max_terms"] == 2
    assert rep["status"] == "done" and isinstance(rep, jobs.Report) and saved == rep.to_dict()
    assert not any(k.startswith("_") for k in saved)  # no objects inside the report


def test_train_prints_the_gain_with_its_paired_standard_error(tmp_path, toy_arithmetic, capsys):
    rep = jobs.run_train(preset=toy_arithmetic, out=tmp_path, seed=3, progress=True)
    gain, printed = rep["paired_gain"], capsys.readouterr().out
    assert gain["diff"] == pytest.approx(rep["accuracy_after"] - rep["accuracy_before"])
    line = next(x for x in printed.splitlines() if "against the honest baseline" in x)
    assert f"gain {gain['diff']:+.3f} +- {gain['se']:.3f} (paired standard error" in line


def test_report_is_on_disk_before_training_and_survives_a_crash(tmp_path, monkeypatch, toy_arithmetic):
    def crash(*a, **kw):
        raise RuntimeError("power cut")

    monkeypatch.setattr(train_mod, "train_preset", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        jobs.run_train(preset=toy_arithmetic, out=tmp_path, progress=False)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["status"] == "evaluated-before" and 0.0 <= saved["accuracy_before"] <= 1.0


def test_a_compute_dtype_the_device_cannot_run_fails_before_any_evaluation(tmp_path, monkeypatch):
    from grpo_lab.models import build_tiny_model
    from grpo_lab.trainer import ConfigError

    model, tok = build_tiny_model("nano")
    monkeypatch.setattr(report_mod, "evaluate_preset", lambda *a, **kw: pytest.fail("evaluated before refusing"))
    with pytest.raises(ConfigError, match="bf16"):
        jobs.run_train(
            preset_name="cpu-addition",
            out=tmp_path,
            compute_dtype="bf16",
            progress=False,
            model_tok=(model.to("meta"), tok),
        )  # bf16 is refused off CUDA and the CPU


def test_task_spec_from_a_preset_a_task_or_a_trained_folder(tmp_path):
    assert jobs.task_spec("cpu-smollm2")[:2] == ("arithmetic", presets.get_preset("cpu-smollm2").task_args)
    assert jobs.task_spec("countdown") == ("countdown", {}, None)
    (tmp_path / jobs.TASK_FILE).write_text(
        json.dumps({"task": "arithmetic", "task_args": {"hi": 5}, "eval_max_new_tokens": 7})
    )
    assert jobs.task_spec(None, tmp_path) == ("arithmetic", {"hi": 5}, 7)


def test_the_untrained_models_evaluation_is_remembered_for_the_same_problems_and_budget(monkeypatch, toy_arithmetic):
    from grpo_lab.models import load_for_preset
    from grpo_lab.tasks import get_task

    preset = toy_arithmetic
    model, tok = load_for_preset(preset)
    task = get_task(preset.task, tokenizer=tok, **preset.task_args)
    held = task.heldout_distinct(12, seed=jobs.HELDOUT_SEED)
    first, hit = jobs.evaluate_untrained(model, tok, preset, task, held, 0)
    assert not hit
    calls = []
    real = report_mod.evaluate_preset
    monkeypatch.setattr(report_mod, "evaluate_preset", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    again, hit = jobs.evaluate_untrained(model, tok, preset, task, held, 0)
    assert hit and not calls and again.completions == first.completions and again.accuracy == first.accuracy
    _, hit = jobs.evaluate_untrained(model, tok, preset, task, held, 0, max_new_tokens=6)  # another budget
    assert not hit and len(calls) == 1
    _, hit = jobs.evaluate_untrained(model, tok, preset, task, held[:6], 0)  # other problems
    assert not hit and len(calls) == 2


def test_an_unknown_backend_names_the_valid_ones(tmp_path):
    from grpo_lab.errors import GrpoLabError

    with pytest.raises(GrpoLabError, match="grpo_lab, trl"):
        jobs.train_preset(None, None, presets.get_preset("cpu-addition"), tmp_path, backend="deepspeed")


def test_write_atomic_leaves_the_old_file_or_the_new_one(tmp_path, monkeypatch):
    import os

    f = tmp_path / "report.json"
    jobs.write_json(f, {"status": "old"})

    def killed(*a, **kw):
        raise OSError("killed mid-rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError):
        jobs.write_json(f, {"status": "new"})
    assert json.loads(f.read_text()) == {"status": "old"}


def test_report_is_one_schema_that_reads_like_a_dict():
    r = jobs.Report(preset="p", n_heldout=3).update(accuracy_after=0.5)
    assert r["n_heldout"] == 3 and "after_generous" not in r and dict(r)["accuracy_after"] == 0.5
    assert "seconds_grpo" not in {f for f in jobs.Report.__dataclass_fields__}
    with pytest.raises(KeyError):
        r.update(heldout_n=3)  # the demo's old name is gone: one name per number
