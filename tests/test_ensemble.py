"""grpo_lab.ensemble: voting rules, weights, uncertainty measures (hand-computed), ICE with scripted fakes."""

from __future__ import annotations

import math
import random
import types

import pytest
import torch

from grpo_lab.cost import vote_accuracy
from grpo_lab.ensemble import (
    agreement_rate,
    area_under_risk_coverage,
    auroc,
    brier_score,
    calibration_bins,
    estimate_wrong_answers,
    expected_calibration_error,
    fit_vote_weights,
    hf_generator,
    iterative_consensus,
    majority_vote,
    risk_coverage,
    self_consistency,
    vote_entropy,
    vote_items,
)

# ----------------------------------------------------------------------------------------------- voting


def test_equivalent_spellings_vote_together():
    v = majority_vote(["1,000", "7", "1000", "1000.0"])
    assert v.answer == "1,000"  # the first spelling represents the group
    assert v.counts == {"1,000": 3, "7": 1}
    assert v.groups == [[0, 2, 3], [1]]
    assert v.agreement == pytest.approx(0.75)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert v.entropy == pytest.approx(h / math.log(4))  # 0.4056
    assert v.margin == pytest.approx(0.5)


def test_ties_go_to_first_seen():
    assert majority_vote(["3", "5", "5", "3"]).answer == "3"
    assert majority_vote(["5", "3", "3", "5"]).answer == "5"
    assert majority_vote(["9", "8", "7"]).answer == "9"
    assert majority_vote(["9", "8", "7"]).entropy == pytest.approx(1.0)


def test_none_answers_abstain():
    v = majority_vote([None, "4", None])
    assert v.answer == "4" and v.counts == {"4": 1}
    assert v.agreement == pytest.approx(1 / 3)  # abstainers count in the total weight
    assert v.entropy == pytest.approx(1.0)  # abstainers agree with nobody
    v = majority_vote([None, None])
    assert v.answer is None and v.agreement == 0 and v.entropy == pytest.approx(1.0) and v.counts == {}
    v = majority_vote([])
    assert v.answer is None and v.agreement == 0 and v.entropy == 0
    assert majority_vote(["", "  ", "2"]).answer == "2"


def test_unanimous_vote():
    v = majority_vote(["$12", "12", "12.00"])
    assert v.answer == "$12" and v.agreement == 1.0 and v.entropy == 0.0


def test_weights_change_the_winner_and_ties():
    assert majority_vote(["3", "5", "5"]).answer == "5"
    v = majority_vote(["3", "5", "5"], weights=[3, 1, 1])
    assert v.answer == "3" and v.agreement == pytest.approx(0.6) and v.counts == {"3": 3.0, "5": 2.0}
    assert majority_vote(["3", "5", "5"], weights=[2, 1, 1]).answer == "3"  # weighted tie -> first seen
    assert majority_vote(["5", "3", "3"], weights=[0, 1, 1]).answer == "3"
    # a zero-weight voter does not count toward the entropy's normalizer
    assert majority_vote(["5", "3", "3"], weights=[0, 1, 1]).entropy == 0.0
    assert majority_vote(["1", "2"], weights=[0, 0]).answer is None
    with pytest.raises(ValueError):
        majority_vote(["1", "2"], weights=[1, -1])
    with pytest.raises(ValueError):
        majority_vote(["1", "2"], weights=[1])


def test_self_consistency_and_vote_items():
    v = self_consistency(["so 2+2 = 4. #### 4", "#### 5", "The answer is 4.0"])
    assert v.answer == "4" and v.counts == {"4": 2, "5": 1}
    votes = vote_items([["1", "1"], ["2", "3"]])
    assert [v.answer for v in votes] == ["1", "2"]
    assert agreement_rate(votes) == 0.5
    assert vote_entropy(["1", "2"]) == pytest.approx(1.0)


