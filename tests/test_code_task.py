"""The code task: every family's hidden tests pass its reference and catch its wrong implementation (through
the real sandbox), the split, the extraction and name rules, and the batch check."""

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from grpo_lab.sandbox import run_tests
from grpo_lab.tasks import CODE_SYSTEM, get_task
from grpo_lab.tasks.code import (
    TRAIN_FAMILIES,
    UNSEEN_FAMILIES,
    CodeTask,
    apply_name_rule,
    extract_program,
    random_problem,
)

DRAWS_PER_FAMILY = 3


def _family_problems():
    out = []
    for family in TRAIN_FAMILIES + UNSEEN_FAMILIES:
        rng = random.Random(f"test:{family.name}")
        out += [random_problem(family, rng) for _ in range(DRAWS_PER_FAMILY)]
    return out


def test_every_family_passes_its_reference_and_fails_its_wrong_implementation():
    problems = _family_problems()
    jobs = [(p.meta[which], p.meta["tests"]) for p in problems for which in ("reference", "wrong")]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: run_tests(job[0], job[1], timeout_s=10), jobs))
    for i, p in enumerate(problems):
        ref, wrong = results[2 * i], results[2 * i + 1]
        assert ref.passed, (p.meta["family"], p.prompt, p.meta["tests"], ref.reason)
        assert not wrong.passed, (p.meta["family"], p.prompt, p.meta["tests"])
        assert 4 <= p.meta["tests"].count("assert ") <= 6, p.meta["tests"]


def test_families_cover_three_levels_and_unseen_ones_are_apart():
    levels = [f.level for f in TRAIN_FAMILIES]
    assert {lv: levels.count(lv) for lv in (1, 2, 3)} == {1: 8, 2: 8, 3: 8}
    assert len(UNSEEN_FAMILIES) >= 6 and {f.level for f in UNSEEN_FAMILIES} <= {2, 3}
    assert all(f.unseen for f in UNSEEN_FAMILIES) and not any(f.unseen for f in TRAIN_FAMILIES)
    assert not {f.name for f in TRAIN_FAMILIES} & {f.name for f in UNSEEN_FAMILIES}
    unseen = {f.name for f in UNSEEN_FAMILIES}
    train = get_task("code", families="train")
    drawn = train.train(2000, seed=1) + train.heldout(300, seed=1)
    assert not any(p.meta["family"] in unseen or p.meta["unseen"] for p in drawn)
    only = get_task("code", families="unseen").train(200, seed=0)
    assert {p.meta["family"] for p in only} == unseen and all(p.meta["unseen"] for p in only)
    assert {p.meta["level"] for p in get_task("code", levels=(1,)).train(200)} == {1}


def test_split_is_disjoint_and_holds_out_enough_distinct_problems():
    t = get_task("code")
    held = t.heldout_distinct(400)
    assert len(held) >= 300
    train = {t.key(p) for p in t.train(3000, seed=0)}
    assert train and not (train & {t.key(p) for p in held})
    assert len(train) >= 1000


def test_problem_fields():
    t = CodeTask()
    assert t.system == CODE_SYSTEM and t.answer_tokens == 256
    assert t.describe() == "code(levels=1-2-3, families=train, heldout_buckets=1)" == CodeTask().describe()
    p = t.train(1, seed=3)[0]
    func = p.meta["func"]
    assert p.answer.startswith(f"def {func}(") and p.answer.endswith("):")  # the signature, not a gold label
    assert p.question.startswith(f"Write a Python function `{func}(") and p.answer in p.prompt
    assert p.meta["tests"].startswith(f"assert {func}(")
    assert [q.meta["tests"] for q in t.train(5, seed=3)] == [q.meta["tests"] for q in t.train(5, seed=3)]
    with pytest.raises(ValueError):
        CodeTask(families="everything")


def test_extraction_rule():
    assert extract_program("```python\na = 1\n```\n```python\na = 2\n```") == "a = 1\n"  # the first block wins
    assert extract_program("```py\nb = 1\n```") == "b = 1\n"
    assert extract_program("text\n```\nc = 1\n```") == "c = 1\n"
    assert extract_program("```python\ndef f(x):\n    return x") is None  # truncated: no closing fence
    assert extract_program("def f(x):\n    return x\n") is None and extract_program(None) is None
    assert extract_program("```js\nx = 1\n```\n```python\ny = 2\n```") == "y = 2\n"  # other languages skipped


