"""Notebook 01 exercises: extract a final answer, decide equivalence, write a reward function for TRL."""

from grpo_lab.course.checks.expect import expect
from grpo_lab.course.registry import exercise_test
from grpo_lab.rewards import answers_match, correctness_reward, extract_answer

EXTRACT = "01-extract-answer"
MATCH = "01-answers-match"
REWARD = "01-reward-function"

# --------------------------------------------------------------------------------------------------
# 01-extract-answer: fn(text) -> str | None
# --------------------------------------------------------------------------------------------------


@exercise_test(
    EXTRACT,
    title="Extract the final answer",
    forbid=("grpo_lab.rewards.extract_answer",),
    hint="Look for '####' and take the rest of that line, stripped.",
)
def test_gsm8k_hashes(fn):
    expect(fn, ("48/2 = <<48/2=24>>24 clips in May.\n#### 72",), "72")
    expect(fn, ("#### 3\nOn second thought:\n#### 4",), "4", "with two '####' lines the last one counts")


@exercise_test(EXTRACT, hint="Find the last '\\boxed{' and walk forward counting '{' and '}' until they balance.")
def test_boxed_with_nested_braces(fn):
    expect(fn, (r"So the answer is $\boxed{\frac{3}{4}}$.",), r"\frac{3}{4}")
    expect(fn, (r"First \boxed{1}, finally \boxed{2}",), "2", "the last \\boxed counts")


@exercise_test(EXTRACT, hint="\\boxed comes first in the search order, even when a '####' line exists.")
def test_order_boxed_before_hashes(fn):
    expect(fn, ("#### 5\nActually \\boxed{6}",), "6", note=" (\\boxed wins)")


@exercise_test(
    EXTRACT, hint="'The answer is x' / 'Answer: x': take x up to the end of its sentence (a '.' then space or end)."
)
def test_answer_phrases(fn):
    for text, want in [("The answer is 42.", "42"), ("Answer: 18", "18"), ("so the answer is 3.5. Done!", "3.5")]:
        expect(fn, (text,), want, repr(text))


@exercise_test(
    EXTRACT, hint="No marker at all: fall back to the last number in the text; no number at all: return None."
)
def test_last_number_and_none(fn):
    expect(fn, ("3 apples and 4 pears make 7 fruits",), "7")
    expect(fn, ("I have no idea",), None, identical=True)


@exercise_test(
    EXTRACT,
    hint="Mixed cases: thousands separators stay in the raw answer, \\boxed wins over '####', "
    "'A:' is an answer phrase, a '$' before a number is not part of it.",
)
def test_mixed_cases(fn):
    cases = [
        "Total: 1,250 dollars.\n#### 1,250",
        r"\boxed{x^{2}}",
        "It is -7 degrees",
        "A: 12",
        "The answer is $5. Thanks",
        r"\boxed{a} and then #### 3",
    ]
    for c in cases:
        expect(fn, (c,), extract_answer(c), repr(c))


# --------------------------------------------------------------------------------------------------
# 01-answers-match: fn(pred, gold) -> bool
# --------------------------------------------------------------------------------------------------


@exercise_test(
    MATCH,
    title="Equivalent answers",
    forbid=("grpo_lab.rewards.answers_match", "grpo_lab.rewards.is_correct", "grpo_lab.rewards.strict_is_correct"),
    hint="Strip '$', ',' and a trailing '.', then compare as numbers.",
)
def test_numeric_formats(fn):
    for pred, gold in [("1,000", "1000"), ("$5", "5"), ("42.", "42"), ("42.0", "42"), ("-3", "-3.00")]:
        expect(fn, (pred, gold), True, f"{pred!r} vs {gold!r}", identical=True)


@exercise_test(MATCH, hint="Compare exact values: fractions.Fraction('3/4') == Fraction('0.75').")
def test_fractions_and_percent(fn):
    for pred, gold in [("3/4", "0.75"), ("50%", "50"), ("12 apples", "12")]:
        expect(fn, (pred, gold), True, f"{pred!r} vs {gold!r}", identical=True)


