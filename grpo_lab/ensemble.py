"""Ensembles at inference time: voting, disagreement as uncertainty, iterative consensus.

Design notes:

- One voting function, ``majority_vote``, serves self-consistency (many samples of one model; Wang et al.,
  arXiv 2203.11171) and voting across models: a sample and a model are both "a voter". Answers vote
  together when ``grpo_lab.rewards.answers_match`` says they are equivalent, so ``1,000``, ``1000`` and
  ``1000.0`` are one candidate, not three.
- Grouping is greedy against each group's first member (its representative). Equivalence of messy strings
  is not guaranteed to be transitive; comparing with a fixed representative makes the result depend only on
  the order of the answers, which is also the tie-break rule (first seen wins), so the vote is deterministic.
- A voter that gave no answer (None) abstains: it adds to the total weight (an ensemble where half the
  members could not answer is less sure than a unanimous one) but supports no candidate, and for the
  entropy each abstention is its own category (abstainers do not agree with each other).
- Weights for a plurality vote over open-ended answers are log-odds plus the log of the number of
  plausible wrong answers (``fit_vote_weights`` derives it). When wrong answers rarely coincide, agreement
  alone is strong evidence and accuracy mostly breaks ties; when they often coincide (small answer spaces,
  shared mistakes), a strong member's weight can outvote several weak ones.
- Uncertainty (``auroc``, ``risk_coverage``, ``expected_calibration_error``, ``brier_score``) works on plain
  sequences of confidences and correctness flags; vote agreement with n voters takes only n values, so
  calibration bins by distinct value instead of by fixed-width intervals.
- Iterative consensus (ICE; Omar, Glicksberg, Nadkarni, Klang, medRxiv 10.1101/2024.12.25.24319629, later
  Computers in Biology and Medicine 196:110731, 2025) takes generators, any callable from chat messages to
  text, so the same loop runs scripted fakes in tests and real models (``hf_generator``) in notebooks.
- The cost model (FLOPs, dated prices, expected vote accuracy) lives in ``grpo_lab.cost`` and is re-exported
  here, since COURSE.md lists it under this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

from grpo_lab.rewards import answers_match, extract_answer

__all__ = [
    "Vote", "majority_vote", "vote_items", "self_consistency", "fit_vote_weights", "estimate_wrong_answers",
    "agreement_rate", "vote_entropy", "auroc", "risk_coverage", "area_under_risk_coverage",
    "expected_calibration_error", "calibration_bins", "brier_score",
    "ConsensusTurn", "ConsensusRound", "ConsensusResult", "iterative_consensus", "consensus_prompt",
    "hf_generator", "sample_answers",
]

_TIE_TOL = 1e-9  # weighted totals closer than this are a tie (float sums of the same weights in another order)


# --------------------------------------------------------------------------------------------------
# Voting
# --------------------------------------------------------------------------------------------------


@dataclass
class Vote:
    """The outcome of a vote (COURSE.md section 4).

    ``answer``: the winning candidate's representative (its first raw spelling), None when nothing voted.
    ``agreement``: the winner's share of the total weight, in [0, 1] (abstentions count in the total).
    ``entropy``: normalized vote entropy in [0, 1]: 0 when unanimous, 1 when every voter differs.
    ``counts``: representative -> total weight (an int count when unweighted), in order first seen.
    ``groups``: for each candidate (same order), the indices of the voters that support it.
    ``n_voters``: number of voters, abstainers included.
    """

    answer: str | None
    agreement: float
    entropy: float
    counts: dict[str, float]
    groups: list[list[int]] = field(default_factory=list)
    n_voters: int = 0

    @property
    def margin(self) -> float:
        """Winner's weight minus runner-up's, as a share of the total (0 for a tie or no vote)."""
        w = sorted(self.counts.values(), reverse=True)
        total = self._total
        if not w or total <= 0:
            return 0.0
        return (w[0] - (w[1] if len(w) > 1 else 0.0)) / total

    _total: float = field(default=0.0, repr=False)


def _check_weights(weights, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    w = [float(x) for x in weights]
    if len(w) != n:
        raise ValueError(f"got {n} answers but {len(w)} weights; pass one weight per voter")
    if any(not math.isfinite(x) or x < 0 for x in w):
        raise ValueError(f"weights must be finite and >= 0 (a plurality vote has no use for negative ones); got {w}")
    return w


def majority_vote(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> Vote:
    """Plurality vote over raw answers, equivalent answers voting together (COURSE.md section 4).

    Contract:

    - candidates: each non-None answer joins the first earlier candidate whose representative it matches
      (``answers_match(answer, representative)``), else starts a new candidate; the representative is the
      first raw string of the candidate.
    - score of a candidate c: ``W_c = sum of weights of its voters`` (weight 1 each when ``weights`` is None).
    - winner: the highest ``W_c``; ties go to the candidate seen first.
    - ``agreement = W_winner / W_total`` where ``W_total`` includes abstainers (None answers).
    - ``entropy = H(q) / log(n)`` with ``q`` the shares of the candidates and of each abstainer separately,
      ``H(q) = -sum q log q`` and ``n`` the number of voters with positive weight (0 when ``n <= 1``).
      Unanimity gives 0; n voters with n different answers (or no answers) give 1.
    - no voters, or zero total weight: ``Vote(None, 0.0, ...)``; all abstained: ``answer`` None,
      ``agreement`` 0, ``entropy`` 1 (for two or more voters).

    Self-consistency (Wang et al., arXiv 2203.11171) is this vote over sampled answers of one model.
    """
    answers = list(answers)
    w = _check_weights(weights, len(answers))
    reps: list[str] = []
    groups: list[list[int]] = []
    for i, a in enumerate(answers):
        if a is None or not isinstance(a, str) or not a.strip():
            continue
        for k, rep in enumerate(reps):
            if answers_match(a, rep):
                groups[k].append(i)
                break
        else:
            reps.append(a)
            groups.append([i])
    scores = [sum(w[i] for i in g) for g in groups]
    total = sum(w)
    counts = {rep: (len(g) if weights is None else s) for rep, g, s in zip(reps, groups, scores)}
    n_pos = sum(1 for x in w if x > 0)
    if total <= 0:
        return Vote(None, 0.0, 0.0, counts, groups, len(answers), 0.0)
    # Entropy over candidates plus one category per abstainer.
    supported = {i for g in groups for i in g}
    shares = [s / total for s in scores] + [w[i] / total for i in range(len(answers)) if i not in supported]
    h = -sum(q * math.log(q) for q in shares if q > 0)
    entropy = h / math.log(n_pos) if n_pos > 1 else 0.0
    entropy = min(1.0, max(0.0, entropy))
    best = None
    for k, s in enumerate(scores):
        if s > 0 and (best is None or s > scores[best] + _TIE_TOL):
            best = k
    if best is None:
        return Vote(None, 0.0, entropy, counts, groups, len(answers), total)
    return Vote(reps[best], scores[best] / total, entropy, counts, groups, len(answers), total)


def vote_items(answer_matrix: Sequence[Sequence[str | None]], weights: Sequence[float] | None = None) -> list[Vote]:
    """``majority_vote`` for each row of an items x voters matrix of raw answers (one weight per voter/column)."""
    return [majority_vote(row, weights) for row in answer_matrix]


def self_consistency(completions: Sequence[str], extract: Callable[[str], str | None] = extract_answer,
                     weights: Sequence[float] | None = None) -> Vote:
    """Self-consistency (Wang et al., arXiv 2203.11171): extract the final answer of each sampled
    completion with ``extract`` and take the plurality vote (``majority_vote``)."""
    return majority_vote([extract(c) for c in completions], weights)


def fit_vote_weights(correct, n_wrong: float = 100.0, prior: float = 1.0, max_weight: float | None = None) -> list[float]:
    """One weight per member for a plurality vote, from a calibration set (``correct``: items x members, bool).

    Derivation (the argument of Nitzan & Paroush, "Optimal decision rules in uncertain dichotomous choice
    situations", International Economic Review 23(2):289-297, 1982, extended here to many wrong answers).
    Model: member j is right with probability p_j, independently of the others; when wrong it names one of
    ``n_wrong`` (M) wrong answers, each with probability (1 - p_j) / M. Given the ballots, candidate a with
    supporters S_a is the truth with likelihood

        L(a) = prod_{j in S_a} p_j * prod_{j not in S_a} P(j's ballot | j wrong)
             = prod_{j in S_a} p_j * prod_{j not in S_a} (1 - p_j) / M          (abstainers: factor 1 - p_j)

    Dividing by prod_j (1 - p_j) / M, the same for every candidate,

        log L(a) = const + sum_{j in S_a} w_j,     w_j = log(p_j / (1 - p_j)) + log M,

    so with a uniform prior the most likely answer is the plurality winner under weights w_j. Two limits:
    M = 1 (yes/no) gives the classic log-odds weights; M -> infinity (open-ended answers whose wrong values
    rarely coincide) makes log M dominate, so weights become nearly equal: agreement itself is strong
    evidence, and accuracy mostly decides between singletons. A member with p_j < 1 / (M + 1), worse than
    guessing among M + 1 answers, would get a negative weight; a plurality vote cannot use one (it would
    reward disagreeing with that member), so weights are clipped at 0 and, optionally, at ``max_weight``.

    p_j is estimated with add-``prior`` smoothing, ``(correct_j + prior) / (n + 2 prior)``, so a member that
    was always right on a small calibration set gets a large but finite weight. ``n_wrong`` should be the
    *effective* number of wrong answers (``estimate_wrong_answers`` measures it on calibration answers):
    small when members share mistakes, large for free-form answers.
    """
    rows = [[bool(x) for x in row] for row in correct]
    if not rows or not rows[0]:
        raise ValueError("correct must be a non-empty items x members matrix of booleans")
    m = len(rows[0])
    if any(len(r) != m for r in rows):
        raise ValueError("every row of correct must have one entry per member")
    if not n_wrong >= 1:
        raise ValueError(f"n_wrong (effective number of wrong answers) must be >= 1, got {n_wrong}")
    n = len(rows)
    out = []
    for j in range(m):
        p = (sum(r[j] for r in rows) + prior) / (n + 2 * prior)
        p = min(max(p, 1e-12), 1 - 1e-12)
        w = math.log(p / (1 - p)) + math.log(n_wrong)
        w = max(0.0, w)
        if max_weight is not None:
            w = min(w, max_weight)
        out.append(w)
    return out


def estimate_wrong_answers(answer_matrix: Sequence[Sequence[str | None]], gold: Sequence[str]) -> float:
    """Effective number of equally likely wrong answers, M = 1 / P(two wrong answers coincide).

    Over every item and every pair of members that are both wrong (a non-None answer that does not match
    the gold one), count how often the pair names the same (``answers_match``-equivalent) answer. For M
    equally likely wrong answers the collision rate is 1 / M; shared mistakes give a small M. Returns
    ``inf`` when no two wrong answers ever coincide (or there are no wrong pairs).
    """
    pairs = same = 0
    for row, g in zip(answer_matrix, gold):
        wrong = [a for a in row if a is not None and not answers_match(a, g)]
        for i in range(len(wrong)):
            for j in range(i + 1, len(wrong)):
                pairs += 1
                same += answers_match(wrong[i], wrong[j])
    return math.inf if same == 0 else pairs / same


# --------------------------------------------------------------------------------------------------
# Uncertainty
# --------------------------------------------------------------------------------------------------


def agreement_rate(votes: Sequence[Vote], threshold: float = 1.0) -> float:
    """Share of votes whose ``agreement`` reaches ``threshold`` (default 1.0: the unanimous items)."""
    votes = list(votes)
    if not votes:
        return float("nan")
    return sum(v.agreement >= threshold - _TIE_TOL for v in votes) / len(votes)


def vote_entropy(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> float:
    """Normalized vote entropy of one set of answers: ``majority_vote(answers, weights).entropy``."""
    return majority_vote(answers, weights).entropy


def _as_lists(confidence, correct) -> tuple[list[float], list[bool]]:
    c = [float(x) for x in confidence]
    y = [bool(x) for x in correct]
    if len(c) != len(y):
        raise ValueError(f"{len(c)} confidences but {len(y)} correctness flags")
    return c, y


def auroc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` as a predictor of ``labels`` (True = positive).

    Equals the Mann-Whitney probability that a random positive scores higher than a random negative, ties
    counting one half: ``AUROC = (#{s_pos > s_neg} + 0.5 #{s_pos = s_neg}) / (n_pos n_neg)`` (Hanley &
    McNeil, Radiology 143:29-36, 1982). 0.5 is chance; NaN when either class is empty. Computed by ranks
    (average ranks for ties), O(n log n).
    """
    s, y = _as_lists(scores, labels)
    n_pos = sum(y)
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = sorted(range(len(s)), key=lambda i: s[i])
    ranks = [0.0] * len(s)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and s[order[j + 1]] == s[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1  # ranks are 1-based; tied scores share their average rank
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    rank_sum = sum(r for r, lab in zip(ranks, y) if lab)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def risk_coverage(confidence, correct) -> tuple[list[float], list[float]]:
    """Selective prediction: answer only the most confident items (El-Yaniv & Wiener, JMLR 11, 2010).

    Items are sorted by decreasing confidence; for each distinct confidence level the curve has one point,
    ``coverage`` = share of items with confidence >= that level and ``accuracy`` = their share correct
    (risk = 1 - accuracy). Tied items are added together, since nothing tells them apart. Returns
    ``(coverage, accuracy)``, coverage increasing and ending at 1.
    """
    c, y = _as_lists(confidence, correct)
    if not c:
        return [], []
    order = sorted(range(len(c)), key=lambda i: -c[i])
    cov, acc = [], []
    hits = 0
    for pos, i in enumerate(order):
        hits += y[i]
        if pos + 1 == len(order) or c[order[pos + 1]] != c[i]:
            cov.append((pos + 1) / len(c))
            acc.append(hits / (pos + 1))
    return cov, acc


def area_under_risk_coverage(confidence, correct) -> float:
    """AURC: the mean selective risk (1 - accuracy) over the curve of ``risk_coverage``, each point
    weighted by the coverage it adds (a step integral). Lower is better; a confidence that does not rank
    at all (all tied) gives the plain error rate."""
    cov, acc = risk_coverage(confidence, correct)
    area, prev = 0.0, 0.0
    for c, a in zip(cov, acc):
        area += (c - prev) * (1 - a)
        prev = c
    return area


def calibration_bins(confidence, correct, bins: int | str = "auto") -> list[dict]:
    """Reliability table: ``[{"confidence", "accuracy", "count"}, ...]`` per bin, sorted by confidence.

    ``bins="unique"``: one bin per distinct confidence value. Vote agreement among n voters takes at most n
    values (1/n, 2/n, ..., 1), so fixed-width bins would split or merge them arbitrarily; binning by value
    is exact. ``bins=k`` (an int): k equal-count bins over the sorted confidences (ties kept together), the
    right choice for continuous confidences. ``"auto"``: ``"unique"`` when there are at most 20 distinct
    values, else 10 equal-count bins.
    """
    c, y = _as_lists(confidence, correct)
    if not c:
        return []
    distinct = sorted(set(c))
    if bins == "auto":
        bins = "unique" if len(distinct) <= 20 else 10
    order = sorted(range(len(c)), key=lambda i: c[i])
    if bins == "unique":
        groups = [[i for i in order if c[i] == v] for v in distinct]
    else:
        k = int(bins)
        if k < 1:
            raise ValueError("bins must be >= 1, 'unique' or 'auto'")
        groups, cur = [], []
        target = len(c) / k
        for pos, i in enumerate(order):
            cur.append(i)
            boundary = pos + 1 == len(order) or c[order[pos + 1]] != c[i]
            if boundary and len(cur) >= target - 1e-9:
                groups.append(cur)
                cur = []
        if cur:
            groups.append(cur)
    return [{"confidence": sum(c[i] for i in g) / len(g), "accuracy": sum(y[i] for i in g) / len(g), "count": len(g)}
            for g in groups]


def expected_calibration_error(confidence, correct, bins: int | str = "auto") -> float:
    """ECE = sum_b (n_b / N) |accuracy_b - mean confidence_b| over the bins of ``calibration_bins``
    (Naeini, Cooper & Hauskrecht, AAAI 2015; Guo et al., arXiv 1706.04599)."""
    table = calibration_bins(confidence, correct, bins)
    n = sum(b["count"] for b in table)
    if n == 0:
        return float("nan")
    return sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in table)


def brier_score(confidence, correct) -> float:
    """Brier score (Brier, Monthly Weather Review 78:1-3, 1950): mean of (confidence - correct)^2, in [0, 1].
    Always predicting 0.5 scores 0.25; lower is better."""
    c, y = _as_lists(confidence, correct)
    if not c:
        return float("nan")
    return sum((ci - yi) ** 2 for ci, yi in zip(c, y)) / len(c)


# --------------------------------------------------------------------------------------------------
# Iterative consensus (ICE-style)
# --------------------------------------------------------------------------------------------------

Generator = Callable[[list[dict]], str]

DEFAULT_CONSENSUS_SYSTEM = (
    "Solve the problem step by step. End your reply with the final answer on its own line as '#### <number>'."
)


@dataclass
class ConsensusTurn:
    """One member's reply in one round: raw ``text``, extracted ``answer``, and whether it ``changed``
    (not equivalent to its previous answer; always False in round 0)."""

    member: str
    round: int
    text: str
    answer: str | None
    changed: bool = False


@dataclass
class ConsensusRound:
    round: int
    turns: list[ConsensusTurn]
    vote: Vote

    @property
    def answers(self) -> list[str | None]:
        return [t.answer for t in self.turns]


@dataclass
class ConsensusResult:
    """``answer``: the consensus (or the fallback vote of the last round); ``converged``: the members reached
    the agreement threshold; ``fallback``: the round limit was hit and the answer is a vote; ``rounds``: every
    round, round 0 being the independent answers."""

    answer: str | None
    converged: bool
    fallback: bool
    rounds: list[ConsensusRound]
    members: list[str]

    def table(self) -> list[dict]:
        """One row per (round, member): ``round, member, answer, changed`` plus the round's agreement."""
        return [{"round": r.round, "member": t.member, "answer": t.answer, "changed": t.changed,
                 "agreement": round(r.vote.agreement, 3)} for r in self.rounds for t in r.turns]

    def changes(self) -> list[tuple[int, str, str | None, str | None]]:
        """Every change of mind: ``(round, member, old answer, new answer)``."""
        out = []
        for prev, cur in zip(self.rounds, self.rounds[1:]):
            for a, b in zip(prev.turns, cur.turns):
                if b.changed:
                    out.append((cur.round, b.member, a.answer, b.answer))
        return out

    def __str__(self) -> str:
        lines = []
        for r in self.rounds:
            cells = ", ".join(f"{t.member}: {t.answer}{' (changed)' if t.changed else ''}" for t in r.turns)
            lines.append(f"round {r.round}: {cells} | agreement {r.vote.agreement:.2f}")
        how = "consensus" if self.converged else "no consensus, fallback vote"
        lines.append(f"final: {self.answer} ({how})")
        return "\n".join(lines)


def _trim(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else "..." + text[-n:]  # the end holds the answer and the last steps


def consensus_prompt(question: str, own: ConsensusTurn, others: list[ConsensusTurn], max_reason_chars: int = 300) -> str:
    """The follow-up a member sees in a revision round: the other members' answers with (the end of) their
    reasoning, its own previous answer, and the request to reconsider and answer in the same format."""
    lines = ["Other models answered the same question:"]
    for t in others:
        ans = t.answer if t.answer is not None else "no final answer"
        lines.append(f"- {t.member} answered {ans}. Their reasoning: {_trim(t.text, max_reason_chars)}")
    mine = own.answer if own.answer is not None else "no final answer"
    lines.append(f"Your previous answer was {mine}. Check the reasoning above and yours, then give your final answer "
                 "(keep it if you still think it is right). End with '#### <number>'.")
    return "\n".join(lines)


def iterative_consensus(
    question: str,
    generators: Sequence[Generator],
    *,
    max_rounds: int = 3,
    threshold: float = 1.0,
    names: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    system: str | None = DEFAULT_CONSENSUS_SYSTEM,
    extract: Callable[[str], str | None] = extract_answer,
    max_reason_chars: int = 300,
) -> ConsensusResult:
    """Iterative consensus in the style of ICE (Omar et al., medRxiv 10.1101/2024.12.25.24319629; Computers
    in Biology and Medicine 196:110731, 2025): members answer, see each other's answers, revise.

    - Round 0: each generator gets ``[system, user: question]`` and answers independently.
    - Round r >= 1: each member gets its own conversation so far (question, its previous reply) plus a user
      turn built by ``consensus_prompt`` with the other members' latest answers and reasoning.
    - After every round the answers are put to ``majority_vote`` (``weights`` per member); if the winner's
      ``agreement`` reaches ``threshold`` (1.0: unanimity, a None answer prevents it) the run stops:
      ``converged``. After ``max_rounds`` rounds in total (round 0 included) without that, the answer is the
      last round's vote winner: ``fallback``.
    - Every round is recorded (``ConsensusResult.rounds``), with who changed their mind.

    A generator is any callable ``messages -> text`` (``hf_generator`` wraps a Hugging Face model); members
    are called one after another within a round, all seeing the previous round only, so their order does not
    matter. The ICE paper's exact round limit is not confirmed here; ``max_rounds`` is a parameter.
    """
    gens = list(generators)
    if not gens:
        raise ValueError("iterative_consensus needs at least one generator")
    if max_rounds < 1:
        raise ValueError("max_rounds counts round 0, so it must be >= 1")
    names = list(names) if names is not None else [f"model {chr(65 + i)}" if i < 26 else f"model {i}" for i in range(len(gens))]
    if len(names) != len(gens):
        raise ValueError(f"{len(gens)} generators but {len(names)} names")
    base = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    convs = [list(base) for _ in gens]
    rounds: list[ConsensusRound] = []
    prev: list[ConsensusTurn] | None = None
    for r in range(max_rounds):
        turns = []
        for i, gen in enumerate(gens):
            if prev is not None:
                others = [t for k, t in enumerate(prev) if k != i]
                convs[i] = convs[i] + [{"role": "user", "content": consensus_prompt(question, prev[i], others, max_reason_chars)}]
            text = gen([dict(m) for m in convs[i]])
            text = text if isinstance(text, str) else str(text)
            convs[i] = convs[i] + [{"role": "assistant", "content": text}]
            ans = extract(text)
            changed = False
            if prev is not None:
                old = prev[i].answer
                changed = (old is None) != (ans is None) or (ans is not None and not answers_match(ans, old))
            turns.append(ConsensusTurn(names[i], r, text, ans, changed))
        vote = majority_vote([t.answer for t in turns], weights)
        rounds.append(ConsensusRound(r, turns, vote))
        if vote.answer is not None and vote.agreement >= threshold - _TIE_TOL:
            return ConsensusResult(vote.answer, True, False, rounds, names)
        prev = turns
    return ConsensusResult(rounds[-1].vote.answer, False, True, rounds, names)


# --------------------------------------------------------------------------------------------------
# Real models as generators
# --------------------------------------------------------------------------------------------------


def hf_generator(model, tokenizer, *, max_new_tokens: int = 256, temperature: float = 0.0, top_k: int | None = None,
                 seed: int | None = None) -> Generator:
    """Wrap a Hugging Face causal LM + tokenizer as a generator ``messages -> text``.

    The messages are rendered with the tokenizer's chat template (generation prompt appended) and decoded
    with ``grpo_lab.rollout.generate`` (KV cache): greedy when ``temperature == 0``, else sampled at
    ``temperature`` (optionally ``top_k``) from a ``torch.Generator`` seeded with ``seed``, so a run is
    reproducible (on a GPU the sampler uses the device's global generator: seed it with ``torch.manual_seed``).
    Returns the completion text without special tokens.
    """
    import torch

    from grpo_lab.rollout import encode_prompts, generate

    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu")
    if seed is not None:
        gen.manual_seed(seed)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos

    def call(messages: list[dict]) -> str:
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids, mask = encode_prompts(tokenizer, [prompt], device)
        was_training = model.training
        model.eval()
        try:
            sample = temperature > 0
            # Sampling on CPU with an explicit generator keeps runs reproducible on any device.
            toks, cmask, _, _ = generate(model, ids, mask, max_completion_length=max_new_tokens, eos_token_id=eos,
                                         pad_token_id=pad, temperature=temperature if sample else 1.0, top_k=top_k,
                                         do_sample=sample, generator=gen if (sample and device.type == "cpu") else None)
        finally:
            model.train(was_training)
        return tokenizer.decode(toks[0][cmask[0].bool()], skip_special_tokens=True)

    return call


def sample_answers(model, tokenizer, prompts: Sequence[str], n: int, *, max_new_tokens: int = 256,
                   temperature: float = 0.7, top_k: int | None = None, seed: int = 0,
                   extract: Callable[[str], str | None] = extract_answer) -> tuple[list[list[str]], list[list[str | None]]]:
    """``n`` sampled completions per prompt (already formatted, e.g. with a chat template), decoded in one
    batch by ``grpo_lab.rollout.sample_groups``; returns ``(texts, answers)``, each ``[len(prompts)][n]``.
    The input of self-consistency: ``majority_vote(answers[i])``."""
    import torch

    from grpo_lab.rollout import sample_groups

    g = torch.Generator(device="cpu").manual_seed(seed)
    device = next(model.parameters()).device
    r = sample_groups(model, tokenizer, list(prompts), n, max_completion_length=max_new_tokens, temperature=temperature,
                      top_k=top_k, do_sample=True, generator=g if device.type == "cpu" else None)
    texts = [r.texts[i * n:(i + 1) * n] for i in range(len(prompts))]
    return texts, [[extract(t) for t in row] for row in texts]


from grpo_lab.cost import *  # noqa: E402,F401,F403  (the cost model belongs to this module in COURSE.md)
from grpo_lab.cost import __all__ as _cost_all  # noqa: E402

__all__ += list(_cost_all)
