"""COLLIE-style constraints: the checker on hand-made outputs, potentials on partial strings, the program parser
on malformed programs, SMC steering against a toy model's exact posterior, best-of-N, and ICE revision rounds."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from grpo_lab.errors import GrpoLabError
from grpo_lab.tasks import (
    ConstraintTask,
    Problem,
    ProgramError,
    get_task,
    make_problem,
    parse_program,
    program_for,
    sentence_of,
    words_of,
)


def problem_of(*checks: dict) -> Problem:
    """A hand-made problem with these constraints (what ``make_problem`` stores in meta)."""
    return Problem("p", "q", json.dumps(list(checks)), {"constraints": list(checks), "level": len(checks)})


TASK = ConstraintTask()

# ------------------------------------------------------------------------------------------ the checker


def test_words_are_letter_runs_with_inner_apostrophes():
    assert words_of("The dog's ball, don't  STOP!  42 cats") == ["the", "dog's", "ball", "don't", "stop", "42", "cats"]


def test_check_on_hand_made_outputs():
    p = problem_of({"op": "word_count", "n": 4}, {"op": "word_at", "k": 2, "word": "cat"})
    assert TASK.check(p, "The cat sat down.")
    assert TASK.check(p, '  "the CAT sat down"\nHope this helps!')  # first line, quotes and case ignored
    assert not TASK.check(p, "The cat sat.")  # three words
    assert not TASK.check(p, "A dog sat down.")  # word 2 wrong
    assert not TASK.check(p, "") and not TASK.check(p, None)
    p = problem_of({"op": "max_word_len", "n": 4}, {"op": "not_contains", "letter": "e"})
    assert TASK.check(p, "A cat sat on a mat")
    assert not TASK.check(p, "A cat sat on the mat")  # 'e'
    assert not TASK.check(p, "A cat sat on a rug outside")  # 7 letters
    p = problem_of({"op": "ends_with", "word": "home"}, {"op": "contains", "word": "dog"})
    assert TASK.check(p, "The dog ran home.") and not TASK.check(p, "The dogs ran home.")
    assert not TASK.check(p, "Home is where the dog is")
    p = problem_of({"op": "not_contains", "word": "the"}, {"op": "contains", "text": "ran h"})
    assert TASK.check(p, "Then a dog ran home") and not TASK.check(p, "The dog ran home")


def test_explain_names_each_failed_constraint():
    p = problem_of(
        {"op": "word_count", "n": 3}, {"op": "not_contains", "letter": "z"}, {"op": "ends_with", "word": "sea"}
    )
    assert TASK.explain(p, "Blue sea") == ["has exactly 3 words (got: 2 words)"]
    got = TASK.explain(p, "The zebra swims")
    assert got == [
        "does not contain the letter 'z' (got: it does)",
        "ends with the word 'sea' (got: ends with 'swims')",
    ]
    assert TASK.explain(p, "The blue sea") == [] and TASK.check(p, "The blue sea")


def test_generated_problems_are_satisfiable_by_their_witness_and_leveled():
    rng = random.Random(0)
    for level in (1, 2, 3):
        for _ in range(200):
            problem, witness = make_problem(rng, level)
            assert TASK.check(problem, witness), (problem.meta, witness)
            assert len(problem.meta["constraints"]) == level and problem.meta["level"] == level
            assert witness not in json.dumps(problem.meta) + problem.prompt + problem.question + problem.answer
            # the constraints bite: a fixed dull sentence fails a good share of them (checked below in aggregate)


def test_constraints_bite():
    rng = random.Random(1)
    dull = "the cat sat on the mat"
    passed = sum(TASK.check(make_problem(rng, 2)[0], dull) for _ in range(300))
    assert passed < 60  # a sentence that ignores the instructions rarely passes two constraints


def test_task_split_levels_prompts_and_registry():
    t = get_task("constraints", levels=[3])
    train, held = t.train(300, seed=0), t.heldout(100, seed=0)
    assert not {t.key(p) for p in train} & {t.key(p) for p in held}
    assert {p.meta["level"] for p in train} == {3}
    p = held[0]
    assert p.prompt.endswith("Sentence:") and p.question.startswith("Write one English sentence that")
    assert program_for(p).describe()[0] in p.question  # the prompt states the program's checks
    assert parse_program(p.answer) == program_for(p)  # answer holds the program, not a sentence
    with pytest.raises(ValueError):
        ConstraintTask(levels=[4])
    assert t.extract("  The Cat, sat!\nmore") == "the cat sat" and t.extract("  \n") is None


def test_chat_prompt_uses_the_task_system_prompt():
    class Tok:  # a chat template that names roles (prompts.is_chat_tokenizer)
        chat_template = "{role}"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"

    p = get_task("constraints", tokenizer=Tok()).heldout(1)[0]
    assert p.prompt.startswith("system:Reply with the sentence only") and p.meta["plain_prompt"].endswith("Sentence:")


def test_overlong_or_hostile_text_is_refused_promptly():
    p = problem_of({"op": "not_contains", "letter": "q"})
    assert TASK.check(p, "a " * 200) and not TASK.check(p, "a " * 300)  # 600 characters: refused unread
    assert not TASK.check(p, "\n\n  \n")


# ------------------------------------------------------------------------------------------ programs


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("not json", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
        ('{"op": "word_count", "n": 3}', "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        ("[3]", "must be an object"),
        ('[{"op": "rhymes"}]', "unknown op 'rhymes'"),
        ('[{"n": 3}]', "unknown op None"),
        ('[{"op": "word_count"}]', "missing field 'n'"),
        ('[{"op": "word_count", "n": "7"}]', "must be an integer"),
        ('[{"op": "word_count", "n": true}]', "must be an integer"),
        ('[{"op": "word_count", "n": 0}]', "must be an integer"),
        ('[{"op": "word_count", "n": 7.0}]', "must be an integer"),
        ('[{"op": "word_at", "k": 2}]', "missing field 'word'"),
        ('[{"op": "word_at", "k": 2, "word": "two words"}]', "single word"),
        ('[{"op": "word_at", "k": 2, "word": ""}]', "non-empty string"),
        ('[{"op": "contains"}]', "exactly one of"),
        ('[{"op": "contains", "letter": "e", "word": "x"}]', "exactly one of"),
        ('[{"op": "not_contains", "letter": "ee"}]', "one character"),
        ('[{"op": "ends_with", "word": 5}]', "non-empty string"),
        ('[{"op": "ends_with", "word": "home", "k": 1}]', "unknown fields ['k']"),
        (json.dumps([{"op": "word_count", "n": 3}] * 21), "at most 20"),
    ],
)
def test_malformed_programs_raise_a_clear_program_error(text, fragment):
    with pytest.raises(ProgramError, match=None) as info:
        parse_program(text)
    assert fragment in str(info.value) and isinstance(info.value, GrpoLabError)


def test_parser_accepts_fenced_json_and_round_trips():
    src = '```json\n[{"op": "word_count", "n": 7}, {"op": "contains", "word": "River"}]\n```'
    prog = parse_program(src)
    assert prog.checks[1].word == "river"  # lower-cased: comparisons are case-insensitive
    assert parse_program(prog.to_json()) == prog


@pytest.mark.parametrize("junk", [None, 3, "", "null", '"x"', "[null]", '[{"op": null}]', '[{"op": ["word_count"]}]'])
def test_parser_never_crashes_on_junk(junk):
    with pytest.raises(ProgramError):
        parse_program(junk)


P = parse_program(
    json.dumps(
        [
            {"op": "word_count", "n": 4},
            {"op": "word_at", "k": 2, "word": "river"},
            {"op": "max_word_len", "n": 5},
            {"op": "not_contains", "letter": "z"},
            {"op": "ends_with", "word": "home"},
        ]
    )
)


@pytest.mark.parametrize(
    "prefix,alive",
    [
        ("", True),
        ("The", True),
        ("The riv", True),  # the open word may still become 'river'
        ("The rov", False),  # it cannot
        ("The river", True),
        ("The rivers", False),  # 'rivers' is not 'river' and has 6 letters
        ("The river ran", True),
        ("The river ran h", True),
        ("The river ran home", True),
        ("The river ran home now", False),  # five words: too many already
        ("The river ran homeward", False),  # 8 letters
        ("The river ran z", False),  # forbidden letter
        ("Amazing", False),  # 7 letters and a 'z'
    ],
)
def test_potential_on_partial_strings(prefix, alive):
    assert P.potential(prefix, final=False) == (0.0 if alive else -math.inf)


def test_final_potential_is_exact():
    assert P.potential("The river ran home.", final=True) == 0.0
    assert P.potential("The river ran", final=True) == -math.inf  # alive as a prefix, not as a finished text
    assert P.potential("The river ran far", final=True) == -math.inf  # does not end with 'home'


def test_potential_is_sound_on_every_prefix_of_satisfying_texts():
    # Soundness, what SMC needs: a text satisfying the program is never killed on the way.
    rng = random.Random(2)
    for level in (1, 2, 3):
        for _ in range(150):
            problem, witness = make_problem(rng, level)
            text = random.Random(len(witness)).choice([witness, witness.capitalize() + ".", f"'{witness}'"])
            prog = program_for(problem)
            assert prog.potential(sentence_of(text), final=True) == 0.0
            assert all(prog.potential(text[:i]) == 0.0 for i in range(len(text) + 1)), (problem.meta, text)


def test_potential_and_check_agree_with_failures():
    rng = random.Random(3)
    words = ["the", "cat", "river", "home", "zebra", "a"]
    for _ in range(300):
        problem, _ = make_problem(rng, rng.choice((1, 2, 3)))
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 7)))
        prog = program_for(problem)
        assert (prog.potential(text, final=True) == 0.0) == (not prog.failures(text)) == TASK.check(problem, text)
        assert len(TASK.explain(problem, text)) == len(prog.failures(text))
        if prog.potential(text, final=True) == 0.0:
            assert all(prog.potential(text[:i]) == 0.0 for i in range(len(text)))


def test_every_prefix_of_a_dead_prefix_extension_stays_dead():
    # Once -inf, always -inf: appending never revives a violated check.
    rng = random.Random(4)
    for _ in range(200):
        problem, _ = make_problem(rng, 3)
        prog = program_for(problem)
        text = " ".join(rng.choice(["the", "cat", "rivers", "home", "zebra"]) for _ in range(8))
        dead = [prog.potential(text[:i]) == -math.inf for i in range(len(text) + 1)]
        assert dead == sorted(dead)  # False... then True...
        assert list(itertools.accumulate(dead, max)) == dead


# ------------------------------------------------------------------------------------------ SMC on a toy model

from grpo_lab.ensemble import hf_proposal  # noqa: E402
from grpo_lab.ensemble.smc import best_of_n, ess, resample, smc_steer  # noqa: E402

SYMBOLS, EOS_ID, LENGTH = "abc", 3, 4
# A Markov toy language model over a, b, c and EOS: row = the last symbol (3 = start).
TABLE = {
    3: [0.5, 0.3, 0.2, 0.0],
    0: [0.3, 0.3, 0.3, 0.1],
    1: [0.1, 0.2, 0.6, 0.1],
    2: [0.2, 0.1, 0.5, 0.2],
}


def toy_model(ids: tuple[int, ...]) -> list[float]:
    return [math.log(p) if p > 0 else -math.inf for p in TABLE[ids[-1] if ids else 3]]


def uniform(ids: tuple[int, ...]) -> list[float]:
    return [math.log(0.25)] * 4


def toy_decode(ids) -> str:
    return "".join(SYMBOLS[i] for i in ids)


def toy_potential(text: str, final: bool) -> float:
    """Hard: no 'cc' anywhere; soft: each 'a' costs 0.8 nats; finished texts must be at least 2 long."""
    if "cc" in text or (final and len(text) < 2):
        return -math.inf
    return -0.8 * text.count("a")


def exact_posterior() -> tuple[dict[str, float], float]:
    """p(x) exp(phi_final(x)) normalised, by enumerating every token sequence (EOS, or cut at LENGTH)."""
    mass: dict[str, float] = {}
    for n in range(1, LENGTH + 1):
        for ids in itertools.product(range(4), repeat=n):
            if EOS_ID in ids[:-1] or (n < LENGTH and ids[-1] != EOS_ID):
                continue  # EOS only last; shorter sequences must end with it
            prob = math.exp(sum(toy_model(ids[:i])[t] for i, t in enumerate(ids)))
            text = toy_decode(t for t in ids if t != EOS_ID)
            mass[text] = mass.get(text, 0.0) + prob * math.exp(toy_potential(text, True))
    z = sum(mass.values())
    return {t: m / z for t, m in mass.items() if m > 0}, z


def smc_estimate(n_seeds=6, proposal=toy_model, **kw) -> tuple[dict[str, float], float, list]:
    """The seeds' weighted-particle distributions averaged, the mean of exp(log_evidence), the results."""
    common = dict(decode=toy_decode, eos_id=EOS_ID, max_tokens=LENGTH)
    runs = [smc_steer(proposal, toy_potential, seed=s, **common, **kw) for s in range(n_seeds)]
    est: dict[str, float] = {}
    for r in runs:
        for text, w in r.posterior().items():
            est[text] = est.get(text, 0.0) + w / n_seeds
    return est, sum(math.exp(r.log_evidence) for r in runs) / n_seeds, runs