def test_name_rule():
    one = "def g(x):\n    return x\n"
    assert apply_name_rule(one, "f").endswith("f = g\n")
    two = "def g(x):\n    return x\n\ndef h(x):\n    return x\n"
    assert apply_name_rule(two, "f") == two
    named = "def helper(x):\n    return x\n\ndef f(x):\n    return helper(x)\n"
    assert apply_name_rule(named, "f") == named and apply_name_rule(one, "g") == one
    assert apply_name_rule("def f(:\n", "g") == "def f(:\n"  # does not parse: unchanged, the sandbox says why


def _ref_body(p):
    return p.meta["reference"].split("\n", 1)[1]


def test_check_runs_hidden_tests_with_the_name_rule_and_check_many_agrees():
    t = CodeTask()
    p, q = t.train(2, seed=11)
    ref = f"```python\n{p.meta['reference']}```"
    renamed = f"Here:\n```py\ndef solution({p.answer.split('(', 1)[1]}\n{_ref_body(p)}```"
    two = f"```python\ndef helper():\n    pass\n\ndef solution({p.answer.split('(', 1)[1]}\n{_ref_body(p)}```"
    wrong = f"```python\n{p.meta['wrong']}```"
    exits = f"```python\n{p.meta['reference']}\nimport sys\n\nsys.exit(0)\n```"
    truncated = f"```python\n{p.meta['reference']}"
    batch = [(p, ref), (p, renamed), (p, two), (p, wrong), (p, exits), (p, truncated), (q, ref), (p, None)]
    expected = [True, True, False, False, False, False, False, False]
    assert [t.check(a, b) for a, b in batch] == expected
    problems, completions = zip(*batch)
    assert t.check_many(list(problems), list(completions)) == expected
    verdicts = t.verdicts(list(problems), list(completions))
    assert verdicts[5] is None and verdicts[7] is None and verdicts[4].status == "failed"


def test_extract_normalises_programs_for_voting():
    t = CodeTask()
    a = t.extract("```python\ndef f(x):\n    return x+1  # one\n```")
    assert a == t.extract("```py\ndef f(x):\n\n    return (x + 1)\n```") and a is not None
    assert t.extract("no code") is None and t.extract("```\ndef f(:\n```") == "def f(:"


def test_chat_rendering_uses_the_code_system_prompt():
    class ChatTok:
        chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"

        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
            return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    t = get_task("code", tokenizer=ChatTok())
    p = t.heldout(1)[0]
    assert p.prompt.startswith("<system>" + CODE_SYSTEM) and p.question in p.prompt
    assert t.key(p) == get_task("code").heldout(1)[0].prompt  # the same split as the plain task


def test_failure_kind_names_each_way_a_completion_can_fail():
    # One program per kind, scored by the real sandbox in one batch; the kinds are what notebook 06a counts.
    from grpo_lab.sandbox import CodeResult
    from grpo_lab.tasks.code import FAILURE_KINDS, failure_kind

    task = CodeTask(levels=(1,))
    problem = task.heldout(1)[0]
    func, args = problem.meta["func"], problem.answer.split("(", 1)[1].rstrip("):")
    fence = "```python\n{}\n```"
    completions = {
        "no program": "I would return the answer.",
        "syntax error": fence.format(f"def {func}({args})\n    return 0"),
        "runtime error": fence.format(f"def {func}({args}):\n    return 1 / 0"),
        "timeout": fence.format(f"def {func}({args}):\n    while True:\n        pass"),
        "forbidden": fence.format("import sys\nsys.exit(0)"),
        "wrong answer": fence.format(f"def {func}({args}):\n    return -12345"),
        "pass": fence.format(problem.meta["reference"]),
    }
    assert tuple(completions) == FAILURE_KINDS
    task.timeout_s = 2.0
    verdicts = task.verdicts([problem] * len(completions), list(completions.values()))
    assert [failure_kind(v) for v in verdicts] == list(completions)
    # A missing function is a NameError in the tests: a runtime error, not a wrong answer.
    two = fence.format("def helper(x):\n    return x\n\ndef other(x):\n    return x")
    assert failure_kind(task.verdicts([problem], [two])[0]) == "runtime error"
    with pytest.raises(ValueError, match="infra"):
        failure_kind(CodeResult(passed=False, status="infra", reason="overloaded"))