def test_fit_vote_weights_derivation_values():
    correct = [[1, 0], [1, 1], [1, 0], [1, 0]]  # p0 = (4+1)/(4+2) = 5/6, p1 = (1+1)/6 = 1/3
    w = fit_vote_weights(correct, n_wrong=1)
    assert w[0] == pytest.approx(math.log(5)) and w[1] == 0.0  # log(1/2) < 0 is clipped
    w = fit_vote_weights(correct, n_wrong=10)
    assert w == pytest.approx([math.log(50), math.log(5)])
    assert fit_vote_weights(correct, n_wrong=10, max_weight=2.0)[0] == 2.0
    with pytest.raises(ValueError):
        fit_vote_weights([[1, 0], [1]])


def test_estimate_wrong_answers():
    # wrong pairs: item 1 (1,2) (1,2) (2,2) -> one collision; item 2: three pairs, none -> 6 / 1
    assert estimate_wrong_answers([["1", "2", "2.0"], ["5", "6", "7"]], ["0", "0"]) == pytest.approx(6.0)
    assert estimate_wrong_answers([["1", "2"], ["0", "3"]], ["0", "0"]) == math.inf


def _simulate(accs, n_items, n_wrong, rng):
    answers, correct = [], []
    for _ in range(n_items):
        row = ["0" if rng.random() < a else str(1 + rng.randrange(n_wrong)) for a in accs]
        answers.append(row)
        correct.append([a == "0" for a in row])
    return answers, correct


def test_measured_vote_accuracy_matches_analytic_value():
    rng = random.Random(0)
    n, p, M, items = 5, 0.45, 6, 3000
    answers, _ = _simulate([p] * n, items, M, rng)
    # random voter order per item: "first seen" then breaks ties uniformly, as the formula assumes
    measured = sum(majority_vote(rng.sample(row, n)).answer == "0" for row in answers) / items
    exact = vote_accuracy(n, p, n_wrong=M)
    se = math.sqrt(exact * (1 - exact) / items)
    assert abs(measured - exact) < 4 * se, (measured, exact)
    assert exact > p  # the vote helps here


def test_fitted_weights_beat_unweighted_vote_with_one_strong_member():
    rng = random.Random(1)
    accs = [0.3, 0.3, 0.3, 0.3, 0.92]  # one strong member, four weak ones whose mistakes often coincide
    cal_answers, cal_correct = _simulate(accs, 400, 3, rng)
    m_eff = estimate_wrong_answers(cal_answers, ["0"] * len(cal_answers))
    assert 2 < m_eff < 4.5
    w = fit_vote_weights(cal_correct, n_wrong=m_eff)
    assert w[4] > sum(w[:2])  # the strong member outweighs two weak ones agreeing
    test_answers, _ = _simulate(accs, 2000, 3, rng)
    plain = sum(majority_vote(r).answer == "0" for r in test_answers) / 2000
    weighted = sum(majority_vote(r, w).answer == "0" for r in test_answers) / 2000
    assert weighted > plain + 0.1, (plain, weighted)
    assert weighted >= 0.88


# ------------------------------------------------------------------------------------------ uncertainty


def test_auroc_hand_values():
    assert auroc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.75)
    assert auroc([1, 1, 0.5], [1, 0, 0]) == pytest.approx(0.75)  # a tie counts one half
    assert auroc([0.1, 0.2], [1, 0]) == 0.0
    assert auroc([0.5] * 4, [1, 0, 1, 0]) == 0.5
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))


def test_risk_coverage_and_aurc_hand_values():
    conf, ok = [1, 1, 0.5, 0.5, 0.25], [1, 0, 1, 1, 0]
    cov, acc = risk_coverage(conf, ok)
    assert cov == pytest.approx([0.4, 0.8, 1.0])
    assert acc == pytest.approx([0.5, 0.75, 0.6])
    assert area_under_risk_coverage(conf, ok) == pytest.approx(0.4 * 0.5 + 0.4 * 0.25 + 0.2 * 0.4)
    assert area_under_risk_coverage([1] * 5, ok) == pytest.approx(0.4)  # no ranking: the error rate