def tv(a: dict[str, float], b: dict[str, float]) -> float:
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


# The bound: with 6 x 1500 particles the sampling noise alone gives a TV distance of about 0.04 over the 90
# reachable strings (measured with resampling switched off, plain importance sampling, which halves it at 4x
# the particles); planted bugs (weights kept after resampling, resampling that ignores weights, the potential
# instead of its change in the weight, no p/q correction) gave 0.24 to 0.64 and evidence ratios of 0.54-2.4.
TV_BOUND = 0.08


@pytest.mark.parametrize("method", ["systematic", "multinomial"])
def test_smc_matches_the_exact_posterior_of_a_toy_model(method):
    exact, z = exact_posterior()
    est, z_hat, runs = smc_estimate(n_particles=1500, method=method)
    assert all(r.resamples > 0 for r in runs)  # the resampling path is exercised
    assert tv(est, exact) < TV_BOUND, tv(est, exact)
    assert abs(z_hat / z - 1) < 0.05
    assert all("cc" not in t and len(t) >= 2 for t in est)  # dead particles carry no mass


def test_smc_with_a_different_proposal_corrects_by_p_over_q():
    exact, z = exact_posterior()
    est, z_hat, runs = smc_estimate(n_particles=1500, proposal=uniform, target=toy_model)
    assert tv(est, exact) < TV_BOUND, tv(est, exact)
    assert abs(z_hat / z - 1) < 0.05
    # Without the target correction, the same particles describe another distribution.
    wrong, _, _ = smc_estimate(n_particles=1500, proposal=uniform)
    assert tv(wrong, exact) > 0.1


