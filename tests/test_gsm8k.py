"""GSM8K across the layers: preset choice from the hardware, the task on the local file, strict/lenient and
pass@k/majority@k evaluation, LoRA's optional dependency, and the training job end to end (notebook 06)."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from grpo_lab import tasks
from grpo_lab.evaluation import evaluate
from grpo_lab.jobs import run_train
from grpo_lab.models import apply_lora
from grpo_lab.presets import choose_preset
from grpo_lab.tasks import GSM8KTask, get_task, local_gsm8k_path

GiB = 1024**3
needs_gsm8k = pytest.mark.skipif(
    local_gsm8k_path() is None, reason="no local GSM8K copy (grpo_lab/data/gsm8k/train.jsonl.xz)"
)


@pytest.mark.parametrize(
    "mem_gib,major,peft,want",
    [
        (14.75, 7, True, "t4-qwen2.5-0.5b-gsm8k-lora"),  # what a Colab T4 reports (sm75): LoRA is the T4 default
        (14.75, 7, False, "t4-qwen2.5-0.5b-gsm8k"),  # without peft, the full fine-tune still fits
        (39.4, 8, False, "a100-qwen2.5-0.5b-gsm8k"),
        (79.3, 9, True, "a100-qwen2.5-0.5b-gsm8k"),
        (139.8, 9, False, "a100-qwen2.5-0.5b-gsm8k"),
        (31.7, 7, True, "t4-qwen2.5-0.5b-gsm8k-lora"),  # a 32 GB V100 (sm70): no native bf16, so never the bf16 preset
        (47.5, 7, False, "t4-qwen2.5-0.5b-gsm8k"),  # a big pre-Ampere GPU (e.g. Quadro RTX 8000, sm75): fp16 presets
        (7.8, 8, True, "t4-qwen2.5-0.5b-gsm8k-lora"),
        (7.8, 8, False, "cpu-smollm2-gsm8k"),
    ],
)
def test_preset_choice_from_mocked_cuda_properties(monkeypatch, mem_gib, major, peft, want):
    """Stand-in ``torch.cuda.get_device_properties``: memory and compute capability (``major``) decide; bf16 only
    with native support (compute capability >= 8), whatever the memory."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # says yes on a T4 (emulation)
    props = SimpleNamespace(total_memory=int(mem_gib * GiB), major=major, minor=5 if major == 7 else 0, name="mock")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: props)
    assert choose_preset(test=False, peft_available=peft, smollm2_available=True) == want


