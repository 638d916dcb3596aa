"""Notebook 00 warm-up: parse the gold answer of a GSM8K solution."""

from grpo_lab.exercise_checks._helpers import expect
from grpo_lab.grading import exercise_test
from grpo_lab.tasks import parse_gsm8k_answer

ID = "00-parse-gsm8k-answer"


# (name, solution text, expected gold answer, hint shown when the check fails)
_CASES = [
    (
        "simple answer",
        "She sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72",
        "72",
        "Take the text after the last '####' and strip spaces.",
    ),
    (
        "thousands separator",
        "The total is 1,000 + 250.\n#### 1,250",
        "1250",
        "GSM8K writes large numbers as '1,000': remove the commas.",
    ),
    (
        "last marker wins",
        "#### 3 was a guess\nRecount: 5\n#### 5",
        "5",
        "Only the LAST '####' counts; earlier ones can appear in the reasoning.",
    ),
    ("negative", "The change is -7.\n#### -7", "-7", "Negative answers keep their sign."),
]


def _register(k: int, name: str, text: str, want: str, hint: str) -> None:
    def check_case(fn):
        expect(fn, (text,), want)

    check_case.__name__ = "test_" + name.replace(" ", "_")
    exercise_test(
        ID,
        hint=hint,
        title="Parse a GSM8K gold answer" if k == 0 else "",
        forbid=("grpo_lab.tasks.parse_gsm8k_answer",),
    )(check_case)


for _k, _case in enumerate(_CASES):
    _register(_k, *_case)


@exercise_test(ID, hint="Real rows mix all of the cases above; print the rows where your answer differs.")
def test_real_rows(fn):
    from grpo_lab.tasks import load_gsm8k, local_gsm8k_path

    if local_gsm8k_path() is None:
        rows = [{"answer": "x\n#### 18"}, {"answer": "y\n#### 2,125"}]
    else:
        rows = [{"answer": r["solution"]} for r in load_gsm8k(limit=200)]
    for r in rows:
        expect(fn, (r["answer"],), parse_gsm8k_answer(r["answer"]), f"for ...{r['answer'][-30:]!r}")
