"""Countdown steps, the exact solver, format-only data and the sealed (label-free) verifier."""

from __future__ import annotations

import random

import pytest

from grpo_lab.distill import verified_dataset, voted_dataset
from grpo_lab.tasks import AdditionTask, CountdownTask
from grpo_lab.tasks.countdown import (
    check_steps,
    format_examples,
    parse_steps,
    random_steps,
    solve,
    steps_to_expression,
    steps_value,
)
from grpo_lab.tasks.label_free import GoldLabelRead, LabelFreeVerifier, Sealed, seal

TASK = CountdownTask(n_numbers=3, hi=20, min_numbers=2, ops="+-")


def test_parse_steps_reads_steps_and_refuses_anything_else():
    assert parse_steps("3*5=15,15+7=22") == [(3, "*", 5, 15), (15, "+", 7, 22)]
    assert parse_steps(" 3 * 5 = 15 ") == [(3, "*", 5, 15)]
    for bad in ("", "3*5", "3*5=15;15+7=22", "3**5=15", "a+b=c", "-3+5=2", ",".join(["1+1=2"] * 7), "1+1=2" * 40):
        with pytest.raises(ValueError):
            parse_steps(bad)


@pytest.mark.parametrize(
    "text,value",
    [
        ("3*5=15,15+7=22", 22),
        ("7-3=4", 4),
        ("3-7=4", None),  # no negative intermediate: "-" takes the larger first
        ("3*5=16", None),  # wrong arithmetic
        ("3*3=9", None),  # 3 is given once
        ("3*5=15,15+15=30", None),  # 15 was made once
        ("7/3=2", None),  # division must be exact
        ("3*5=15,15/5=3", None),  # 5 already used
    ],
)
def test_steps_value_enforces_the_rules(text, value):
    assert steps_value([3, 5, 7], text) == value


def test_ops_restrict_what_an_answer_may_use():
    assert check_steps([3, 5, 7], 22, "3*5=15,15+7=22")
    assert not check_steps([3, 5, 7], 22, "3*5=15,15+7=22", ops="+-")
    assert all(op not in p.meta["solution"] for p in TASK.train(100, seed=0) for op in "*/")


def test_min_numbers_mixes_sizes_and_bad_settings_are_refused():
    sizes = {len(p.meta["numbers"]) for p in TASK.train(200, seed=1)}
    assert sizes == {2, 3}
    with pytest.raises(ValueError, match="min_numbers"):
        CountdownTask(n_numbers=3, min_numbers=4)
    with pytest.raises(ValueError, match="ops"):
        CountdownTask(ops="/")
    assert "min_numbers=2" in TASK.describe() and "ops=+-" in TASK.describe()
    assert CountdownTask().describe() == "countdown(n_numbers=3, hi=20)"


def test_solver_solves_every_problem_and_its_steps_verify_as_steps_and_as_an_expression():
    task = CountdownTask(n_numbers=3, hi=10)  # all four operators
    for p in task.train(300, seed=2):
        steps, tried = solve(p.meta["numbers"], p.meta["target"])
        assert steps is not None and tried > 0
        assert task.check(p, steps)
        expr = steps_to_expression(steps)
        assert task.check(p, expr), (p.prompt, steps, expr)


def test_steps_to_expression_keeps_precedence():
    assert steps_to_expression("3+5=8,8*7=56") == "(3+5)*7"
    assert steps_to_expression("9-5=4,7-4=3") == "7-(9-5)"
    assert steps_to_expression("3*5=15,15+7=22") == "3*5+7"
    assert steps_to_expression("not steps") is None


def test_random_steps_are_always_valid_and_format_data_does_not_aim():
    rng = random.Random(0)
    problems = TASK.train(500, seed=3)
    for p in problems:
        assert steps_value(p.meta["numbers"], random_steps(p.meta["numbers"], rng, ops="+-"), "+-") is not None
    rows = format_examples(problems, rng, ops="+-")
    hits = 0
    for p, (prompt, completion) in zip(problems, rows):
        nums, target = prompt[:-1].split("->")
        assert [int(x) for x in nums.split()] == sorted(p.meta["numbers"])
        hits += check_steps(p.meta["numbers"], int(target), completion, "+-")
    assert hits / len(rows) < 0.25  # chance level: the completion never looked at the target