def test_smc_counts_tokens_and_stops_at_eos_or_max_tokens():
    r = smc_steer(
        toy_model, toy_potential, decode=toy_decode, eos_id=EOS_ID, max_tokens=LENGTH, n_particles=50, seed=1
    )
    assert all(p.done for p in r.particles) and all(len(p.ids) <= LENGTH for p in r.particles)
    assert all(p.ids[-1] == EOS_ID or len(p.ids) == LENGTH for p in r.particles)
    assert 50 * 1 <= r.tokens <= 50 * LENGTH and r.steps <= LENGTH
    dead = smc_steer(toy_model, lambda t, f: -math.inf, decode=toy_decode, eos_id=EOS_ID, max_tokens=3, n_particles=5)
    assert dead.posterior() == {} and dead.answer is None and dead.tokens == 0 and dead.log_evidence == -math.inf


def test_resampling_and_ess_by_hand():
    assert ess([0.0, 0.0, 0.0, 0.0]) == pytest.approx(4.0)
    assert ess([0.0, -math.inf, -math.inf]) == pytest.approx(1.0)
    assert ess([math.log(3), 0.0]) == pytest.approx(16 / 10)
    rng = random.Random(0)
    assert resample([-math.inf, 0.0, -math.inf], rng) == [1, 1, 1]
    counts = [0, 0]
    for _ in range(2000):
        for i in resample([math.log(0.75), math.log(0.25)], rng):
            counts[i] += 1
    assert counts[0] / sum(counts) == pytest.approx(0.75, abs=0.01)
    # systematic: index i appears floor(n w_i) or ceil(n w_i) times, whatever the uniform draw
    w = [0.05, 0.3, 0.15, 0.02, 0.48] * 2
    for seed in range(50):
        idx = resample([math.log(x) for x in w], random.Random(seed))
        assert all(math.floor(10 * x / 2) <= idx.count(i) <= math.ceil(10 * x / 2) for i, x in enumerate(w))
    with pytest.raises(ValueError):
        resample([0.0], rng, "stratified")


