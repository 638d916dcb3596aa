"""Answer extraction, equivalence and the TRL-style reward functions of ``grpo_lab.rewards``."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpo_lab.rewards import (
    answers_match,
    combine_rewards,
    completion_text,
    correctness_reward,
    extract_answer,
    format_reward_soft,
    format_reward_strict,
    is_correct,
    make_correctness_reward,
    make_overlong_penalty,
    overlong_penalty_value,
)
from grpo_lab.tasks import load_gsm8k, local_gsm8k_path

# --------------------------------------------------------------------------------------------------
# Labelled (completion, gold, expected) cases from real formats
# --------------------------------------------------------------------------------------------------

HAND_CASES = [
    # GSM8K-style "#### x"
    ("She has 3 + 4 = <<3+4=7>>7 apples.\n#### 7", "7", True),
    ("So 1,000 + 250 = 1,250.\n#### 1,250", "1250", True),
    ("#### 1250", "1,250", True),
    ("#### 72", "27", False),
    ("#### -5", "-5", True),
    ("#### -5", "5", False),
    ("#### 5.00", "5", True),
    ("#### $18", "18", True),
    ("####  18  ", "18", True),
    ("First #### 3 then\n#### 4", "4", True),
    ("First #### 3 then\n#### 4", "3", False),
    # \boxed
    (r"So the answer is $\boxed{42}$.", "42", True),
    (r"\boxed{\frac{3}{4}}", "0.75", True),
    (r"\boxed{\dfrac{3}{4}}", "3/4", True),
    (r"\boxed{\tfrac{1}{2}}", "0.5", True),
    (r"\boxed{\frac{1}{3}}", "0.33", False),
    (r"first \boxed{1} then \boxed{2}", "2", True),
    (r"first \boxed{1} then \boxed{2}", "1", False),
    (r"\boxed{\sqrt{4}}", "2", True),
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}", True),
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}", True),
    (r"\boxed{1{,}000}", "1000", True),
    (r"\boxed{\text{12 cm}}", "12", True),
    (r"\boxed{\$5}", "5", True),
    (r"\boxed{50\%}", "50", True),
    (r"The result \boxed{x = 5}", "5", True),
    (r"\boxed{-\frac{1}{2}}", "-0.5", True),
    (r"\boxed{\frac{1}{2}} but truncated \boxed{\frac{1}{", "0.5", True),
    (r"\boxed 7", "7", True),
    (r"\boxed{\pi}", r"\pi", True),
    (r"\boxed{2\pi}", r"\pi", False),
    # answer phrases
    ("The answer is 42.", "42", True),
    ("The answer is 42.", "24", False),
    ("The final answer is 3.5. Hope that helps.", "3.5", True),
    ("the answer is $1,000,000", "1000000", True),
    ("Answer: 18 apples", "18", True),
    ("**Answer:** 18", "18", True),
    ("Final Answer: 0.5", "1/2", True),
    ("Q: what is 2+2?\nA: 4", "4", True),
    ("Answer:\n\n 12", "12", True),
    ("The answer is 42 or 43.", "42", False),
    ("The answer is between 40 and 45", "42", False),
    ("The answer is 5 ± 1", "5", False),
    ("The answer is either 3 or 4", "3", False),
    # last number
    ("I think it is 12 dollars", "12", True),
    ("It costs 10-3 dollars", "3", True),
    ("so she walks -7 km", "-7", True),
    ("3 apples and 4 pears make 7", "7", True),
    ("3 apples and 4 pears make 7", "3", False),
    ("The ratio is 3/4", "0.75", True),
    ("It is .5 of the cake", "0.5", True),
    ("no digits here", "0", False),
    ("", "0", False),
    # tricky numerics
    ("#### 1000.0", "1000", True),
    ("#### 1,000", "1000.0", True),
    ("#### 10", "10.5", False),
    ("#### 0.1", "1/10", True),
    ("#### 33.33", "100/3", False),
    ("#### 007", "7", True),
    ("#### 1e3", "1000", True),
    ("#### 2.50", "2.5", True),
    ("#### 1.5 million", "1500000", True),
    ("#### 3 thousand", "3000", True),
    ("#### 5 hours.", "5", True),
    ("#### 5,00", "500", False),
    ("#### 12%", "12", True),
    ("#### twelve", "12", False),
    ("#### −4", "-4", True),
    ("#### 1 000", "1000", True),  # SI thin-space thousands
    ("#### 1e-3", "0.001", True),
]

CHAT_CASES = [
    ([{"role": "assistant", "content": "Let me think.\n#### 9"}], "9", True),
    ([{"role": "assistant", "content": "Let me think.\n#### 9"}], "8", False),
    ([{"role": "assistant", "content": [{"type": "text", "text": r"So \boxed{6}"}]}], "6", True),
    ([{"role": "tool", "content": "#### 1"}, {"role": "assistant", "content": "#### 2"}], "2", True),
    ({"role": "assistant", "content": "The answer is 11"}, "11", True),
]


def _gsm8k_cases() -> list[tuple[str, str, bool]]:
    """Each real GSM8K solution gives a right case, a wrong final number, and a comma/units variant."""
    if local_gsm8k_path() is None:
        pytest.skip("no local GSM8K copy (grpo_lab/data/gsm8k/train.jsonl.xz)")
    cases = []
    for row in load_gsm8k(limit=40):
        sol, gold = row["solution"], row["answer"]
        body = sol.rsplit("####", 1)[0]
        wrong = str(int(float(gold)) + 1)
        cases.append((sol, gold, True))
        cases.append((body + "#### " + wrong, gold, False))
        cases.append((body + f"The answer is {int(float(gold)):,} dollars.", gold, True))
    return cases


ALL_CASES = HAND_CASES + [(c, g, e) for c, g, e in CHAT_CASES if isinstance(c, str)]


def test_at_least_150_labelled_cases_pass():
    cases = HAND_CASES + _gsm8k_cases()
    assert len(cases) + len(CHAT_CASES) >= 150
    wrong = [(c[-60:], g, e) for c, g, e in cases if is_correct(c, g) != e]
    assert not wrong, f"{len(wrong)} mislabelled: {wrong[:5]}"
    # both labels are represented, so a constant verifier cannot pass this test
    assert sum(e for *_, e in cases) > 40 and sum(not e for *_, e in cases) > 40


@pytest.mark.parametrize("completion,gold,expected", CHAT_CASES)
def test_chat_completions_through_the_reward(completion, gold, expected):
    assert correctness_reward(prompts=[None], completions=[completion], answer=[gold]) == [float(expected)]


@pytest.mark.parametrize(
    "text,expected",
    [
        (r"\boxed{\frac{a}{b}}", r"\frac{a}{b}"),
        (r"\boxed{ {1,2} }", "{1,2}"),
        ("a\n#### 5\nmore", "5"),
        ("The answer is 3.5. Next", "3.5"),
        ("It costs 10-3 dollars", "3"),
        ("So -7", "-7"),
        ("####\nThe answer is 4", "4"),
        (r"unterminated \boxed{5", "5"),
        ("nothing", None),
        (None, None),
        (42, None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "pred,gold,expected",
    [
        ("1,000", "1000", True),
        ("1000", "1000.0", True),
        ("$5", "5", True),
        (r"\$5", "5", True),
        ("50%", "50", True),
        ("3/4", "0.75", True),
        (r"\frac{3}{4}", "0.75", True),
        (r"\dfrac{3}{4}", "3/4", True),
        ("-3", "-3.0", True),
        ("-3", "3", False),
        ("12 apples", "12", True),
        ("42.", "42", True),
        ("42 or 43", "42", False),
        ("42 or 43", "42 or 43", True),
        (None, "42", False),
        ("", "", False),
        ("5", 5, True),
        ("x", "y", False),
        ("Yes", "yes", True),
    ],
)
def test_answers_match_cases(pred, gold, expected):
    assert answers_match(pred, gold) is expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80), st.text(max_size=20))
def test_fuzz_never_raises(text, gold):
    extract_answer(text)
    assert isinstance(answers_match(text, gold), bool)
    assert isinstance(is_correct(text, gold), bool)


MATHY = st.text(alphabet=list("0123456789.,-+*/^{}()\\$% xfracbotedsq"), max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MATHY, MATHY)
def test_fuzz_mathy_strings_never_raise(a, b):
    assert isinstance(is_correct(r"\boxed{" + a + "}", b), bool)


def test_pathological_input_is_rejected_without_hanging_in_main_and_worker_threads():
    bad = [r"\boxed{2^{2^{2^{100}}}}", "9" * 5000, r"\frac{" * 300, "2^2^2^2^100", "(" * 1000 + "1" + ")" * 1000]
    for b in bad:
        assert is_correct(b, "5") is False
    results = []
    th = threading.Thread(target=lambda: results.extend(is_correct(b, "5") for b in bad))
    th.start()
    th.join()  # pytest-timeout stops a hang; no speed requirement here
    assert results == [False] * len(bad)


def test_a_time_budget_rejects_a_slow_symbolic_check_in_a_worker_thread(monkeypatch):
    """The budget is enforced off the main thread: a math-verify call that never ends is cut short."""
    from grpo_lab.rewards import equivalence

    def step():
        return None

    def endless(pred, gold):
        while True:
            step()  # a Python call per iteration, like sympy: what the call-tracing clock checks on

    monkeypatch.setattr(equivalence, "_symbolic_match", endless)
    equivalence._match_cached.cache_clear()
    out = []
    th = threading.Thread(target=lambda: out.append(answers_match(r"\sqrt{7}", r"\pi", timeout_s=0.2)))
    th.start()
    th.join()
    assert out == [False]


def test_answers_match_in_a_worker_thread_uses_math_verify():
    # \sqrt{4} vs 2 is beyond the numeric fast path: math-verify must work outside the main thread.
    out = []
    pairs = [(r"\sqrt{4}", "2", True), (r"\frac{\pi}{2}", r"\pi/2", True), (r"\sqrt{5}", "2", False)]
    # A generous budget: three threads share one GIL on a busy 2-core machine; the time bound itself is
    # tested with pathological inputs above. What this test checks is that math-verify runs off the main thread.
    ths = [
        threading.Thread(target=lambda p=p: out.append((p, answers_match(p[0], p[1], timeout_s=60)))) for p in pairs
    ]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert sorted((p[2], r) for p, r in out) == sorted((p[2], p[2]) for p in pairs)


def test_an_outer_alarm_still_fires_and_is_not_swallowed():
    """The exercise grader times tests with ITIMER_REAL; answers_match must not cancel or eat that timer."""

    class Outer(Exception):
        pass

    def handler(signum, frame):
        raise Outer()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(Outer):
            answers_match(r"\sqrt{4}", "2")  # uses the symbolic path (its own timer)
            time.sleep(2)  # the outer timer must still be armed here
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------------------------------
# Reward functions
# --------------------------------------------------------------------------------------------------


def test_reward_functions_have_names_and_never_raise_on_malformed_completions():
    completions = ["#### 3", None, 17, [{"role": "assistant", "content": None}], [1, 2], {"content": 5}, "\\boxed{3"]
    for f in (correctness_reward, format_reward_strict, format_reward_soft, make_overlong_penalty(10, 5)):
        out = f(prompts=[None] * len(completions), completions=completions, answer=["3"] * len(completions))
        assert len(out) == len(completions) and all(isinstance(x, float) for x in out)
        assert len(f.last_reasons) == len(completions)
        assert isinstance(f.__name__, str) and f.__name__
    assert correctness_reward.last_reasons[1].startswith("malformed")
    assert correctness_reward(None, ["#### 3", None], answer=["3", "3"]) == [1.0, 0.0]


def test_correctness_reward_reads_the_column_and_a_whole_gsm8k_solution():
    comps = ["so\n#### 72", "so\n#### 71", "no idea"]
    assert correctness_reward(None, comps, answer=["72", "72", "72"]) == [1.0, 0.0, 0.0]
    assert "no answer" in correctness_reward.last_reasons[2]
    f = make_correctness_reward("solution")
    assert f.__name__ == "correctness_solution"
    assert f(None, comps[:2], solution=["48/2 = 24\n#### 72"] * 2) == [1.0, 0.0]
    with pytest.raises(KeyError, match="solution"):
        f(None, comps, answer=["72"] * 3)


@pytest.mark.parametrize(
    "text,strict,soft",
    [
        ("3 + 4 = 7 apples.\n#### 7", 1.0, 1.0),
        ("#### 7", 0.0, 1.0),  # no reasoning
        ("3 + 4 = 7.\n#### 7\nHope this helps!", 0.0, 1.0),  # text after the answer
        ("3 + 4 = 7.\n#### 7\n#### 8", 0.0, 1.0),  # two answers
        ("3 + 4 = 7, so the answer is $\\boxed{7}$.", 1.0, 1.0),
        ("The answer is 7", 0.0, 0.5),
        ("7", 0.0, 0.0),
        ("reasoning\n#### seven", 0.0, 1.0),
        ("", 0.0, 0.0),
    ],
)
def test_format_rewards(text, strict, soft):
    assert format_reward_strict(None, [text]) == [strict], format_reward_strict.last_reasons
    assert format_reward_soft(None, [text]) == [soft]


def test_overlong_penalty_matches_dapo_eq13():
    L, C = 100, 20
    assert overlong_penalty_value(80, L, C) == 0.0
    assert overlong_penalty_value(90, L, C) == pytest.approx(-0.5)
    assert overlong_penalty_value(100, L, C) == pytest.approx(-1.0)
    assert overlong_penalty_value(101, L, C) == -1.0
    # monotone non-increasing in length, bounded in [-1, 0]
    vals = [overlong_penalty_value(n, L, C) for n in range(0, 130)]
    assert all(a >= b for a, b in zip(vals, vals[1:])) and min(vals) == -1 and max(vals) == 0
    f = make_overlong_penalty(L, C)
    ids = [[0] * 50, [0] * 95, [0] * 120]
    assert f(None, ["a", "b", "c"], completion_ids=ids) == pytest.approx([0.0, -0.75, -1.0])
    assert f(None, ["x" * 90]) == pytest.approx([-0.5])  # characters without ids or tokenizer
    with pytest.raises(ValueError):
        make_overlong_penalty(10, 20)


def test_combine_rewards_weights_and_reasons():
    combo = combine_rewards([correctness_reward, format_reward_strict], [1.0, 0.25])
    assert combo.__name__ == "1*correctness+0.25*format_strict"
    out = combo(None, ["3 + 4 = 7\n#### 7", "#### 7", "3 + 4 = 8\n#### 8"], answer=["7"] * 3)
    assert out == pytest.approx([1.25, 1.0, 0.25])
    assert "format_strict=0" in combo.last_reasons[1] and "correctness=1" in combo.last_reasons[1]
    with pytest.raises(ValueError):
        combine_rewards([correctness_reward], [1.0, 2.0])


def test_completion_text_shapes():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]) == "a\nb"
    assert completion_text(None) is None and completion_text([3]) is None
    assert completion_text([]) is None  # an empty message list is malformed, not an empty answer
    assert completion_text([{"role": "user", "content": "q"}]) == ""  # no assistant turn: empty text
    assert completion_text([{"role": "assistant", "content": 5}]) is None


def test_reward_functions_work_with_trl_grpo_trainer_signature():
    """TRL 1.16 calls reward_func(prompts=..., completions=..., completion_ids=..., **columns, trainer_state=...)."""
    kwargs = dict(
        prompts=["p"] * 2,
        completions=["r\n#### 1", "r\n#### 2"],
        completion_ids=[[1, 2], [3]],
        answer=["1", "1"],
        trainer_state=object(),
        log_extra=None,
        log_metric=None,
    )
    for f in (correctness_reward, format_reward_strict, format_reward_soft, make_overlong_penalty(4, 2)):
        assert len(f(**kwargs)) == 2


# --------------------------------------------------------------------------------------------------
# The code reward scores a batch through sandbox.run_many (a fake one here; tests/test_sandbox.py runs it)
# --------------------------------------------------------------------------------------------------


def test_code_reward_scores_the_batch_with_one_run_many_call(monkeypatch):
    import grpo_lab.rewards.functions as functions
    from grpo_lab.rewards import make_code_reward
    from grpo_lab.sandbox import CodeResult

    calls = []

    def fake_run_many(jobs, timeout_s=5.0, **kw):
        calls.append((list(jobs), timeout_s))
        return [
            CodeResult(True, "passed", reason="1 asserts held", isolation="fake")
            if "a + b" in code
            else CodeResult(False, "failed", reason="assert failed", isolation="fake")
            for code, _ in jobs
        ]

    monkeypatch.setattr(functions, "run_many", fake_run_many)
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    bad = "```python\ndef add(a, b):\n    return 0\n```"
    f = make_code_reward("tests", timeout_s=7.0)
    out = f(
        None, [good, "no code", None, bad, good], tests=["assert add(1, 2) == 3"] * 4 + [["assert add(1, 1) == 2"]]
    )
    assert out == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert len(calls) == 1 and calls[0][1] == 7.0 and len(calls[0][0]) == 3  # the code-less and malformed skipped
    assert calls[0][0][2][1] == "assert add(1, 1) == 2"  # a list column is joined into one test program
    assert f.last_reasons[0] == "passed [fake]: 1 asserts held" and f.last_reasons[3] == "failed [fake]: assert failed"
    assert "no ```python block" in f.last_reasons[1] and f.last_reasons[2].startswith("malformed")
    assert f(None, ["no code"], tests=["assert True"]) == [0.0] and len(calls) == 1  # nothing to run, no call


def test_code_reward_raises_what_the_sandbox_could_not_score(monkeypatch):
    import grpo_lab.rewards.functions as functions
    from grpo_lab.errors import SandboxInfrastructureError
    from grpo_lab.rewards import make_code_reward

    def overloaded(jobs, timeout_s=5.0, **kw):
        raise SandboxInfrastructureError("could not score 1 of 1 programs")

    monkeypatch.setattr(functions, "run_many", overloaded)
    f = make_code_reward()
    with pytest.raises(SandboxInfrastructureError):
        f(None, ["```python\nx = 1\n```"], tests=["assert x == 1"])
    with pytest.raises(KeyError):
        f(None, ["```python\nx = 1\n```"], other=["assert x == 1"])
