"""The command line as a user meets it: one-line errors that name the fix, the eval line, presets."""

import json
import subprocess
import sys

import pytest

from grpo_lab import cli


def run(*args, env_extra=None):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "grpo_lab.cli", *args], capture_output=True, text=True, env=env)


def test_eval_prints_the_accuracy_line(tmp_path):
    from grpo_lab.models import build_tiny_model

    model, tok = build_tiny_model("nano")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    r = run("eval", "--model", str(tmp_path / "m"), "--task", "addition", "--n", "20", "--seed", "3")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("accuracy: ") and 0.0 <= float(line.split()[1]) <= 1.0


@pytest.mark.parametrize(
    "args,needle",
    [
        (["eval", "--model", "does/not/exist/here", "--task", "addition"], "save_pretrained"),
        (["eval", "--model", "tiny:nano", "--task", "chess"], "unknown task"),
        (["eval", "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--task", "addition"], "offline"),
        (["train", "--preset", "no-such-preset", "--dry-run"], "unknown preset"),
    ],
)
def test_expected_failures_are_one_line_errors(args, needle):
    r = run(*args)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert err and err[-1].startswith("grpo-lab: error:") and needle.lower() in err[-1].lower(), r.stderr
    assert "Traceback" not in r.stderr


def test_list_presets_includes_the_main_job(capsys):
    assert cli.main(["train", "--list-presets"]) == 0
    names = capsys.readouterr().out.split()
    assert "cpu-addition" in names