@exercise_test(MATCH, hint="Different numbers must not match, and None (no answer) never matches.")
def test_rejections(fn):
    for pred, gold in [("41", "42"), ("-3", "3"), ("0.33", "1/3"), (None, "42"), ("", "0")]:
        expect(fn, (pred, gold), False, f"{pred!r} vs {gold!r}", identical=True)


@exercise_test(MATCH, hint="An answer with two numbers and 'or'/'between'/'±' is a hedge: refuse it.")
def test_hedges_are_refused(fn):
    for pred in ["42 or 43", "between 40 and 45", "42 ± 1"]:
        expect(fn, (pred, "42"), False, f"{pred!r} vs '42' (a hedge must not match)", identical=True)


@exercise_test(MATCH, hint="Wrap the parsing in try/except: a verifier that crashes stops the training run.")
def test_never_raises(fn):
    for pred in ["1/0", "\\frac{", "٣", "1e999999", "nan", "inf", "--5", "...", "$$$", "\x00"]:
        got = fn(pred, "5")
        assert got in (True, False), f"{pred!r}: expected a bool, got {got!r}"
    expect(fn, ("42 dollars", "42"), answers_match("42 dollars", "42"), "'42 dollars' vs '42'", identical=True)


# --------------------------------------------------------------------------------------------------
# 01-reward-function: fn(prompts, completions, answer, **kwargs) -> list[float]
# --------------------------------------------------------------------------------------------------

_COMPLETIONS = ["3 + 4 = 7\n#### 7", "3 + 4 = 8\n#### 8", r"so \boxed{7}", "no idea", "The answer is 7."]


@exercise_test(
    REWARD,
    title="A reward function for TRL",
    forbid=("grpo_lab.rewards.correctness_reward", "grpo_lab.rewards.make_correctness_reward"),
    hint="Return one float per completion: 1.0 if correct, else 0.0.",
)
def test_plain_strings(fn):
    got = fn(prompts=["q"] * 5, completions=_COMPLETIONS, answer=["7"] * 5)
    want = correctness_reward(prompts=["q"] * 5, completions=_COMPLETIONS, answer=["7"] * 5)
    assert isinstance(got, list) and len(got) == 5, f"expected a list of 5 floats, got {got!r}"
    assert all(isinstance(x, float) for x in got), f"rewards must be floats, got {[type(x).__name__ for x in got]}"
    assert got == want, f"expected {want}, got {got}"


@exercise_test(REWARD, hint="A chat completion is [{'role': 'assistant', 'content': '...'}]: score its content.")
def test_chat_messages(fn):
    comps = [[{"role": "assistant", "content": c}] for c in _COMPLETIONS]
    got = fn(prompts=[[{"role": "user", "content": "q"}]] * 5, completions=comps, answer=["7"] * 5)
    assert got == [1.0, 0.0, 1.0, 0.0, 1.0], f"expected [1.0, 0.0, 1.0, 0.0, 1.0], got {got}"


@exercise_test(REWARD, hint="TRL passes extra keyword arguments (completion_ids, trainer_state...): accept **kwargs.")
def test_accepts_trl_keywords(fn):
    got = fn(prompts=["q"], completions=["#### 7"], answer=["7"], completion_ids=[[1, 2]], trainer_state=None)
    assert got == [1.0], f"expected [1.0], got {got}"


@exercise_test(REWARD, hint="A malformed completion (None, a number, a broken message) scores 0.0 instead of raising.")
def test_malformed_completions_score_zero(fn):
    comps = [None, 17, [{"role": "assistant"}], "#### 7"]
    got = fn(prompts=["q"] * 4, completions=comps, answer=["7"] * 4)
    assert got == [0.0, 0.0, 0.0, 1.0], f"expected [0.0, 0.0, 0.0, 1.0], got {got}"
