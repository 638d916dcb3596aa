"""Tasks: seeded generators, held-out splits that never overlap training, GSM8K parsing, prompt formats."""

import json

import pytest

from grpo_lab import tasks


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_train_and_heldout_never_overlap_and_are_seeded(name):
    t = tasks.get_task(name)
    train = {t.key(p) for p in t.train(3000, seed=0)}
    held = {t.key(p) for p in t.heldout(500, seed=0)}
    assert train and held and not (train & held)
    assert [p.prompt for p in t.train(20, seed=5)] == [p.prompt for p in t.train(20, seed=5)]
    assert [p.prompt for p in t.train(20, seed=5)] != [p.prompt for p in t.train(20, seed=6)]


def test_addition_answers_and_split_sizes():
    t = tasks.AdditionTask()
    p = t.make(12, 35)
    assert (p.prompt, p.answer) == ("12+35=", "47")
    assert t.check(p, "47") and not t.check(p, "48") and not t.check(p, None)
    n_train, n_test = len(t.all_problems("train")), len(t.all_problems("test"))
    assert n_train + n_test == 90 * 90 and 0.15 < n_test / 8100 < 0.25


def test_arithmetic_answers_follow_precedence():
    t = tasks.MixedArithmeticTask()
    for p in t.train(200, seed=1):
        assert int(p.answer) == eval(p.meta["expr"])


def test_countdown_has_solutions_and_checks_number_use():
    t = tasks.CountdownTask()
    for p in t.train(50, seed=2):
        assert t.check(p, p.meta["solution"])
    p = t.train(1, seed=3)[0]
    a, b, c = p.meta["numbers"]
    assert not t.check(p, f"{a}+{a}+{a}+{a}") or p.meta["numbers"].count(a) >= 4  # reuse is refused
    assert not t.check(p, "__import__('os')") and not t.check(p, "") and not t.check(p, None)


def test_unknown_task_names_the_choices():
    with pytest.raises(KeyError, match="addition"):
        tasks.get_task("chess")


def test_parse_gsm8k_answer():
    assert tasks.parse_gsm8k_answer("a\n#### 72") == "72"
    assert tasks.parse_gsm8k_answer("a\n#### 1,250") == "1250"
    assert tasks.parse_gsm8k_answer("#### 3 then\n#### -5") == "-5"
    with pytest.raises(tasks.DatasetFormatError, match="####"):
        tasks.parse_gsm8k_answer("no marker here")


@pytest.mark.skipif(tasks.local_gsm8k_path() is None, reason="the packaged GSM8K copy is missing")
def test_local_gsm8k_file_loads_every_row():
    rows = tasks.load_gsm8k()
    assert len(rows) == 7473
    assert all(r["answer"].lstrip("-").replace(".", "").isdigit() for r in rows)
    with_commas = [r for r in rows if "#### " in r["solution"] and "," in r["solution"].rsplit("####", 1)[1]]
    assert with_commas and all("," not in r["answer"] for r in with_commas)
    train, held = tasks.gsm8k_split(rows, 200)
    assert len(held) == 200 and not ({r["question"] for r in train} & {r["question"] for r in held})


def test_gsm8k_jsonl_errors_name_the_row(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": "a\n#### 3"}) + "\n" + json.dumps({"question": "q2"}) + "\n")
    with pytest.raises(tasks.DatasetFormatError, match="row 1"):
        tasks.load_gsm8k(path=f)
    f.write_text("{not json\n")
    with pytest.raises(tasks.DatasetFormatError, match=":1: not JSON"):
        tasks.load_gsm8k(path=f)


def test_gsm8k_hub_path_parses_hub_rows(monkeypatch):
    """The Colab path (datasets.load_dataset) goes through the same parser, tested on local rows."""
    import datasets

    rows = [{"question": "q", "answer": "x\n#### 1,000"}]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(rows))
    out = tasks.load_gsm8k(split="test")
    assert out == [{"question": "q", "solution": "x\n#### 1,000", "answer": "1000"}]


def test_prompt_formats():
    from grpo_lab.models import build_char_tokenizer

    p = tasks.AdditionTask().make(1, 2)
    assert tasks.format_prompt(p) == "1+2="
    msgs = tasks.format_prompt({"question": "How many?"}, style="messages")
    assert msgs[-1] == {"role": "user", "content": "How many?"} and msgs[0]["role"] == "system"
    text = tasks.format_prompt({"question": "How many?"}, style="chat", tokenizer=build_char_tokenizer())
    assert "How many?" in text
    with pytest.raises(ValueError, match="tokenizer"):
        tasks.format_prompt(p, style="chat")


