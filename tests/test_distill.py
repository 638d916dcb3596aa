"""Distillation: KD losses by hand and against TRL 1.16, vocabulary checks, multi-teacher mixtures, data
builders, and a student that actually learns from its teachers."""

from __future__ import annotations

import math

import pytest
import torch

from grpo_lab.distill import (
    DistillExample,
    VocabularyMismatchError,
    check_same_vocabulary,
    distill_batch,
    forward_kl,
    generalized_jsd,
    gold_dataset,
    kd_eval_loss,
    kd_loss,
    mix_teachers,
    rationale_dataset,
    reverse_kl,
    teacher_answers,
    train_student,
    voted_dataset,
)
from grpo_lab.jobs.teachers import grpo_seeds
from grpo_lab.tasks import AdditionTask

D = torch.float64


def _logits(*probs):
    return torch.log(torch.tensor(probs, dtype=D))


def test_forward_and_reverse_kl_by_hand():
    # teacher (0.5, 0.5), student (0.9, 0.1): KL(t||s) = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1)
    t, s = _logits(0.5, 0.5), _logits(0.9, 0.1)
    fwd = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    rev = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert forward_kl(s, t).item() == pytest.approx(fwd, abs=1e-12)
    assert reverse_kl(s, t).item() == pytest.approx(rev, abs=1e-12)
    assert fwd != pytest.approx(rev, abs=1e-3)  # the directions really differ on this pair
    assert kd_loss(s, t, beta=0.0).item() == pytest.approx(fwd)
    assert kd_loss(s, t, beta=1.0).item() == pytest.approx(rev)


def test_jsd_half_by_hand_and_bounds():
    t, s = _logits(1.0 - 1e-12, 1e-12), _logits(1e-12, 1.0 - 1e-12)
    # disjoint supports: JSD = ln 2, the maximum
    assert generalized_jsd(s, t, 0.5).item() == pytest.approx(math.log(2), abs=1e-6)
    p, q = torch.tensor([0.2, 0.8], dtype=D), torch.tensor([0.6, 0.4], dtype=D)
    m = 0.5 * (p + q)
    want = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    assert generalized_jsd(q.log(), p.log(), 0.5).item() == pytest.approx(want.item(), abs=1e-12)
    assert generalized_jsd(p.log(), p.log(), 0.3).item() == pytest.approx(0.0, abs=1e-12)


def test_temperature_softens_both_sides_and_t2_scaling():
    t, s = torch.tensor([[2.0, 0.0, -1.0]], dtype=D), torch.tensor([[0.0, 1.0, 0.0]], dtype=D)
    T = 2.0
    want = forward_kl(s / T, t / T).item()
    assert kd_loss(s, t, temperature=T).item() == pytest.approx(want, abs=1e-12)
    assert kd_loss(s, t, temperature=T, scale_by_t2=True).item() == pytest.approx(want * T * T, abs=1e-12)


def test_mask_averages_over_completion_tokens_only():
    s = torch.randn(2, 4, 7, dtype=D)
    t = torch.randn(2, 4, 7, dtype=D)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]])
    per = [forward_kl(s[b, i], t[b, i]).item() for b, i in [(0, 0), (0, 1), (1, 0)]]
    assert kd_loss(s, t, mask=mask).item() == pytest.approx(sum(per) / 3, abs=1e-12)
    s2 = s.clone()
    s2[0, 3] = 100.0  # junk at a masked position must not leak
    assert kd_loss(s2, t, mask=mask).item() == pytest.approx(kd_loss(s, t, mask=mask).item(), abs=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 2.0])