def test_best_of_n_returns_the_first_verified_sample_and_counts_its_tokens():
    out = best_of_n(toy_model, lambda t: t.startswith("b"), decode=toy_decode, eos_id=EOS_ID, n=50, max_tokens=4)
    assert out.verified and out.text.startswith("b") and 1 <= out.tries <= 50
    assert out.tries <= out.tokens <= out.tries * LENGTH
    never = best_of_n(toy_model, lambda t: False, decode=toy_decode, eos_id=EOS_ID, n=7, max_tokens=4, seed=3)
    assert not never.verified and never.tries == 7 and 7 <= never.tokens <= 28


def test_hf_proposal_on_a_tiny_model_steers_with_a_program():
    import torch

    from grpo_lab.models import build_tiny_model

    model, tok = build_tiny_model("nano", seed=0)
    lm = hf_proposal(model, tok, "Sentence:")
    lp = lm(())
    assert len(lp) == model.config.vocab_size and math.isclose(math.fsum(math.exp(x) for x in lp), 1.0, rel_tol=1e-4)
    with torch.no_grad():
        ids = torch.tensor([tok("Sentence:x", add_special_tokens=False)["input_ids"]])
        want = torch.log_softmax(model(input_ids=ids).logits[0, -1], -1)
    got = lm((tok.convert_tokens_to_ids("x"),))
    assert torch.allclose(torch.tensor(got), want, atol=1e-5)  # the prompt and the generated ids, no cache
    program = parse_program('[{"op": "not_contains", "letter": "e"}, {"op": "max_word_len", "n": 3}]')
    r = smc_steer(lm, program.potential, decode=lm.decode, eos_id=lm.eos_id, n_particles=6, max_tokens=6, seed=0)
    assert r.tokens >= 6 and lm.forward_passes <= r.tokens + 1  # memoised prefixes never cost more
    assert r.posterior() and all(program.potential(t, True) == 0.0 for t in r.posterior())


def test_vectorised_draw_is_the_draw_of_random_choices():
    from grpo_lab.ensemble.smc import _draw

    lps = [math.log(x) for x in (0.1, 0.0001, 0.5, 0.3, 0.0999)]
    for seed in range(300):  # the same single uniform, the same bisect: the same token, seed by seed
        want = random.Random(seed).choices(range(5), weights=[math.exp(x) for x in lps])[0]
        assert _draw(lps, random.Random(seed)) == want


def _tiny_lm():
    from grpo_lab.models import build_tiny_model

    model, tok = build_tiny_model("nano", seed=0)
    return model, tok