def test_registry_is_static_and_renders_chat_prompts_only_for_chat_tokenizers():
    import subprocess
    import sys

    # A fresh interpreter: gsm8k is in the table without importing presets, jobs or anything else.
    r = subprocess.run(
        [sys.executable, "-c", "from grpo_lab.tasks import TASKS; print(sorted(TASKS))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "gsm8k" in r.stdout
    from grpo_lab.models import build_char_tokenizer

    tok = build_char_tokenizer()
    assert (
        tasks.get_task("addition", tokenizer=tok).train(1)[0].prompt.endswith("=")
    )  # plain prompts, tokenizer ignored
    g = tasks.get_task("gsm8k", tokenizer=tok)  # a char tokenizer's trivial template marks no roles: bare question
    assert g.tokenizer is tok and not g.chat and g.heldout(1)[0].prompt == g.heldout(1)[0].question


class _ChatTok:
    """A stand-in chat tokenizer: a role-aware template, rendered by hand."""

    chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


def test_chat_tokenizer_renders_one_prompt_for_training_and_evaluation_and_checks_leniently():
    t = tasks.get_task("arithmetic", tokenizer=_ChatTok(), max_terms=2, hi=10)
    p = t.heldout(1)[0]
    assert t.chat and p.prompt == tasks.model_prompt(p, _ChatTok(), tasks.ANSWER_ONLY_SYSTEM)
    assert p.prompt.startswith("<system>" + tasks.ANSWER_ONLY_SYSTEM) and p.question in p.prompt
    assert t.train(1)[0].prompt.startswith("<system>")  # the trainer's problems: the same rendering
    plain = tasks.get_task("arithmetic", max_terms=2, hi=10)
    assert [t.key(q) for q in t.heldout(5)] == [q.prompt for q in plain.heldout(5)]  # same split, same problems
    assert t.check(p, f"The result is:\n#### {p.answer}") and not plain.check(p, f"#### {p.answer}")
    assert t.extract(f"#### {p.answer}") == p.answer
    custom = tasks.get_task("arithmetic", tokenizer=_ChatTok(), system="Be brief.")
    assert custom.heldout(1)[0].prompt.startswith("<system>Be brief.")


def test_heldout_distinct_returns_different_problems_and_no_more_than_exist():
    t = tasks.get_task("arithmetic", max_terms=2, hi=10)
    got = t.heldout_distinct(1000, seed=0)
    assert len({p.prompt for p in got}) == len(got) < 150  # 11 x 3 x 11 expressions, a fifth held out
    assert len(t.heldout_distinct(20, seed=0)) == 20


def test_a_larger_heldout_part_is_still_disjoint_from_training():
    # cpu-smollm2 holds out 4 of the 5 buckets: 300 of the 363 two-term problems over 0..10.
    t = tasks.get_task("arithmetic", max_terms=2, hi=10, heldout_buckets=4)
    held = {p.prompt for p in t.heldout_distinct(1000, seed=0)}
    train = {p.prompt for p in t.train(3000, seed=0)}
    assert len(held) == 300 and len(train) == 63 and not held & train
    assert "heldout_buckets=4" in t.describe()
    with pytest.raises(ValueError, match="heldout_buckets"):
        tasks.get_task("arithmetic", heldout_buckets=5)  # nothing left to train on


def test_arithmetic_without_negative_results():
    # 2-term problems over 0..12 with a value >= 0: 169 sums + 169 products + 91 differences = 429.
    t = tasks.get_task("arithmetic", max_terms=2, hi=12, heldout_buckets=4, negative=False)
    held = t.heldout_distinct(1000, seed=0)
    train = {p.prompt for p in t.train(5000, seed=0)}
    assert len(held) == 344 and len(train) == 85 and not {p.prompt for p in held} & train
    assert all(int(p.answer) >= 0 for p in held) and sum("-" in p.prompt for p in held) > 50
    assert t.describe().endswith("negative=False)")
    with_neg = tasks.get_task("arithmetic", max_terms=2, hi=12)
    assert any(int(p.answer) < 0 for p in with_neg.train(200)) and "negative" not in with_neg.describe()