def test_equals_trl_generalized_jsd_loss(beta, temperature):
    gkd = pytest.importorskip("trl.experimental.gkd")
    g = torch.Generator().manual_seed(int(beta * 10) + int(temperature * 100))
    s = torch.randn(3, 6, 13, dtype=D, generator=g) * 2
    t = torch.randn(3, 6, 13, dtype=D, generator=g) * 2
    labels = torch.randint(0, 13, (3, 6), generator=g)
    labels[0, 4:] = -100
    labels[2, :2] = -100
    want = gkd.GKDTrainer.generalized_jsd_loss(s, t, labels=labels, beta=beta, temperature=temperature)
    got = kd_loss(s, t, beta=beta, temperature=temperature, mask=labels != -100)
    assert got.item() == pytest.approx(want.item(), rel=1e-9, abs=1e-12)


def test_trl_direction_convention():
    """beta 0 is KL(teacher||student), beta 1 is KL(student||teacher), in TRL and here."""
    gkd = pytest.importorskip("trl.experimental.gkd")
    t, s = _logits(0.7, 0.2, 0.1)[None], _logits(0.1, 0.3, 0.6)[None]
    kl_ts = (t.exp() * (t - s)).sum().item()
    kl_st = (s.exp() * (s - t)).sum().item()
    assert gkd.GKDTrainer.generalized_jsd_loss(s, t, beta=0.0).item() == pytest.approx(kl_ts)
    assert gkd.GKDTrainer.generalized_jsd_loss(s, t, beta=1.0).item() == pytest.approx(kl_st)
    assert kd_loss(s, t, beta=0.0).item() == pytest.approx(kl_ts)
    assert kd_loss(s, t, beta=1.0).item() == pytest.approx(kl_st)


def test_vocabulary_mismatch_is_a_clear_error():
    with pytest.raises(VocabularyMismatchError, match="shared vocabulary"):
        kd_loss(torch.randn(2, 5), torch.randn(2, 6))
    from grpo_lab.models import build_char_tokenizer

    a, b = build_char_tokenizer("0123456789+="), build_char_tokenizer("0123456789=+")
    check_same_vocabulary(a, build_char_tokenizer("0123456789+="))
    with pytest.raises(VocabularyMismatchError, match="different ids"):
        check_same_vocabulary(a, b)
    with pytest.raises(VocabularyMismatchError, match="teacher-only"):
        check_same_vocabulary(a, build_char_tokenizer("0123456789+=-"))
    with pytest.raises(ValueError, match="beta"):
        kd_loss(torch.randn(2, 5), torch.randn(2, 5), beta=1.5)


def test_multi_teacher_mixture_weights():
    t1, t2 = _logits(0.9, 0.1), _logits(0.1, 0.9)
    assert mix_teachers([t1, t2]).exp().tolist() == pytest.approx([0.5, 0.5])
    assert mix_teachers([t1, t2], weights=[3, 1]).exp().tolist() == pytest.approx([0.7, 0.3])
    assert mix_teachers([t1, t2], weights=[1, 0]).exp().tolist() == pytest.approx([0.9, 0.1])
    # a probability mixture, not a logit average (averaging log-probs would give a product of experts):
    t3 = _logits(0.99, 0.01)
    mixed = mix_teachers([t3, t2]).exp()
    assert mixed.tolist() == pytest.approx([(0.99 + 0.1) / 2, (0.01 + 0.9) / 2])
    with pytest.raises(ValueError):
        mix_teachers([t1, t2], weights=[1, -1])
    # the KD target built from it: a student equal to the mixture has zero loss
    target = mix_teachers([t1, t2], weights=[3, 1])
    assert kd_loss(target, teacher_logprobs=target).item() == pytest.approx(0.0, abs=1e-12)


def test_voted_dataset_votes_filters_and_verifies():
    task = AdditionTask()
    probs = [task.make(10, 11), task.make(20, 20), task.make(30, 33), task.make(40, 1)]
    answers = [["21", "21", "22"], ["40", "41", "42"], ["63", "64", "64"], [None, None, None]]
    ex, st = voted_dataset(probs, answers)
    assert [e.completion for e in ex] == ["21", "40", "64"]  # tie -> first seen; None never wins
    assert st["no_answer"] == 1 and st["label_accuracy"] == pytest.approx(2 / 3)
    ex, st = voted_dataset(probs, answers, min_agreement=0.6)
    assert [e.completion for e in ex] == ["21", "64"] and st["low_agreement"] == 1
    ex, st = voted_dataset(probs, answers, verifier=lambda p, a: task.check(p, a))
    assert [e.completion for e in ex] == ["21", "40"] and st["rejected_by_verifier"] == 1
    assert st["label_accuracy"] == 1.0