def test_batched_hf_proposal_matches_the_unbatched_one():
    import numpy as np

    model, tok = _tiny_lm()
    ref, lm = hf_proposal(model, tok, "Sentence:"), hf_proposal(model, tok, "Sentence:")
    ids = [tok.convert_tokens_to_ids(c) for c in "abcde"]
    a, b, c, d, e = ids

    def same(batch):
        got = lm.batch(batch)
        assert len(got) == len(batch)
        for prefix, lp in zip(batch, got):
            assert np.allclose(lp, ref(prefix), atol=1e-5), prefix

    same([()] * 3)  # the prompt alone, one row computed
    assert lm.forward_passes == 1 and lm.positions == len(lm.prompt_ids)
    same([(a,), (b,), (a,), (c,)])  # duplicates share a row: 3 rows of one token each from the cache
    assert lm.forward_passes == 2 and lm.positions == len(lm.prompt_ids) + 3
    # a resampling step: parents reordered, one taken twice, one dropped
    same([(c, d), (a, e), (a, d), (c, d)])
    assert lm.positions == len(lm.prompt_ids) + 3 + 3
    same([(a, e, b), (c, d, a), (c, d, b)])
    # a parent that is not in the cache, or prefixes of unequal length: recomputed in full, still right
    same([(e, e, e, e), (d, d, d, d)])
    same([(a,), (b, c)])
    same([(e, e, e, e, a)])  # and the cache started by the full pass is extended again
    assert lm.batch([]) == []


def test_smc_and_best_of_n_with_the_batched_proposal_equal_the_unbatched_runs():
    model, tok = _tiny_lm()
    program = parse_program('[{"op": "not_contains", "letter": "e"}, {"op": "max_word_len", "n": 3}]')
    lm = hf_proposal(model, tok, "Sentence:")
    plain = hf_proposal(model, tok, "Sentence:")
    one_at_a_time = lambda ids: plain(ids)  # noqa: E731  (no batch method: one call per particle)
    kw = dict(decode=lm.decode, eos_id=lm.eos_id, n_particles=8, max_tokens=8)
    for seed in range(3):
        r1 = smc_steer(lm, program.potential, seed=seed, **kw)
        r2 = smc_steer(one_at_a_time, program.potential, seed=seed, **kw)
        assert [p.ids for p in r1.particles] == [p.ids for p in r2.particles]
        assert [p.weight for p in r1.particles] == pytest.approx([p.weight for p in r2.particles], abs=1e-4)
        assert (r1.tokens, r1.resamples, r1.steps) == (r2.tokens, r2.resamples, r2.steps)
    assert lm.forward_passes < plain.forward_passes  # one pass per step instead of one per particle and step
    # best-of-N in chunks: the same distribution, tokens counted up to the accepted sample only
    verify = lambda t: program.potential(t, True) == 0.0  # noqa: E731
    out = best_of_n(lm, verify, decode=lm.decode, eos_id=lm.eos_id, n=12, max_tokens=6, chunk=4, seed=1)
    assert out.tries <= 12 and out.tokens <= 6 * out.tries and (not out.verified or verify(out.text))


class ToyBatch:
    """The toy model with a batch method, counting the prefixes it is asked for."""

    def __init__(self):
        self.asked = 0

    def __call__(self, ids):
        return toy_model(ids)

    def batch(self, prefixes):
        self.asked += len(prefixes)
        return [toy_model(ids) for ids in prefixes]


def test_best_of_n_respects_a_token_budget_and_counts_only_what_it_used():
    common = dict(decode=toy_decode, eos_id=EOS_ID, max_tokens=LENGTH)
    never = lambda t: False  # noqa: E731
    for budget in (1, 5, 9, 13):
        for proposal in (toy_model, ToyBatch()):
            out = best_of_n(proposal, never, n=50, budget=budget, seed=budget, **common)
            assert out.tokens == budget and not out.verified  # spent exactly, the cut sample not accepted
    # the same samples, drawn in chunks, stop where the first accepted one is: later ones are not counted
    toy = ToyBatch()
    out = best_of_n(toy, lambda t: t.startswith("b"), n=40, chunk=10, seed=2, **common)
    assert out.verified and out.text.startswith("b") and out.tokens <= out.tries * LENGTH
    assert toy.asked >= out.tokens  # computed for the whole chunk, counted only up to the accepted sample


def test_sample_many_has_the_distribution_of_sample_once():
    from grpo_lab.ensemble.smc import sample_many, sample_once

    # the exact law of the first symbol and of the length (EOS or the cut at LENGTH), by enumeration
    first = dict(zip(SYMBOLS, TABLE[3]))
    length: dict[int, float] = {}
    for n in range(1, LENGTH + 1):
        for ids in itertools.product(range(4), repeat=n):
            if EOS_ID in ids[:-1] or (n < LENGTH and ids[-1] != EOS_ID):
                continue
            k = n - (ids[-1] == EOS_ID)
            length[k] = length.get(k, 0.0) + math.exp(sum(toy_model(ids[:i])[t] for i, t in enumerate(ids)))
    n, rng = 4000, random.Random(1)
    for texts in (
        [t for t, _ in sample_many(ToyBatch(), n, toy_decode, EOS_ID, LENGTH, random.Random(0))],
        [sample_once(toy_model, toy_decode, EOS_ID, LENGTH, rng)[0] for _ in range(n)],
    ):
        for sym, pr in first.items():  # standard error <= 0.008 at n = 4000
            assert sum(t[:1] == sym for t in texts) / n == pytest.approx(pr, abs=0.03)
        for k, pr in length.items():
            assert sum(len(t) == k for t in texts) / n == pytest.approx(pr, abs=0.03)
    stopped = sample_many(ToyBatch(), 50, toy_decode, EOS_ID, LENGTH, random.Random(2), stop=lambda t: "b" in t)
    assert all("b" not in t[:-1] for t, _ in stopped)  # a stop rule finishes a sample where it first holds
    assert any(t.endswith("b") for t, _ in stopped)


