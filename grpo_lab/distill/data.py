"""Sequence-level distillation data: what the teachers wrote, voted, verified, with rationales.

**Sequence-level KD** (Kim & Rush, arXiv 1606.07947) is plain supervised fine-tuning on text the teachers
wrote, so any tokenizer works. With an ensemble the text is the majority-voted answer
(``grpo_lab.ensemble.voting.majority_vote``), optionally filtered by a verifier; with rationales, TinyLLM
(Tian et al., arXiv 2402.04616) gives each teacher its own prompt prefix and sums the per-teacher losses with
weights. Through TRL, sequence-level KD is ``trl.SFTTrainer`` on the rows of ``to_prompt_completion_rows``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from grpo_lab.ensemble.voting import majority_vote
from grpo_lab.rewards import extract_answer
from grpo_lab.tasks import Problem

__all__ = [
    "DistillExample",
    "gold_dataset",
    "teacher_answers",
    "voted_dataset",
    "verified_dataset",
    "rationale_dataset",
    "to_prompt_completion_rows",
]


@dataclass
class DistillExample:
    """One supervised example: the student reads ``prompt`` and learns to write ``completion`` (+ EOS).

    ``weight`` multiplies this example's loss (TinyLLM's per-teacher weights); ``source`` names the teacher
    or the rule that produced it; ``agreement`` is the ensemble's vote share when it came from a vote.
    An empty (or blank) prompt or completion raises ``ValueError``: it would give no supervised token.
    """

    prompt: str
    completion: str
    weight: float = 1.0
    source: str = ""
    agreement: float | None = None

    def __post_init__(self):
        # sft_batch would accept both silently: an empty prompt leaves the first completion token with no
        # position to predict it from, and an empty completion trains the student only to stop.
        if not self.prompt or not self.prompt.strip():
            raise ValueError(
                f"DistillExample has an empty prompt (completion {self.completion!r}): the student "
                "must read the question; build the prompt with the task's prompt (plus any teacher "
                "prefix), or drop the example"
            )
        if not self.completion or not self.completion.strip():
            raise ValueError(
                f"DistillExample has an empty completion (prompt {self.prompt!r}): there is nothing "
                "to learn but stopping; drop examples whose teacher gave no answer before building "
                "them (voted_dataset and rationale_dataset already skip them)"
            )


def gold_dataset(problems: Sequence[Problem]) -> list[DistillExample]:
    """One example per problem with its gold answer as the completion (``source="gold"``): the baseline that
    any distillation from teachers has to beat, since a verifier that checks against gold labels implies them.
    Problems whose gold answer is blank are skipped (they would give no supervised token)."""
    return [DistillExample(p.prompt, p.answer, source="gold") for p in problems if p.answer and p.answer.strip()]


@torch.no_grad()
def teacher_answers(
    models: Sequence,
    tokenizer,
    problems: Sequence[Problem],
    *,
    samples_per_model: int = 1,
    temperature: float = 0.7,
    max_completion_length: int = 8,
    batch_size: int = 256,
    seed: int = 0,
) -> list[list[str]]:
    """For each problem, the answers of every teacher model: ``out[i]`` holds ``len(models) * samples_per_model``
    strings.

    ``samples_per_model == 1`` with ``temperature == 0`` is greedy decoding (each model's single best
    answer); more samples at ``temperature > 0`` add self-consistency votes (Wang et al., arXiv 2203.11171).
    Answers are stripped completions in model order (model 0's samples first).
    """
    from grpo_lab.rollout import sample_groups

    gen = torch.Generator().manual_seed(seed)
    out: list[list[str]] = [[] for _ in problems]
    prompts = [p.prompt for p in problems]
    for m in models:
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i : i + batch_size]
            r = sample_groups(
                m,
                tokenizer,
                chunk,
                samples_per_model,
                max_completion_length=max_completion_length,
                temperature=temperature,
                do_sample=temperature > 0,
                generator=gen,
            )
            for j in range(len(chunk)):
                out[i + j].extend(t.strip() for t in r.texts[j * samples_per_model : (j + 1) * samples_per_model])
    return out


def voted_dataset(
    problems: Sequence[Problem],
    answers: Sequence[Sequence[str | None]],
    *,
    verifier: Callable[[Problem, str], bool] | None = None,
    min_agreement: float = 0.0,
    vote_weights: Sequence[float] | None = None,
    judge: Callable[[Problem, str], bool] | None = None,
    exact: bool = False,
) -> tuple[list[DistillExample], dict]:
    """Sequence-level distillation data from an ensemble: one example per problem whose vote survives.

    For problem ``i`` the ensemble's ``answers[i]`` are majority-voted (equivalent answers pooled; optional
    per-answer ``vote_weights``). The example is kept when the vote share is at least ``min_agreement``
    (disagreement is uncertainty) and, if a ``verifier(problem, answer)`` is given, when the verifier
    accepts it (with a verifiable task, ``task.check``). Returns ``(examples, stats)`` with counts of kept,
    dropped for low agreement, dropped by the verifier, and ``label_accuracy``, the share of kept labels that
    are right (the label noise the student will inherit): judged by ``judge(problem, label)`` when given (a
    label-free verifier measures it without reading any gold answer), else by exact match with the gold
    answer. Without a ``verifier`` this is the unverified consensus used as pseudo-labels (TTRL, Zuo et al.,
    arXiv 2504.16084). ``exact=True`` votes on the exact stripped texts (a plurality, ties to the first seen)
    instead of pooling equivalent answers: for answers whose working is the answer (Countdown's steps), and
    fast (the equivalence check may call math-verify).
    """
    if len(problems) != len(answers):
        raise ValueError(f"{len(problems)} problems but {len(answers)} answer lists")
    kept: list[DistillExample] = []
    low = rejected = empty = correct_labels = 0
    for p, ans in zip(problems, answers):
        if exact:
            winner, share = _plurality(ans)
        else:
            vote = majority_vote(list(ans), None if vote_weights is None else list(vote_weights))
            winner, share = vote.answer, vote.agreement
        if winner is None:
            empty += 1
            continue
        if share < min_agreement:
            low += 1
            continue
        if verifier is not None and not verifier(p, winner):
            rejected += 1
            continue
        label = str(winner).strip()
        correct_labels += int(judge(p, label) if judge is not None else label == p.answer)
        kept.append(DistillExample(p.prompt, str(winner).strip(), 1.0, "vote", share))
    stats = {
        "problems": len(problems),
        "kept": len(kept),
        "no_answer": empty,
        "low_agreement": low,
        "rejected_by_verifier": rejected,
        "label_accuracy": correct_labels / max(len(kept), 1),
    }
    return kept, stats


def _plurality(answers: Sequence[str | None]) -> tuple[str | None, float]:
    """The most frequent stripped non-empty text (ties: the first seen) and its share of all answers."""
    texts = [str(a).strip() for a in answers if a is not None and str(a).strip()]
    if not texts:
        return None, 0.0
    best = max(dict.fromkeys(texts), key=texts.count)
    return best, texts.count(best) / len(answers)


def verified_dataset(
    problems: Sequence[Problem],
    answers: Sequence[Sequence[str | None]],
    verifier: Callable[[Problem, str], bool],
) -> tuple[list[DistillExample], dict]:
    """Rejection sampling with a verifier: for each problem, the most frequent of its sampled answers that the
    verifier accepts (ties: the first sampled); problems with no accepted answer are dropped.

    The data of rejection-sampling fine-tuning and expert iteration (STaR, Zelikman et al., arXiv 2203.14465;
    RFT, Yuan et al., arXiv 2308.01825): with a label-free verifier the kept answers are right by construction
    and no gold answer was read. Each distinct answer of a problem is checked once. Returns ``(examples,
    stats)``: ``problems``, ``kept``, ``samples`` (answers in all), ``verifier_calls``, ``accepted_samples``.
    """
    if len(problems) != len(answers):
        raise ValueError(f"{len(problems)} problems but {len(answers)} answer lists")
    kept: list[DistillExample] = []
    calls = accepted = samples = 0
    for p, ans in zip(problems, answers):
        texts = [str(a).strip() for a in ans if a is not None and str(a).strip()]
        samples += len(texts)
        verdict: dict[str, bool] = {}
        for t in dict.fromkeys(texts):
            verdict[t] = bool(verifier(p, t))
            calls += 1
        good = [t for t in texts if verdict[t]]
        accepted += len(good)
        if good:
            best = max(dict.fromkeys(good), key=good.count)  # most frequent; max keeps the first of a tie
            kept.append(DistillExample(p.prompt, best, 1.0, "verified", good.count(best) / len(texts)))
    stats = {
        "problems": len(problems),
        "kept": len(kept),
        "samples": samples,
        "verifier_calls": calls,
        "accepted_samples": accepted,
    }
    return kept, stats


def rationale_dataset(
    problems: Sequence[Problem],
    teacher_outputs: dict[str, Sequence[str]],
    *,
    prefixes: dict[str, str],
    weights: dict[str, float] | None = None,
    answer_of: Callable[[str], str | None] | None = None,
    verifier: Callable[[Problem, str], bool] | None = None,
    answer_weight: float = 1.0,
) -> list[DistillExample]:
    """TinyLLM-style multi-teacher rationale data (Tian et al., arXiv 2402.04616).

    ``teacher_outputs[name][i]`` is teacher ``name``'s completion for ``problems[i]``: a rationale ending in
    an answer. Each teacher gets its own prompt prefix (``prefixes[name]``, e.g. ``"[A]"``), so the student
    learns every teacher's way of reasoning without having to average them into one; each example carries
    the teacher's weight (``weights``, default 1). With a ``verifier`` (and ``answer_of`` to pull the answer
    out of a rationale; default ``rewards.extract_answer``) rationales with wrong answers are dropped. When
    ``answer_weight > 0`` each problem also yields a plain ``prompt -> answer`` example (the majority answer of
    the kept rationales), which is what the student is asked at test time. The total loss of
    ``train_student`` on these examples is then ``answer_weight * L_answer + sum_k w_k * L_rationale_k``.
    """
    answer_of = answer_of or extract_answer
    weights = weights or {}
    missing = set(teacher_outputs) - set(prefixes)
    if missing:
        raise ValueError(f"no prompt prefix for teacher(s) {sorted(missing)}: one prefix per teacher")
    out: list[DistillExample] = []
    for i, p in enumerate(problems):
        answers = []
        for name, comps in teacher_outputs.items():
            text = comps[i].strip()
            ans = answer_of(text)
            if ans is None or (verifier is not None and not verifier(p, ans)):
                continue
            answers.append(ans)
            out.append(DistillExample(prefixes[name] + p.prompt, text, float(weights.get(name, 1.0)), name))
        if answer_weight > 0 and answers:
            vote = majority_vote(answers)
            winner, share = vote.answer, vote.agreement
            out.append(DistillExample(p.prompt, str(winner).strip(), answer_weight, "answer", share))
    return out


def to_prompt_completion_rows(examples: Sequence[DistillExample]) -> list[dict]:
    """Rows ``{"prompt", "completion"}`` for ``trl.SFTTrainer`` (sequence-level KD through TRL)."""
    return [{"prompt": e.prompt, "completion": e.completion} for e in examples]