def test_rationale_dataset_prefixes_weights_and_filter():
    task = AdditionTask()
    probs = [task.make(12, 35), task.make(19, 19)]
    outs = {"A": ["2+5=7 1+3=4 Answer: 47", "9+9=18 Answer: 38"], "B": ["tens 40 ones 7 Answer: 47", "Answer: 37"]}
    ex = rationale_dataset(
        probs,
        outs,
        prefixes={"A": "[A]", "B": "[B]"},
        weights={"A": 0.5, "B": 2.0},
        verifier=lambda p, a: task.check(p, a),
    )
    got = [(e.prompt, e.completion, e.weight) for e in ex]
    assert ("[A]12+35=", "2+5=7 1+3=4 Answer: 47", 0.5) in got
    assert ("[B]12+35=", "tens 40 ones 7 Answer: 47", 2.0) in got
    assert ("12+35=", "47", 1.0) in got and ("19+19=", "38", 1.0) in got
    assert not any(e.completion == "Answer: 37" for e in ex)  # the wrong rationale was dropped
    with pytest.raises(ValueError, match="prefix"):
        rationale_dataset(probs, outs, prefixes={"A": "[A]"})


def test_distill_batch_masks_exactly_the_completion():
    from grpo_lab.models import build_char_tokenizer

    tok = build_char_tokenizer()
    ids, att, labels, cm, w = distill_batch(tok, [DistillExample("1+2=", "3", 2.0), DistillExample("10+20=", "30")])
    # row 0: "1+2=" (4) + "3" + eos -> logits at positions 3 and 4 predict "3" and eos
    assert cm[0].tolist()[:6] == [0, 0, 0, 1, 1, 0]
    assert cm[1].sum().item() == 3 and w.tolist() == [2.0, 1.0]
    assert tok.decode(ids[0][cm[0].nonzero().squeeze(1) + 1]) == "3" + tok.eos_token
    assert torch.equal(cm.bool(), labels[:, 1:] != -100) and att[0].sum().item() == 6


@pytest.mark.parametrize(
    "prompt, completion, field",
    [("", "3", "prompt"), ("   ", "3", "prompt"), ("1+2=", "", "completion"), ("1+2=", " \n", "completion")],
)
def test_empty_prompt_or_completion_is_refused_with_the_fix(prompt, completion, field):
    """Either would silently give no supervised token (or only EOS): the error says what to do instead."""
    with pytest.raises(ValueError, match=f"empty {field}.*(drop|build)"):
        DistillExample(prompt, completion)


def test_distill_batch_refuses_text_the_tokenizer_drops():
    """A non-empty completion that encodes to no token would train only the EOS: refused, with the example named."""

    class DropsLetters:
        eos_token_id, pad_token_id = 1, 0

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [2 + int(c) for c in text if c.isdigit()]}

    with pytest.raises(ValueError, match="completion encodes to no token"):
        distill_batch(DropsLetters(), [DistillExample("1+2=", "three")])
    ids, _, _, cm, _ = distill_batch(DropsLetters(), [DistillExample("1+2=", "3")])
    assert ids[0].tolist() == [3, 4, 5, 1] and cm[0].tolist() == [0, 1, 1]


def _tiny(seed):
    from grpo_lab.models import build_tiny_model

    return build_tiny_model("nano", seed=seed, max_position_embeddings=32)