def test_preset_choice_without_cuda_and_in_test_mode(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_preset(test=False, smollm2_available=True) == "cpu-smollm2-gsm8k"
    assert choose_preset(test=False, smollm2_available=False) == "cpu-tiny-gsm8k"
    assert choose_preset(test=True) == "cpu-tiny-gsm8k"
    monkeypatch.setenv("GRPO_LAB_TEST_MODE", "1")
    assert choose_preset() == "cpu-tiny-gsm8k"


def test_lora_without_peft_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # as on a machine without peft: `import peft` raises
    with pytest.raises(ImportError, match="pip install peft"):
        apply_lora(object(), {"lora_r": 8})


@needs_gsm8k
def test_local_split_is_disjoint_fixed_and_chat_formatted():
    from grpo_lab.models import build_char_tokenizer

    task = get_task("gsm8k", tokenizer=build_char_tokenizer())
    assert isinstance(task, GSM8KTask)
    train, held = task.rows()
    assert len(held) == 1000 and len(train) > 5000
    assert not {r["question"] for r in held} & {r["question"] for r in train}
    a, b = task.heldout(5), task.heldout(5, seed=9)
    assert [p.question for p in a] == [p.question for p in b]  # a fixed subset: before/after compare alike
    assert a[0].prompt == a[0].question  # a char model's trivial template marks no roles: the bare question
    chat_tok = build_char_tokenizer()
    chat_tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    c = get_task("gsm8k", tokenizer=chat_tok).heldout(1)[0]  # a chat model: system prompt + question, its template
    assert c.prompt == f"<system>{tasks.DEFAULT_SYSTEM}<user>{c.question}<assistant>" and c.question == a[0].question
    assert task.check(a[0], f"so #### {a[0].answer}") and not task.check(a[0], "#### -12345")
    assert len(task.train(3, seed=1)) == 3


@needs_gsm8k
def test_scoring_strict_lenient_pass_and_majority(monkeypatch):
    """With the decoders replaced by canned text: the gold solution is strict- and lenient-correct, a bare
    "The answer is x." only lenient; pass@k/majority@k follow the canned samples."""
    import grpo_lab.ensemble as ens
    import grpo_lab.rollout as ro

    probs = GSM8KTask(None).heldout(3)
    sol = {p.prompt: p.meta["solution"] for p in probs}
    canned = {
        probs[0].prompt: sol[probs[0].prompt],
        probs[1].prompt: f"The answer is {probs[1].answer}.",
        probs[2].prompt: "I think 0",
    }
    monkeypatch.setattr(ro, "greedy_complete", lambda m, t, prompts, n, bs=32: [canned[p] for p in prompts])

    def fake_samples(m, t, prompts, k, **kw):
        texts = [
            [f"#### {probs[0].answer}", "#### 1", "#### 2"]
            if p == probs[0].prompt
            else [f"#### {probs[2].answer}", "#### 7", "#### 7"]
            if p == probs[2].prompt
            else ["#### 5"] * k
            for p in prompts
        ]
        from grpo_lab.rewards import extract_answer

        return texts, [[extract_answer(x) for x in row] for row in texts]

    monkeypatch.setattr(ens, "sample_answers", fake_samples)
    res = evaluate(None, None, GSM8KTask(None), probs, max_new_tokens=64, k=3)
    assert [r["strict"] for r in res.rows] == [True, False, False]
    assert [r["correct"] for r in res.rows] == [True, True, False]  # the task's check: lenient
    assert res.strict == pytest.approx(1 / 3) and res.accuracy == pytest.approx(2 / 3)
    assert res.pass_at_k == pytest.approx(2 / 3)  # problems 0 and 2 have a correct sample
    assert res.majority_at_k == pytest.approx(1 / 3)  # problem 2's vote goes to 7; problem 0's 3-way tie to the first
    assert res.strict_pass_at_k == pytest.approx(0.0)  # a bare "#### x" has no reasoning before it
    assert [r["vote"] for r in res.rows] == [probs[0].answer, "5", "7"]


def test_char_tasks_get_pass_and_majority_through_the_same_path(monkeypatch):
    """One evaluation for every task: on addition, pass@k/majority@k use the task's exact check, and no strict
    score is computed (the task has no format-strict check)."""
    import grpo_lab.ensemble as ens
    import grpo_lab.rollout as ro

    task = get_task("addition")
    probs = task.heldout(2, seed=0)
    monkeypatch.setattr(ro, "greedy_complete", lambda m, t, prompts, n, bs=32: [probs[0].answer, "0"])
    samples = {probs[0].prompt: ["1", "1", probs[0].answer], probs[1].prompt: [probs[1].answer] * 2 + ["3"]}
    monkeypatch.setattr(ens, "sample_answers", lambda m, t, prompts, k, **kw: ([samples[p] for p in prompts], None))
    res = evaluate(None, None, task, probs, k=3)
    assert res.correct == [True, False] and res.strict is None
    assert res.pass_at_k == 1.0 and res.majority_at_k == 0.5  # problem 0's majority is the wrong "1"
    assert "strict" not in res.summary() or res.summary()["strict"] is None


def test_vote_curve_rescores_the_first_k_samples_and_paired_difference_counts_discordant_problems(monkeypatch):
    import math

    import grpo_lab.ensemble as ens
    import grpo_lab.rollout as ro
    from grpo_lab.evaluation import paired_difference, vote_curve

    task = get_task("addition")
    probs = task.heldout(3, seed=0)
    a = [p.answer for p in probs]
    monkeypatch.setattr(ro, "greedy_complete", lambda m, t, prompts, n, bs=32: [a[0], "0", "0"])
    samples = {
        probs[0].prompt: ["1", a[0], "1", a[0], a[0]],  # wrong first, right by 3 of 5
        probs[1].prompt: [a[1], "2", "2", "2", a[1]],  # right first, outvoted at 3 and 5
        probs[2].prompt: ["4", "4", "5", "5", "6"],
    }  # never right
    monkeypatch.setattr(ens, "sample_answers", lambda m, t, prompts, k, **kw: ([samples[p] for p in prompts], None))
    res = evaluate(None, None, task, probs, k=5)
    curve = vote_curve(task, probs, res, [1, 2, 3, 5])
    assert [curve[k]["majority"] for k in (1, 3, 5)] == [
        [False, True, False],
        [False, False, False],
        [True, False, False],
    ]
    assert curve[2]["majority"] == [False, True, False]  # a 1-1 tie goes to the first answer seen
    assert [curve[k]["pass_at_k"] for k in (1, 2, 5)] == [
        pytest.approx(1 / 3),
        pytest.approx(2 / 3),
        pytest.approx(2 / 3),
    ]
    assert curve[5]["majority"] == [r["majority"] for r in res.rows]  # k = K is evaluate's own vote
    with pytest.raises(ValueError, match="between 1 and the 5 samples"):
        vote_curve(task, probs, res, [6])

    d = paired_difference([True, True, False, False, True], [False, True, True, False, False])
    assert (d["b"], d["c"], d["n"]) == (2, 1, 5) and d["diff"] == pytest.approx(0.2)
    diffs = [1, 0, -1, 0, 1]  # per-problem differences: the standard error of their mean, with divisor n
    mean = sum(diffs) / 5
    assert d["se"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in diffs) / 5) / math.sqrt(5))
    with pytest.raises(ValueError, match="equally long"):
        paired_difference([True], [True, False])


@needs_gsm8k
def test_tiny_model_end_to_end_on_the_local_file(tmp_path):
    """The notebook's test-mode path: evaluate, 2 GRPO steps, evaluate, report.json with strict + lenient."""
    rep = run_train("grpo_lab", "cpu-tiny-gsm8k", out=tmp_path, steps=2, eval_size=4, k=2, progress=False)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["status"] == "done" and saved["steps"] == 2 and len(saved["history"]) == 2
    for when in ("before", "after"):
        s = saved[when]
        assert s["n"] == 4 and s["k"] == 2
        for key in ("strict", "accuracy", "pass_at_k", "majority_at_k"):
            assert 0.0 <= s[key] <= 1.0
        assert s["strict"] <= s["accuracy"] + 1e-9  # strict-correct implies lenient-correct
    assert "gsm8k_split" in saved["data"] and len(saved["samples"]) == 3
    assert (tmp_path / "final" / "config.json").exists()
    assert dict(rep) == saved and not any(k.startswith("_") for k in saved)  # the report holds data, no objects
