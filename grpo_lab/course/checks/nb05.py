"""Notebook 05: a correctness reward function that TRL 1.16's ``GRPOTrainer`` can call.

The student writes ``fn(prompts, completions, answer, **kwargs) -> list[float | None]``:

- TRL calls it by keyword with one value per completion for every dataset column except ``prompt``
  (here ``answer``), plus extras (``completion_ids``, ``trainer_state``, ``log_extra``, ...): it must
  accept ``**kwargs``.
- a completion is a string for a plain dataset, or ``[{"role": "assistant", "content": text}]`` for a chat
  dataset: use the content of the last message;
- 1.0 when the stripped completion equals the stripped gold answer, else 0.0;
- ``None`` when the gold answer is ``None`` ("not applicable": TRL ignores it when combining rewards).

The last check runs the function inside a real ``trl.GRPOTrainer`` for one step (``grpo_lab.trl_backend``).
"""

from __future__ import annotations

import random

from grpo_lab.course.registry import exercise_test
from grpo_lab.tasks import get_task

ID = "05-trl-reward"


def _call(fn, completions, answer, prompts=None, **extra):
    prompts = prompts or ["1+1="] * len(completions)
    out = fn(prompts=prompts, completions=completions, answer=answer, **extra)
    assert isinstance(out, (list, tuple)), f"return a list (one reward per completion), got {type(out).__name__}"
    out = list(out)
    assert len(out) == len(completions), f"{len(completions)} completions but {len(out)} rewards"
    for x in out:
        assert x is None or isinstance(x, float), f"rewards must be floats (or None), got {x!r} ({type(x).__name__})"
    return out


@exercise_test(
    ID,
    title="A reward function for TRL",
    forbid=("grpo_lab.trl_backend.trl_reward", "grpo_lab.rewards.correctness_reward", "grpo_lab.trainer.task_reward"),
    hint="TRL passes everything by keyword: def fn(prompts, completions, answer, **kwargs).",
)
def test_signature_is_what_trl_calls(fn):
    from grpo_lab.trainer import check_reward_signature

    check_reward_signature(fn)


@exercise_test(ID, hint="Compare completion.strip() with answer.strip(); return 1.0 or 0.0 (floats, not bools).")
def test_plain_completions(fn):
    got = _call(fn, ["47", " 47", "47\n", "46", "4", "", "470"], ["47"] * 7)
    assert got == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0], f"expected [1, 1, 1, 0, 0, 0, 0], got {got}"


@exercise_test(
    ID, hint="Every dataset column (and trainer_state, completion_ids, log_extra, ...) arrives as a keyword."
)
def test_extra_columns_are_ignored(fn):
    extra = dict(
        question=["What is 1 + 1?"] * 2,
        meta=["{}"] * 2,
        completion_ids=[[5], [6]],
        trainer_state=None,
        log_extra=lambda *a, **k: None,
        log_metric=lambda *a, **k: None,
    )
    got = _call(fn, ["2", "3"], ["2", "2"], **extra)
    assert got == [1.0, 0.0], f"expected [1.0, 0.0], got {got}"


@exercise_test(
    ID, hint='Chat datasets give each completion as [{"role": "assistant", "content": text}]: score the text.'
)
def test_chat_completions(fn):
    comps = [[{"role": "assistant", "content": "12"}], [{"role": "assistant", "content": " 21 "}]]
    got = _call(fn, comps, ["12", "12"], prompts=[[{"role": "user", "content": "7+5="}]] * 2)
    assert got == [1.0, 0.0], f"expected [1.0, 0.0], got {got}"


@exercise_test(ID, hint="answer None means 'not applicable': return None for that completion, not 0.0.")
def test_none_means_not_applicable(fn):
    got = _call(fn, ["5", "5", "6"], ["5", None, "5"])
    assert got == [1.0, None, 0.0], f"expected [1.0, None, 0.0], got {got}"


@exercise_test(ID, hint="Your reward must agree with the task's checker on addition problems.")
def test_agrees_with_the_task_checker(fn):
    task = get_task("addition")
    probs = task.train(200, seed=7)
    rng = random.Random(0)
    comps = [p.answer if rng.random() < 0.5 else str(int(p.answer) + rng.choice([-10, -1, 1, 10])) for p in probs]
    got = _call(fn, comps, [p.answer for p in probs], prompts=[p.prompt for p in probs])
    want = [float(task.check(p, c.strip())) for p, c in zip(probs, comps)]
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not bad, f"{len(bad)} disagreements, e.g. {probs[bad[0]].prompt}{comps[bad[0]]}: got {got[bad[0]]}"


@exercise_test(ID, hint="It must run inside trl.GRPOTrainer: one step on a tiny model.", time_limit_s=120)
def test_runs_inside_trl(fn):
    import tempfile
    from pathlib import Path

    from grpo_lab.models import build_tiny_model
    from grpo_lab.presets import get_preset
    from grpo_lab.trl_backend import train_with_trl

    p = get_preset("cpu-addition")
    p.grpo.update(max_steps=1, per_device_train_batch_size=8, num_generations=4, eval_steps=0)
    model, tok = build_tiny_model("nano", seed=0)
    with tempfile.TemporaryDirectory() as d:
        summary, history = train_with_trl(model, tok, p, Path(d), progress=False, reward_funcs=[fn])
    assert summary["steps"] == 1 and "reward" in history[0], "TRL did not complete a step with this reward"