def test_teacher_answers_collects_every_teacher_in_model_order():
    a, tok = _tiny(1)
    b, _ = _tiny(2)
    probs = AdditionTask().train(3, seed=0)
    out = teacher_answers([a, b], tok, probs, samples_per_model=2, temperature=0.0, max_completion_length=3)
    assert [len(row) for row in out] == [4, 4, 4]
    # greedy: each model's two samples agree, and they come first for model a, then for model b
    assert all(row[0] == row[1] and row[2] == row[3] for row in out)
    assert all(isinstance(x, str) and x == x.strip() for row in out for x in row)


def test_token_level_student_lowers_kd_loss():
    teacher, tok = _tiny(1)
    student, _ = _tiny(2)
    task = AdditionTask()
    ex = [DistillExample(p.prompt, p.answer) for p in task.train(64, seed=0)]
    before = kd_eval_loss(student, [teacher], tok, ex, beta=0.5)
    train_student(
        student,
        tok,
        ex,
        teachers=[teacher],
        beta=0.5,
        max_steps=40,
        batch_size=32,
        learning_rate=1e-2,
        warmup_steps=0,
        progress=False,
    )
    after = kd_eval_loss(student, [teacher], tok, ex, beta=0.5)
    assert after < 0.5 * before, (before, after)


def test_sequence_level_student_raises_accuracy_on_teacher_text():
    """A student trained on (voted) teacher text learns to reproduce it: here a one-digit task it can master."""
    from grpo_lab.evaluation import evaluate

    task = AdditionTask(lo=0, hi=4)
    student, tok = _tiny(3)
    probs = task.all_problems("train") + task.all_problems("test")
    acc0 = evaluate(student, tok, task, probs).accuracy
    ex, _ = voted_dataset(probs, [[p.answer, p.answer, "0"] for p in probs])
    res = train_student(
        student,
        tok,
        ex,
        max_steps=150,
        batch_size=25,
        learning_rate=1e-2,
        warmup_steps=5,
        progress=False,
        task=task,
        eval_problems=probs,
        eval_every=150,
    )
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert res.history[-1]["eval_accuracy"] >= acc0 + 0.5, (acc0, res.history[-1])


def test_gold_dataset_is_the_gold_answer_of_every_problem():
    probs = AdditionTask().train(5, seed=0)
    ex = gold_dataset(probs)
    assert [(e.prompt, e.completion, e.source) for e in ex] == [(p.prompt, p.answer, "gold") for p in probs]


class _LowFirstDigit(AdditionTask):
    """A reward a random model earns about half the time, so every GRPO group has signal and the weights move."""

    def check(self, problem, answer):
        return bool(answer) and answer.strip()[:1] in "01234<"


def test_grpo_seeds_trains_distinct_copies_and_leaves_the_model_alone():
    model, tok = _tiny(4)
    before = [p.detach().clone() for p in model.parameters()]
    models, info = grpo_seeds(
        model,
        tok,
        _LowFirstDigit(),
        2,
        grpo=dict(max_steps=2, per_device_train_batch_size=16, learning_rate=1e-2),
        seed=3,
        progress=False,
        label="round2",
    )
    assert [r["stage"] for r in info] == ["round2-1", "round2-2"] and all(r["steps"] == 2 for r in info)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert len(models) == 2 and all(m is not model and not m.training for m in models)

    def moved(a, b):
        return any(not torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))

    assert moved(models[0], model) and moved(models[1], model) and moved(models[0], models[1])
    with pytest.raises(ValueError):
        grpo_seeds(model, tok, AdditionTask(), 0)


def test_package_exports_every_submodule_name():
    import grpo_lab.distill as dl
    from grpo_lab.distill import data, kd, student

    for mod in (kd, data, student):
        for name in mod.__all__:
            assert getattr(dl, name) is getattr(mod, name), (mod.__name__, name)
    assert not hasattr(dl, "sample_answers")  # the teachers' answers are teacher_answers
    assert not hasattr(dl, "grpo_seeds")  # GRPO teachers are a training job: grpo_lab.jobs.teachers