def test_smc_stop_rule_finishes_particles_as_eos_does():
    stop = lambda t: t.endswith("b")  # noqa: E731
    r = smc_steer(toy_model, toy_potential, decode=toy_decode, eos_id=EOS_ID, max_tokens=LENGTH, n_particles=40,
                  stop=stop, seed=0)  # fmt: skip
    assert all(p.done or p.weight == -math.inf for p in r.particles)  # finished, or dead (never extended)
    assert all("b" not in p.text[:-1] for p in r.particles)  # nothing drawn after the stop rule held
    assert any(p.text.endswith("b") and p.weight > -math.inf for p in r.particles)


def test_packages_export_the_new_names():
    import grpo_lab.ensemble as ens
    import grpo_lab.tasks as tasks_pkg
    from grpo_lab.ensemble import smc as smc_mod
    from grpo_lab.ensemble import smc_hf
    from grpo_lab.tasks import constraint_programs, constraints

    assert all(getattr(ens, n) is getattr(smc_mod, n) for n in smc_mod.__all__)
    assert all(getattr(ens, n) is getattr(smc_hf, n) for n in smc_hf.__all__)
    wanted = ["ConstraintTask", "make_problem", "program_for", "sentence_of", "CONSTRAINTS_SYSTEM"]
    assert all(getattr(tasks_pkg, n) is getattr(constraints, n) for n in wanted)
    assert all(getattr(tasks_pkg, n) is getattr(constraint_programs, n) for n in ["parse_program", "ProgramError"])


# ------------------------------------------------------------------------------------------ ICE revision rounds

import re  # noqa: E402

from grpo_lab.ensemble import ice_rounds, revision_prompt  # noqa: E402


def stubborn(answer: str, tokens: int = 10):
    return lambda prompt: (answer, f"I am sure it is {answer}", tokens)


def copier(first: str):
    """Answers ``first``, then the plurality of the other members' answers shown in the revision prompt."""

    def member(prompt: str):
        shown = re.findall(r"^- \w+: (.+?)\. Reason:", prompt, re.M)
        if not shown:
            return first, "my own guess"  # no token count: counted as words
        return max(shown, key=shown.count), "the others agree"  # max keeps the first of equal counts

    return member


def test_revision_prompt_shows_the_others_answers_and_short_reasons():
    text = revision_prompt("Q?", "5", [("B", "7", "x" * 500 + " because seven"), ("C", None, "unsure")], 40)
    assert text.startswith("Q?") and "- B: 7. Reason: ..." in text and "because seven" in text
    assert "x" * 40 not in text  # the reason is cut to its end
    assert "- C: no answer. Reason: unsure" in text and "Your previous answer: 5." in text
    assert "change your answer" in text


def test_ice_rounds_copier_joins_the_majority_and_converges():
    run = ice_rounds("Q?", [stubborn("7"), stubborn("7 "), copier("5")], max_rounds=4, names=["A", "B", "C"])
    assert [r.answers for r in run.rounds] == [["7", "7 ", "5"], ["7", "7 ", "7"]]
    assert [r.changed for r in run.rounds] == [[False] * 3, [False, False, True]]
    assert [r.change_rate for r in run.rounds] == [0.0, pytest.approx(1 / 3)]
    assert [r.converged for r in run.rounds] == [False, True] and run.converged and run.answer == "7"
    # tokens: the stubborn members say 10 each round; the copier is counted in words ("5 my own guess": 4)
    assert [r.tokens for r in run.rounds] == [24, 24] and run.tokens == 48


def test_ice_rounds_without_agreement_falls_back_to_the_majority():
    run = ice_rounds("Q?", [stubborn("1"), stubborn("2"), copier("3")], max_rounds=3)
    assert [r.answers for r in run.rounds] == [["1", "2", "3"], ["1", "2", "1"], ["1", "2", "1"]]
    assert [r.change_rate for r in run.rounds] == [0.0, pytest.approx(1 / 3), 0.0]
    assert not any(r.converged for r in run.rounds) and not run.converged
    assert run.answer == "1" and [r.vote for r in run.rounds] == ["1", "1", "1"]