def test_sealed_fields_refuse_every_use():
    s = Sealed("answer")
    for use in (
        lambda: s == "1",
        lambda: str(s),
        lambda: int(s),
        lambda: hash(s),
        lambda: len(s),
        lambda: s.strip(),
        lambda: "1" == s,
        lambda: f"{s}",
    ):
        with pytest.raises(GoldLabelRead, match="answer"):
            use()
    assert "sealed" in repr(s)


def test_the_label_free_verifier_checks_countdown_without_the_solution():
    v = LabelFreeVerifier(TASK)
    p = TASK.train(1, seed=4)[0]
    right = solve(p.meta["numbers"], p.meta["target"], "+-")[0]
    assert v(p, right) and not v(p, "1+1=2") and v.calls == 2
    sealed = seal(p, TASK.statement_fields)
    with pytest.raises(GoldLabelRead):
        str(sealed.meta["solution"])
    with pytest.raises(GoldLabelRead):
        sealed.answer.strip()


def test_a_verifier_that_peeks_at_a_gold_field_is_caught():
    class Peeking(CountdownTask):
        def check(self, problem, answer):
            return answer == problem.meta["solution"] or super().check(problem, answer)

    with pytest.raises(GoldLabelRead, match="solution"):
        LabelFreeVerifier(Peeking())(TASK.train(1)[0], "1+1=2")
    with pytest.raises(GoldLabelRead, match="statement_fields"):
        LabelFreeVerifier(AdditionTask())  # its check compares with the gold sum


def test_the_reward_of_a_label_free_verifier_scores_completions():
    v = LabelFreeVerifier(TASK)
    p = TASK.train(1, seed=5)[0]
    right = solve(p.meta["numbers"], p.meta["target"], "+-")[0]
    assert v.reward()(["x", "x"], [f" {right}\n", "1+1=2"], problem=[p, p]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="problem"):
        v.reward()(["x"], ["1+1=2"])


def test_verified_dataset_keeps_the_most_frequent_verified_answer_and_counts_calls():
    p = TASK.train(1, seed=6)[0]
    right = solve(p.meta["numbers"], p.meta["target"], "+-")[0]
    q = TASK.train(2, seed=7)[1]
    v = LabelFreeVerifier(TASK)
    ex, stats = verified_dataset([p, q], [["1+1=2", right, "1+1=2", right, right], ["1+1=2", "bad"]], v)
    assert [e.completion for e in ex] == [right] and ex[0].agreement == pytest.approx(3 / 5)
    assert stats == {"problems": 2, "kept": 1, "samples": 7, "verifier_calls": 4, "accepted_samples": 3}
    assert v.calls == 4


def test_voted_dataset_judges_labels_without_gold_when_given_a_judge():
    p = TASK.train(1, seed=8)[0]
    right = solve(p.meta["numbers"], p.meta["target"], "+-")[0]
    sealed = seal(p, TASK.statement_fields)
    _, stats = voted_dataset([sealed], [[right, right, "1+1=2"]], judge=LabelFreeVerifier(TASK))
    assert stats["label_accuracy"] == 1.0
    with pytest.raises(GoldLabelRead):  # the default judge compares with the gold answer
        voted_dataset([sealed], [[right]])


def test_format_warm_start_learns_the_format_without_any_solution():
    from grpo_lab.evaluation import evaluate
    from grpo_lab.jobs.teachers import format_warm_start

    with pytest.raises(ValueError, match="countdown"):
        format_warm_start(AdditionTask(), "nano", steps=1)
    task = CountdownTask(n_numbers=2, hi=9, ops="+-")
    problems = task.heldout_distinct(40, seed=0)

    def valid_share(model, tok):
        res = evaluate(model, tok, task, problems, max_new_tokens=12)
        return sum(
            steps_value(p.meta["numbers"], c.strip(), "+-") is not None for p, c in zip(problems, res.completions)
        ) / len(problems)

    from grpo_lab.models import build_tiny_model

    before = valid_share(*build_tiny_model("micro", seed=0))
    model, tok, info = format_warm_start(task, "micro", steps=200, progress=False)
    after = valid_share(model, tok)
    assert info["stage"] == "format-warm-start" and info["steps"] == 200
    assert before < 0.1 and after > 0.5, (before, after)


def test_exact_vote_is_a_plurality_of_texts():
    p = TASK.train(1, seed=9)[0]
    sealed = seal(p, TASK.statement_fields)
    ex, stats = voted_dataset([sealed], [["1+2=3", "2+1=3", "2+1=3", None]], exact=True, judge=lambda q, t: False)
    assert ex[0].completion == "2+1=3" and ex[0].agreement == 0.5 and stats["label_accuracy"] == 0.0
