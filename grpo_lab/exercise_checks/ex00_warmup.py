"""Notebook 00 warm-up: parse the gold answer of a GSM8K solution."""

from grpo_lab.grading import exercise_test
from grpo_lab.tasks import parse_gsm8k_answer

ID = "00-parse-gsm8k-answer"


@exercise_test(ID, title="Parse a GSM8K gold answer", hint="Take the text after the last '####' and strip spaces.")
def test_simple_answer(fn):
    got = fn("She sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72")
    assert got == "72", f"expected '72', got {got!r}"


@exercise_test(ID, hint="GSM8K writes large numbers as '1,000': remove the commas.")
def test_thousands_separator(fn):
    got = fn("The total is 1,000 + 250.\n#### 1,250")
    assert got == "1250", f"expected '1250', got {got!r}"


@exercise_test(ID, hint="Only the LAST '####' counts; earlier ones can appear in the reasoning.")
def test_last_marker_wins(fn):
    got = fn("#### 3 was a guess\nRecount: 5\n#### 5")
    assert got == "5", f"expected '5', got {got!r}"


@exercise_test(ID, hint="Negative answers keep their sign.")
def test_negative(fn):
    got = fn("The change is -7.\n#### -7")
    assert got == "-7", f"expected '-7', got {got!r}"


@exercise_test(ID, hint="Compare with grpo_lab.tasks.parse_gsm8k_answer on real rows.")
def test_matches_reference_on_real_rows(fn):
    from grpo_lab.tasks import load_gsm8k, local_gsm8k_path

    if local_gsm8k_path() is None:
        rows = [{"answer": "x\n#### 18"}, {"answer": "y\n#### 2,125"}]
    else:
        rows = [{"answer": r["solution"]} for r in load_gsm8k(limit=200)]
    for r in rows:
        want = parse_gsm8k_answer(r["answer"])
        got = fn(r["answer"])
        assert got == want, f"for ...{r['answer'][-30:]!r} expected {want!r}, got {got!r}"