def test_calibration_hand_values():
    conf, ok = [1, 1, 0.5, 0.5, 0.25], [1, 0, 1, 1, 0]
    table = calibration_bins(conf, ok, "unique")
    assert [(b["confidence"], b["accuracy"], b["count"]) for b in table] == [
        (0.25, 0.0, 1),
        (0.5, 1.0, 2),
        (1.0, 0.5, 2),
    ]
    assert expected_calibration_error(conf, ok) == pytest.approx(0.45)  # auto -> unique for few values
    # two equal-count bins (ties kept together): {0.25, 0.5, 0.5} and {1, 1}
    assert expected_calibration_error(conf, ok, bins=2) == pytest.approx(3 / 5 * 0.25 + 2 / 5 * 0.5)
    assert brier_score(conf, ok) == pytest.approx(1.5625 / 5)
    assert brier_score([0.5, 0.5], [1, 0]) == pytest.approx(0.25)
    assert expected_calibration_error([0.75] * 4, [1, 1, 1, 0]) == pytest.approx(0.0)


# ------------------------------------------------------------------------------------ iterative consensus


class Scripted:
    """A fake model: reply number r (its r-th call) is script[r] (the last one repeats); records prompts."""

    def __init__(self, script):
        self.script, self.seen = list(script), []

    def __call__(self, messages):
        self.seen.append(messages)
        r = sum(m["role"] == "assistant" for m in messages)
        return self.script[min(r, len(self.script) - 1)]


def test_ice_converges_and_records_changes():
    a = Scripted(["12 + 5 = 17. #### 17"])
    b = Scripted(["I think 12 + 5 = 18. #### 18", "You are right, 17. #### 17"])
    c = Scripted(["#### 17.0"])
    res = iterative_consensus("What is 12 + 5?", [a, b, c], max_rounds=4)
    assert res.converged and not res.fallback and res.answer == "17"
    assert len(res.rounds) == 2
    assert res.rounds[0].answers == ["17", "18", "17.0"] and res.rounds[0].vote.agreement == pytest.approx(2 / 3)
    assert res.rounds[1].vote.agreement == 1.0
    assert res.changes() == [(1, "model B", "18", "17")]
    assert [t.changed for t in res.rounds[1].turns] == [False, True, False]  # 17.0 -> 17.0 is no change
    # B's revision prompt shows the others' answers and reasoning, and its own previous reply
    last = b.seen[1]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user"]
    assert "model A answered 17" in last[-1]["content"] and "12 + 5 = 17" in last[-1]["content"]
    assert "model C answered 17.0" in last[-1]["content"] and "Your previous answer was 18" in last[-1]["content"]
    assert len(res.table()) == 6 and "final: 17 (consensus)" in str(res)


def test_ice_immediate_agreement_takes_one_round():
    gens = [Scripted(["#### 1,000"]), Scripted(["#### 1000"])]
    res = iterative_consensus("q", gens, max_rounds=3)
    assert res.converged and len(res.rounds) == 1 and res.answer == "1,000"
    assert len(gens[0].seen) == 1


def test_ice_round_limit_falls_back_to_vote():
    gens = [Scripted(["#### 1"]), Scripted(["#### 2"]), Scripted(["#### 3", "#### 2"]), Scripted([""])]
    res = iterative_consensus("q", gens, max_rounds=3, names=["a", "b", "c", "d"])
    assert not res.converged and res.fallback
    assert len(res.rounds) == 3 and all(len(r.turns) == 4 for r in res.rounds)
    assert res.answer == "2"  # the last round's plurality
    assert res.rounds[-1].answers == ["1", "2", "2", None]
    assert res.changes() == [(1, "c", "3", "2")]
    assert "fallback" in str(res)
    # weights decide the fallback too
    res = iterative_consensus("q", gens[:3], max_rounds=2, weights=[5, 1, 1])
    assert res.fallback and res.answer == "1"
    # a lower threshold accepts a 2/3 majority as consensus
    res = iterative_consensus(
        "q", [Scripted(["#### 4"]), Scripted(["#### 4"]), Scripted(["#### 9"])], max_rounds=3, threshold=0.6
    )
    assert res.converged and len(res.rounds) == 1 and res.answer == "4"
    with pytest.raises(ValueError):
        iterative_consensus("q", gens, max_rounds=0)