def test_a_project_error_is_one_line_and_status_2(monkeypatch, capsys):
    from grpo_lab.errors import GrpoLabError

    def fails(args):
        raise GrpoLabError("no model folder at 'x': pass a folder written by save_pretrained")

    monkeypatch.setattr(cli, "cmd_train", fails)
    assert cli.main(["train", "--preset", "cpu-addition"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["grpo-lab: error: no model folder at 'x': pass a folder written by save_pretrained"]


def test_an_unexpected_error_keeps_its_traceback():
    # A bug (here a KeyError raised inside a command) must not be dressed up as a one-line usage error:
    # the traceback says where it happened, and the status is Python's 1, not the CLI's 2.
    code = (
        "import sys; from grpo_lab import cli\n"
        "def broken(args):\n    return {}['missing_key']\n"
        "cli.cmd_train = broken\nsys.exit(cli.main(['train', '--preset', 'cpu-addition']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "in broken" in r.stderr and "KeyError: 'missing_key'" in r.stderr
    assert "grpo-lab: error:" not in r.stderr


@pytest.mark.parametrize("flag,env", [(["--debug"], None), ([], {"GRPO_LAB_DEBUG": "1"})])
def test_debug_shows_the_traceback_of_a_project_error(flag, env):
    r = run(*flag, "train", "--preset", "no-such-preset", "--dry-run", env_extra=env)
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "UnknownNameError: unknown preset 'no-such-preset'" in r.stderr


def test_train_maps_seed_and_compute_dtype_for_every_preset(monkeypatch):
    from grpo_lab import jobs

    seen = {}
    monkeypatch.setattr(jobs, "run_train", lambda *a, **kw: seen.update(kw, args=a))
    assert cli.main(["train", "--preset", "cpu-addition", "--compute-dtype", "bf16", "--seed", "3"]) == 0
    assert seen["compute_dtype"] == "bf16" and seen["seed"] == 3 and seen["args"][0] is None  # the preset's backend


def test_train_refuses_a_compute_dtype_the_device_cannot_run_in_one_line(monkeypatch, capsys):
    from grpo_lab.jobs import train
    from grpo_lab.models import build_tiny_model

    model, tok = build_tiny_model("nano")
    monkeypatch.setattr(train, "load_for_preset", lambda preset, name=None: (model.to("meta"), tok))
    assert (
        cli.main(["train", "--preset", "cpu-addition", "--compute-dtype", "bf16", "--out", "/tmp/unused-grpo-lab"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("grpo-lab: error: compute_dtype='bf16'")


def test_eval_uses_a_presets_task_and_reports_the_prompt_format(tmp_path):
    from grpo_lab.models import build_tiny_model

    model, tok = build_tiny_model("nano")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    r = run(
        "eval",
        "--model",
        str(tmp_path / "m"),
        "--task",
        "cpu-smollm2",
        "--n",
        "6",
        "--seed",
        "1",
        "--max-new-tokens",
        "4",
    )
    assert r.returncode == 0, r.stderr
    head, last = r.stdout.strip().splitlines()[-2:]
    assert (
        "arithmetic(max_terms=2, hi=12, heldout_buckets=4, negative=False)" in head
        and "prompt: plain" in head
        and "max_new_tokens: 4" in head
    )
    assert last.startswith("accuracy: ") and "/6 different held-out problems" in last


def test_set_reaches_the_preset_and_a_misspelt_key_is_one_line(monkeypatch, capsys):
    from grpo_lab import jobs

    seen = {}
    monkeypatch.setattr(jobs, "run_train", lambda *a, **kw: seen.update(kw, args=a))
    args = ["train", "--preset", "cpu-smollm2", "--set", "learning_rate=3e-5", "--set", "runtime.eval_k=2"]
    assert cli.main([*args, "--set", "loss_type=grpo"]) == 0
    preset = seen["args"][1]
    assert preset.grpo["learning_rate"] == 3e-5 and preset.grpo["loss_type"] == "grpo" and preset.runtime.eval_k == 2
    # A CPU preset checkpoints every fifth of its run by default, keeping the newest; --save-steps wins.
    assert (seen["save_steps"], seen["keep_checkpoints"]) == (6, 1)
    assert cli.main(["train", "--preset", "cpu-smollm2", "--save-steps", "3"]) == 0 and seen["save_steps"] == 3
    assert cli.main(["train", "--preset", "cpu-smollm2", "--set", "learning_rat=1"]) == 2
    assert "unknown GRPO setting(s) ['learning_rat']" in capsys.readouterr().err


def test_train_without_a_preset_chooses_one_for_the_machine(monkeypatch):
    from grpo_lab import jobs, presets

    seen = {}
    monkeypatch.setattr(jobs, "run_train", lambda *a, **kw: seen.update(kw, args=a))
    monkeypatch.setattr(presets, "choose_preset", lambda: "cpu-tiny-gsm8k")
    assert cli.main(["train", "--steps", "1"]) == 0 and seen["args"][1].name == "cpu-tiny-gsm8k"


def test_quieting_libraries_keeps_grpo_labs_own_warnings():
    code = (
        "import warnings; from grpo_lab import cli; cli._quiet_libraries()\n"
        "from grpo_lab.grpo import validate_grpo_config\n"
        "validate_grpo_config(importance_sampling_level='sequence', loss_type='dapo')\n"
        "warnings.warn_explicit('noise', DeprecationWarning, 'x.py', 1, module='transformers.foo')\n"
    )
    r = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "GSPO's setup is loss_type='grpo'" in r.stderr and "noise" not in r.stderr


def test_a_dry_run_for_a_model_with_no_architecture_on_file_is_one_line(monkeypatch, capsys):
    from grpo_lab import plan
    from grpo_lab.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="known"):
        plan.architecture("someone/unknown-model")
    assert cli.main(["train", "--preset", "cpu-addition", "--dry-run", "--set", "max_steps=2"]) == 0


def test_eval_loads_a_lora_runs_adapter_folder_and_takes_another_base(tmp_path, capsys):
    """A LoRA run's final/ holds only the adapter; `grpo-lab eval` loads it over the base the adapter names, or over
    ``--base`` (here the adapter names a hub model that this offline machine does not have)."""
    pytest.importorskip("peft")
    from grpo_lab.models import apply_lora, build_tiny_model

    model, tok = build_tiny_model("nano")
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    apply_lora(model, {"lora_r": 4, "lora_alpha": 8}).save_pretrained(tmp_path / "final")
    f = tmp_path / "final" / "adapter_config.json"
    f.write_text(json.dumps({**json.loads(f.read_text()), "base_model_name_or_path": "Qwen/Qwen2.5-0.5B"}))
    args = ["eval", "--model", str(tmp_path / "final"), "--task", "addition", "--n", "5"]
    assert cli.main([*args, "--base", str(tmp_path / "base")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("accuracy: ")
