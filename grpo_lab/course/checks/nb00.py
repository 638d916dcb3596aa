"""Notebook 00 warm-up: parse the gold answer of a GSM8K solution."""

from grpo_lab.course.checks.expect import expect
from grpo_lab.course.registry import exercise_test
from grpo_lab.tasks import parse_gsm8k_answer

ID = "00-parse-gsm8k-answer"


FORBID = ("grpo_lab.tasks.parse_gsm8k_answer",)


@exercise_test(
    ID, hint="Take the text after the last '####' and strip spaces.", title="Parse a GSM8K gold answer", forbid=FORBID
)
def test_simple_answer(fn):
    expect(fn, ("She sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72",), "72")


@exercise_test(ID, hint="GSM8K writes large numbers as '1,000': remove the commas.", forbid=FORBID)
def test_thousands_separator(fn):
    expect(fn, ("The total is 1,000 + 250.\n#### 1,250",), "1250")


@exercise_test(ID, hint="Only the LAST '####' counts; earlier ones can appear in the reasoning.", forbid=FORBID)
def test_last_marker_wins(fn):
    expect(fn, ("#### 3 was a guess\nRecount: 5\n#### 5",), "5")


@exercise_test(ID, hint="Negative answers keep their sign.", forbid=FORBID)
def test_negative(fn):
    expect(fn, ("The change is -7.\n#### -7",), "-7")


@exercise_test(ID, hint="Real rows mix all of the cases above; print the rows where your answer differs.")
def test_real_rows(fn):
    from grpo_lab.tasks import load_gsm8k, local_gsm8k_path

    if local_gsm8k_path() is None:
        rows = [{"answer": "x\n#### 18"}, {"answer": "y\n#### 2,125"}]
    else:
        rows = [{"answer": r["solution"]} for r in load_gsm8k(limit=200)]
    for r in rows:
        expect(fn, (r["answer"],), parse_gsm8k_answer(r["answer"]), f"for ...{r['answer'][-30:]!r}")
