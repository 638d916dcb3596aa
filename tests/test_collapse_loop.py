"""The model-collapse loop of notebook 09 (``jobs.collapse``): each cause (the checker, real data, accumulating
data) can be switched on alone, and each does what it says to the next generation's training data."""

from __future__ import annotations

import pytest

from grpo_lab.jobs.collapse import _next_generation_data, lm_collapse
from grpo_lab.models import build_tiny_model
from grpo_lab.tasks import AdditionTask

TASK = AdditionTask()


def _samples():
    owners = TASK.train(4, seed=0)
    answers = [p.answer for p in owners[:2]] + ["1", ""]  # two right, one wrong, one empty
    return owners, answers, [TASK.check(p, a) for p, a in zip(owners, answers)]


def test_verify_keeps_only_what_the_checker_accepts_and_real_data_is_its_share():
    owners, answers, correct = _samples()
    assert correct == [True, True, False, False]
    careless = _next_generation_data(TASK, owners, answers, correct, verify=False, real_fraction=0.0, real_seed=1)
    assert [e.completion for e in careless] == answers[:3]  # the empty sample is never a training target
    checked = _next_generation_data(TASK, owners, answers, correct, verify=True, real_fraction=0.0, real_seed=1)
    assert [e.completion for e in checked] == answers[:2]
    mixed = _next_generation_data(TASK, owners, answers, correct, verify=False, real_fraction=0.5, real_seed=1)
    real = mixed[3:]
    assert len(real) == 3 and all(
        TASK.check(TASK.make(*map(int, e.prompt[:-1].split("+"))), e.completion) for e in real
    )


def test_accumulate_trains_each_generation_on_everything_so_far():
    model, tok = build_tiny_model("nano", seed=0)
    kw = dict(
        generations=2,
        n_prompts=6,
        samples_per_prompt=2,
        steps_per_generation=1,
        batch_size=4,
        eval_problems=TASK.heldout(4, seed=0),
        progress=False,
        verify=False,
        real_fraction=0.0,
    )
    replace = lm_collapse(model, tok, TASK, mode="replace", **kw)
    accumulate = lm_collapse(model, tok, TASK, mode="accumulate", accumulate=True, **kw)
    fresh = [g.kept for g in replace.generations]
    assert [g.kept for g in accumulate.generations][0] == fresh[0]
    assert [g.kept for g in accumulate.generations][-1] > max(fresh)  # the pool grows; replace's does not


def test_a_mode_without_its_settings_is_refused():
    model, tok = build_tiny_model("nano", seed=0)
    with pytest.raises(ValueError, match="verify= and real_fraction="):
        lm_collapse(model, tok, TASK, mode="mine", generations=0, progress=False)