def test_hf_generator_wraps_a_real_model():
    from grpo_lab.models import build_tiny_model

    model, tok = build_tiny_model("nano", seed=0)
    greedy = hf_generator(model, tok, max_new_tokens=6)
    msgs = [{"role": "user", "content": "1+1="}]
    out1, out2 = greedy(msgs), greedy(msgs)
    assert isinstance(out1, str) and out1 == out2 and len(out1) <= 6
    sampled = [hf_generator(model, tok, max_new_tokens=6, temperature=1.0, seed=s)(msgs) for s in (0, 0, 1)]
    assert sampled[0] == sampled[1]
    res = iterative_consensus("1+1=", [greedy, greedy], max_rounds=2, system=None)
    # an untrained model gives no parsable answer, so no consensus: two recorded rounds, then the fallback
    assert len(res.rounds) == (1 if res.converged else 2)
    assert res.rounds[0].turns[0].text == res.rounds[0].turns[1].text == out1


class _OnAnotherDevice(torch.nn.Module):
    """A model whose weights live off the CPU (the meta device stands in for a GPU, which this machine lacks)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.empty(1, device="meta"))


def _record_generators(monkeypatch):
    """``rollout.make_generator`` as is, recording the device it was asked for; returns the list of calls."""
    from grpo_lab import rollout

    calls, real = [], rollout.make_generator

    def recording(device, seed):
        calls.append(torch.device(device))
        return real("cpu", seed)

    monkeypatch.setattr(rollout, "make_generator", recording)
    return calls


def test_sample_answers_draws_from_a_seeded_generator_on_the_models_device(monkeypatch):
    """Off the CPU the sampler used to get no generator (an unseeded draw from the device's global one), so pass@k
    before and after training were different random draws on a GPU (issue #30)."""
    from grpo_lab import rollout
    from grpo_lab.ensemble import sample_answers

    calls, seen = _record_generators(monkeypatch), []

    def fake_sample_groups(model, tok, prompts, n, **kw):
        seen.append(kw["generator"])
        return types.SimpleNamespace(texts=["7"] * (len(prompts) * n))

    monkeypatch.setattr(rollout, "sample_groups", fake_sample_groups)
    texts, answers = sample_answers(_OnAnotherDevice(), None, ["1+6="], 2, seed=5)
    assert texts == [["7", "7"]] and answers == [["7", "7"]]
    assert calls == [torch.device("meta")], "the generator must be made for the model's device"
    assert seen[0] is not None and seen[0].initial_seed() == 5


def test_hf_generator_samples_from_a_seeded_generator_on_the_models_device(monkeypatch):
    from grpo_lab import rollout

    calls, seen = _record_generators(monkeypatch), []

    def fake_generate(model, ids, mask, **kw):
        seen.append(kw["generator"])
        return torch.zeros(1, 1, dtype=torch.long), torch.ones(1, 1), None, None

    monkeypatch.setattr(rollout, "encode_prompts", lambda tok, prompts, device: (None, None))
    monkeypatch.setattr(rollout, "generate", fake_generate)
    tok = types.SimpleNamespace(
        eos_token_id=0, pad_token_id=0, apply_chat_template=lambda m, **kw: "p", decode=lambda *a, **kw: "x"
    )
    assert hf_generator(_OnAnotherDevice(), tok, temperature=1.0, seed=3)([{"role": "user", "content": "q"}]) == "x"
    assert calls == [torch.device("meta")] and seen[0] is not None and seen[0].initial_seed() == 3


def test_package_exports_every_submodule_name_and_no_cost_model():
    """``from grpo_lab import ensemble as ens`` reaches every public name of its submodules; the cost model is
    ``grpo_lab.cost`` (re-exporting it here made the two modules import each other)."""
    import grpo_lab.ensemble as ens
    from grpo_lab.ensemble import consensus, sampling, uncertainty, voting

    for mod in (voting, uncertainty, consensus, sampling):
        for name in mod.__all__:
            assert getattr(ens, name) is getattr(mod, name), (mod.__name__, name)
    assert not hasattr(ens, "vote_accuracy") and not hasattr(ens, "inference_flops")