def test_ice_rounds_counts_none_answers_as_changes_and_never_as_agreement():
    script = iter([(None, "no idea", 3), ("4", "worked it out", 3)])
    run = ice_rounds("Q?", [lambda p: next(script), stubborn("4", 3)], max_rounds=3)
    assert run.rounds[0].answers == [None, "4"] and not run.rounds[0].converged
    assert run.rounds[1].changed == [True, False] and run.rounds[1].converged and run.tokens == 12
    silent = ice_rounds("Q?", [lambda p: (None, "", 1)] * 2, max_rounds=2)
    assert not silent.converged and silent.answer is None and silent.rounds[1].change_rate == 0.0
    with pytest.raises(ValueError):
        ice_rounds("Q?", [], max_rounds=2)


def test_ice_many_batches_members_and_equals_ice_rounds_per_question():
    from grpo_lab.ensemble import ice_many

    def members_for(q: str):
        # per question: a stubborn member, a copier and one that answers the question's own digit
        return [stubborn("7"), copier("3" if q.endswith("a") else "7"), stubborn(q[-2] if q[-2].isdigit() else "7")]

    questions = ["Q 1a", "Q 7b", "Q 5a", "Q 2c"]
    calls: list[int] = []

    def batched(i):
        def member(prompts):
            calls.append(len(prompts))
            # each prompt starts with its question (round 0) or repeats it on its first line (revision rounds)
            return [members_for(p.splitlines()[0])[i](p) for p in prompts]

        return member

    runs = ice_many(questions, [batched(i) for i in range(3)], max_rounds=3)
    for q, run in zip(questions, runs):
        alone = ice_rounds(q, members_for(q), max_rounds=3)
        assert [(r.answers, r.changed, r.converged, r.tokens) for r in run.rounds] == [
            (r.answers, r.changed, r.converged, r.tokens) for r in alone.rounds
        ]
        assert (run.answer, run.converged, run.tokens) == (alone.answer, alone.converged, alone.tokens)
    # one call per member and round, with only the questions that have not converged
    live = [sum(len(r.rounds) > k for r in runs) for k in range(3)]
    assert calls == [n for n in live for _ in range(3)] and live[0] == 4 and live[-1] < 4
    with pytest.raises(ValueError, match="replies"):
        ice_many(["Q"], [lambda prompts: []], max_rounds=1)


def test_sentence_potential_reads_the_first_line_and_agrees_with_check():
    from grpo_lab.tasks import sentence_potential

    p = problem_of({"op": "word_count", "n": 3}, {"op": "not_contains", "letter": "z"})
    phi = sentence_potential(program_for(p))
    assert phi('"The cat', False) == 0.0 and phi("The zebra", False) == -math.inf
    assert phi("The cat sat", False) == 0.0  # three words so far: still possible
    assert phi("The cat sat\n", False) == 0.0  # the line ended: judged final, and it holds
    assert phi("The cat\n", False) == -math.inf  # ended with two words: final, fails, though unfinished
    assert phi("The cat sat\nzzz zzz zzz zzz", False) == 0.0  # what follows the sentence is never read
    for text in ("The cat sat.", "The cat", "A zebra sat", "  'One two three'\nmore", "", "\n\n", "x " * 400):
        assert (phi(text, True) == 0.0) == TASK.check(p, text), text


def test_same_program_ignores_order_repeats_and_a_one_letter_text():
    from grpo_lab.tasks import same_program

    a = parse_program('[{"op": "word_count", "n": 5}, {"op": "not_contains", "letter": "e"}]')
    b = parse_program(
        '[{"op": "not_contains", "text": "E"}, {"op": "word_count", "n": 5}, {"op": "word_count", "n": 5}]'
    )
    assert same_program(a, b) and same_program(b, a)
    assert not same_program(a, parse_program('[{"op": "word_count", "n": 5}]'))
    assert not same_program(a, parse_program('[{"op": "word_count", "n": 6}, {"op": "not_contains", "letter": "e"}]'))
    assert not same_program(a, parse_program('[{"op": "word_count", "n": 5}, {"op": "contains", "letter": "e"}]'))


def test_planner_messages_are_few_shot_question_program_pairs():
    from grpo_lab.tasks import PLANNER_SYSTEM, planner_messages

    shots = get_task("constraints").train(3, seed=0)
    q = get_task("constraints").heldout(1, seed=0)[0].question
    msgs = planner_messages(q, shots)
    assert msgs[0] == {"role": "system", "content": PLANNER_SYSTEM} and msgs[-1] == {"role": "user", "content": q}
    assert [m["role"] for m in msgs[1:-1]] == ["user", "assistant"] * 3
    for shot, reply in zip(shots, msgs[2:-1:2]):  # each shot's reply is its program, which parses back to it
        assert parse_program(reply["content"]) == program_for(shot)


# ------------------------------------------------------------------------------------------ many prompts in lockstep


def test_multi_proposal_matches_one_proposal_per_prompt():
    import numpy as np

    from grpo_lab.ensemble import HFMultiProposal

    model, tok = _tiny_lm()
    prompts = ["Sentence:", "A longer prompt, padded less:", "x"]
    many = HFMultiProposal(model, tok, prompts)
    refs = [hf_proposal(model, tok, p) for p in prompts]
    a, b, c = (tok.convert_tokens_to_ids(ch) for ch in "abc")

    def same(keys):
        got = many.batch_many(keys)
        for (t, ids), lp in zip(keys, got, strict=True):
            assert np.allclose(lp, refs[t](ids), atol=1e-4), (t, ids)

    same([(0, ()), (1, ()), (2, ()), (0, ())])  # left-padded prompts of three lengths
    same([(2, (a,)), (0, (b,)), (0, (c,)), (1, (a,))])  # from the cache, rows reordered and duplicated
    passes = many.forward_passes
    same([(0, (c, a)), (0, (c, b)), (2, (a, a))])  # task 1 finished: its rows dropped
    assert many.forward_passes == passes + 1
    same([(1, (b, b, b)), (0, (c, b, a))])  # a parent not in the cache: recomputed in full
    assert many.batch_many([]) == []


def test_smc_and_best_of_n_many_equal_the_one_task_runs():
    from grpo_lab.ensemble import HFMultiProposal, best_of_n_many, smc_steer_many

    model, tok = _tiny_lm()
    prompts = ["Sentence:", "Another, longer prompt:", "Q"]
    progs = [
        parse_program('[{"op": "not_contains", "letter": "e"}, {"op": "max_word_len", "n": 3}]'),
        parse_program('[{"op": "not_contains", "letter": "a"}]'),
        parse_program('[{"op": "word_count", "n": 2}]'),
    ]
    many = HFMultiProposal(model, tok, prompts)
    got = smc_steer_many(many, [p.potential for p in progs], seeds=[3, 4, 5], n_particles=6, max_tokens=7)
    for k, (prompt, prog) in enumerate(zip(prompts, progs)):
        lm = hf_proposal(model, tok, prompt)
        want = smc_steer(
            lm, prog.potential, decode=lm.decode, eos_id=lm.eos_id, n_particles=6, max_tokens=7, seed=3 + k
        )
        assert [p.ids for p in got[k].particles] == [p.ids for p in want.particles]
        assert (got[k].tokens, got[k].resamples) == (want.tokens, want.resamples)
    verifies = [lambda t, p=p: p.potential(t, True) == 0.0 for p in progs]
    many = HFMultiProposal(model, tok, prompts)
    got = best_of_n_many(many, verifies, n=9, budgets=[20, None, 12], seeds=[0, 1, 2], max_tokens=5, chunk=3)
    for k, (prompt, verify) in enumerate(zip(prompts, verifies)):
        lm = hf_proposal(model, tok, prompt)
        want = best_of_n(lm, verify, decode=lm.decode, eos_id=lm.eos_id, n=9, budget=[20, None, 12][k], max_tokens=5,
                         chunk=3, seed=k)  # fmt: skip
        assert got[k] == want
    assert got[0].tokens <= 20 and got[2].tokens <= 12


def test_drive_many_answers_all_loops_in_one_call_per_step():
    from grpo_lab.ensemble import drive_many
    from grpo_lab.ensemble.smc import sample_loop

    calls = []

    def answer(keys):
        calls.append(len(keys))
        return [toy_model(ids) for _, ids in keys]

    loops = [sample_loop(n, toy_decode, EOS_ID, LENGTH, random.Random(n)) for n in (1, 3, 2)]
    out = drive_many(loops, answer)
    assert [len(o) for o in out] == [1, 3, 2] and len(calls) <= LENGTH and calls[0] == 6
    assert all(1 <= used <= LENGTH for o in out for _, used in o)


def test_multi_proposal_with_a_shared_prefix_and_greedy_loops():
    import numpy as np

    from grpo_lab.ensemble import HFMultiProposal, drive, drive_many, greedy_loop

    model, tok = _tiny_lm()
    prefix, prompts = "Few-shot examples here. ", ["Q: one", "Q: a longer second", "Q"]
    many = HFMultiProposal(model, tok, prompts, prefix=prefix)
    refs = [hf_proposal(model, tok, prefix + p) for p in prompts]
    keys = [(0, ()), (1, ()), (2, ())]
    for (t, ids), lp in zip(keys, many.batch_many(keys)):
        assert np.allclose(lp, refs[t](ids), atol=1e-4)
    a = tok.convert_tokens_to_ids("a")
    keys = [(1, (a,)), (0, (a,)), (0, (a,))]  # extended from the cache, after the prefix
    for (t, ids), lp in zip(keys, many.batch_many(keys)):
        assert np.allclose(lp, refs[t](ids), atol=1e-4)
    # greedy decoding of all prompts at once equals greedy decoding of each alone
    many = HFMultiProposal(model, tok, prompts, prefix=prefix)
    stop = lambda text: " " in text  # noqa: E731
    out = drive_many([greedy_loop(many.decode, many.eos_id, 6, stop) for _ in prompts], many.batch_many)
    alone = [drive(greedy_loop(r.decode, r.eos_id, 6, stop), lambda pre, r=r: [r(i) for i in pre]) for r in refs]
    assert out == alone and all(1 <= n <= 6 for _, n in out)
    assert many.forward_passes <= 1 + 6  # the prefix once, then one pass per step for all prompts
