"""Iterative consensus: members answer, see each other's answers and revise until they agree.

The loop follows ICE (Omar, Glicksberg, Nadkarni, Klang, medRxiv 10.1101/2024.12.25.24319629, later
Computers in Biology and Medicine 196:110731, 2025). Members are generators, any callable from chat
messages to text, so the same loop runs scripted fakes in tests and real models
(``grpo_lab.ensemble.sampling.hf_generator``) in notebooks.

``ice_rounds`` is the measured form: members are callables from a prompt to ``(answer, reason)``, revision
prompts carry the others' answers with short reasons (``revision_prompt``), and each round reports the share of
members that changed their answer, whether the members converged, and the tokens spent, so ICE can be compared
with a vote of the same token cost; ``ice_many`` runs those rounds for many questions with batched members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from grpo_lab.ensemble.voting import _TIE_TOL, Vote, majority_vote
from grpo_lab.rewards import answers_match, extract_answer

__all__ = [
    "Generator",
    "DEFAULT_CONSENSUS_SYSTEM",
    "ConsensusTurn",
    "ConsensusRound",
    "ConsensusResult",
    "consensus_prompt",
    "iterative_consensus",
    "Member",
    "IceRound",
    "IceRun",
    "revision_prompt",
    "same_text",
    "ice_rounds",
    "ice_many",
    "BatchMember",
]

Generator = Callable[[list[dict]], str]  # chat messages -> reply text

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
    """One round: every member's ``turns`` and the ``vote`` over their answers."""

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
        return [
            {
                "round": r.round,
                "member": t.member,
                "answer": t.answer,
                "changed": t.changed,
                "agreement": round(r.vote.agreement, 3),
            }
            for r in self.rounds
            for t in r.turns
        ]

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


def consensus_prompt(
    question: str, own: ConsensusTurn, others: list[ConsensusTurn], max_reason_chars: int = 300
) -> str:
    """The follow-up a member sees in a revision round: the other members' answers with (the end of) their
    reasoning, its own previous answer, and the request to reconsider and answer in the same format."""
    lines = ["Other models answered the same question:"]
    for t in others:
        ans = t.answer if t.answer is not None else "no final answer"
        lines.append(f"- {t.member} answered {ans}. Their reasoning: {_trim(t.text, max_reason_chars)}")
    mine = own.answer if own.answer is not None else "no final answer"
    lines.append(
        f"Your previous answer was {mine}. Check the reasoning above and yours, then give your final answer "
        "(keep it if you still think it is right). End with '#### <number>'."
    )
    return "\n".join(lines)


def _changed(old: str | None, new: str | None) -> bool:
    """A change of mind: answering where it did not before (or the reverse), or a non-equivalent answer."""
    return (old is None) != (new is None) or (new is not None and not answers_match(new, old))


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
    matter. How many rounds to allow is the caller's choice (``max_rounds``).
    """
    gens = list(generators)
    if not gens:
        raise ValueError("iterative_consensus needs at least one generator")
    if max_rounds < 1:
        raise ValueError("max_rounds counts round 0, so it must be >= 1")
    names = list(names) if names is not None else [f"model {chr(65 + i) if i < 26 else i}" for i in range(len(gens))]
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
                follow_up = consensus_prompt(question, prev[i], others, max_reason_chars)
                convs[i] = convs[i] + [{"role": "user", "content": follow_up}]
            text = gen([dict(m) for m in convs[i]])
            text = text if isinstance(text, str) else str(text)
            convs[i] = convs[i] + [{"role": "assistant", "content": text}]
            ans = extract(text)
            turns.append(ConsensusTurn(names[i], r, text, ans, prev is not None and _changed(prev[i].answer, ans)))
        vote = majority_vote([t.answer for t in turns], weights)
        rounds.append(ConsensusRound(r, turns, vote))
        if vote.answer is not None and vote.agreement >= threshold - _TIE_TOL:
            return ConsensusResult(vote.answer, True, False, rounds, names)
        prev = turns
    return ConsensusResult(rounds[-1].vote.answer, False, True, rounds, names)


# --------------------------------------------------------------------------------------------------
# ICE with answer-and-reason members: revision rounds measured (change rate, convergence, tokens)
# --------------------------------------------------------------------------------------------------

Member = Callable[[str], tuple]  # prompt -> (answer, reason) or (answer, reason, tokens generated)


def revision_prompt(
    question: str, own_answer: str | None, others: Sequence[tuple[str, str | None, str]], max_reason_chars: int = 200
) -> str:
    """The prompt of an ICE revision round (Omar et al., medRxiv 10.1101/2024.12.25.24319629): the question, each
    other member's ``(name, answer, reason)`` with the reason cut to its last ``max_reason_chars`` characters, the
    member's own previous answer, and the request to reconsider. The answer line is stated so a member may
    change it: a prompt that only asks to "check" invites members to repeat themselves."""
    lines = [question, "", "Other members answered:"]
    for name, answer, reason in others:
        lines.append(
            f"- {name}: {answer if answer is not None else 'no answer'}. Reason: {_trim(reason, max_reason_chars)}"
        )
    mine = own_answer if own_answer is not None else "no answer"
    lines += ["", f"Your previous answer: {mine}.",
              "Weigh their reasons against yours. If theirs are better, change your answer; otherwise keep it. "
              "Give your answer and a one-sentence reason."]  # fmt: skip
    return "\n".join(lines)


def same_text(a: str | None, b: str | None) -> bool:
    """Answers equal up to case, spacing and a final period; None equals nothing (not even None)."""
    if a is None or b is None:
        return False
    norm = lambda s: " ".join(s.split()).rstrip(".").casefold()  # noqa: E731
    return norm(a) == norm(b)


def _plurality(answers: Sequence[str | None], same: Callable) -> str | None:
    """The answer most members gave (grouped by ``same``), ties to the first seen; None when nobody answered."""
    groups: list[list[str]] = []
    for a in answers:
        if a is None:
            continue
        for g in groups:
            if same(a, g[0]):
                g.append(a)
                break
        else:
            groups.append([a])
    return max(groups, key=len)[0] if groups else None  # max keeps the first of equal lengths


@dataclass
class IceRound:
    """One round of ``ice_rounds``: each member's ``answers`` and ``reasons``, who ``changed`` (False in round 0),
    ``change_rate`` (share of members that changed), ``converged`` (every member gave the same answer),
    ``vote`` (the plurality answer) and the ``tokens`` the members generated."""

    round: int
    answers: list[str | None]
    reasons: list[str]
    changed: list[bool]
    change_rate: float
    converged: bool
    vote: str | None
    tokens: int


@dataclass
class IceRun:
    """``answer``: the converged answer, else the last round's plurality (majority fallback); ``tokens``: all
    rounds together, for a vote of the same cost."""

    rounds: list[IceRound]
    answer: str | None
    converged: bool
    tokens: int
    members: list[str]


def _ask(out, count_tokens: Callable[[str], int]) -> tuple[str | None, str, int]:
    """A member's reply ``(answer, reason[, tokens])`` read as ``(answer, reason, tokens)``; tokens counted with
    ``count_tokens`` when the member does not say."""
    out = tuple(out)
    answer, reason = out[0], str(out[1]) if len(out) > 1 else ""
    tokens = int(out[2]) if len(out) > 2 else count_tokens(f"{answer or ''} {reason}")
    return (None if answer is None else str(answer)), reason, tokens


def ice_rounds(
    question: str,
    members: Sequence[Member],
    *,
    max_rounds: int = 3,
    names: Sequence[str] | None = None,
    same: Callable[[str | None, str | None], bool] = same_text,
    count_tokens: Callable[[str], int] = lambda s: len(s.split()),
    max_reason_chars: int = 200,
) -> IceRun:
    """ICE (iterative consensus ensemble; Omar, Glicksberg, Nadkarni, Klang, medRxiv 10.1101/2024.12.25.24319629)
    with members that return an answer and a short reason, measured round by round.

    Round 0: each member gets ``question``. Round r >= 1: each gets ``revision_prompt`` with the others' round
    r-1 answers and reasons. A member changed in round r when ``not same(answer_r, answer_{r-1})`` (answering
    where it gave None counts as a change); ``change_rate = changed / members``. A round converged when every
    member's answer is ``same`` as the first one (a None prevents it); the run stops there. ``max_rounds`` counts
    round 0, as ``iterative_consensus`` does. ``tokens`` per round: the third element a member returns, else
    ``count_tokens(answer + reason)`` (words by default: pass the tokenizer's count for matched budgets).
    ``ice_many`` runs the same rounds for many questions with batched members.
    """
    batched = [lambda prompts, m=m: [m(p) for p in prompts] for m in members]
    return ice_many([question], batched, max_rounds=max_rounds, names=names, same=same,
                    count_tokens=count_tokens, max_reason_chars=max_reason_chars)[0]  # fmt: skip


BatchMember = Callable[[list[str]], Sequence[tuple]]  # prompts -> one (answer, reason[, tokens]) per prompt


def ice_many(
    questions: Sequence[str],
    members: Sequence[BatchMember],
    *,
    max_rounds: int = 3,
    names: Sequence[str] | None = None,
    same: Callable[[str | None, str | None], bool] = same_text,
    count_tokens: Callable[[str], int] = lambda s: len(s.split()),
    max_reason_chars: int = 200,
) -> list[IceRun]:
    """``ice_rounds`` (ICE, Omar et al., medRxiv 10.1101/2024.12.25.24319629) for many questions at once, one
    ``IceRun`` per question, each exactly what ``ice_rounds`` gives for it alone.

    A member here takes a list of prompts and returns one reply per prompt, in order: in each round, member i
    is called once with the prompts of every question that has not converged yet (a batched generation on a
    real model instead of one call per question). Everything else is ``ice_rounds``'s: its docstring has the
    rules for changes, convergence, the plurality fallback and tokens.
    """
    if not members:
        raise ValueError("ice_rounds needs at least one member")
    if max_rounds < 1:
        raise ValueError("max_rounds counts round 0, so it must be >= 1")
    m = len(members)
    names = list(names) if names is not None else [chr(65 + i) if i < 26 else str(i) for i in range(m)]
    if len(names) != m:
        raise ValueError(f"{m} members but {len(names)} names")
    rounds: list[list[IceRound]] = [[] for _ in questions]
    active = list(range(len(questions)))
    for r in range(max_rounds):
        if not active:
            break
        replies: dict[int, list] = {q: [] for q in active}
        for i, member in enumerate(members):
            prompts = []
            for q in active:
                prev = rounds[q][-1] if rounds[q] else None
                if prev is None:
                    prompts.append(questions[q])
                else:
                    others = [(names[k], prev.answers[k], prev.reasons[k]) for k in range(m) if k != i]
                    prompts.append(revision_prompt(questions[q], prev.answers[i], others, max_reason_chars))
            outs = list(member(prompts))
            if len(outs) != len(prompts):
                raise ValueError(f"member {names[i]} returned {len(outs)} replies for {len(prompts)} prompts")
            for q, out in zip(active, outs):
                replies[q].append(_ask(out, count_tokens))
        for q in active:
            prev = rounds[q][-1] if rounds[q] else None
            answers, reasons, tokens = (list(x) for x in zip(*replies[q]))
            changed = [prev is not None and _revised(prev.answers[i], a, same) for i, a in enumerate(answers)]
            converged = answers[0] is not None and all(same(a, answers[0]) for a in answers)
            vote = answers[0] if converged else _plurality(answers, same)
            rounds[q].append(IceRound(r, answers, reasons, changed, sum(changed) / m, converged, vote, sum(tokens)))
        active = [q for q in active if not rounds[q][-1].converged]
    return [IceRun(rs, rs[-1].vote, rs[-1].converged, sum(x.tokens for x in rs), list(names)) for rs in rounds]


def _revised(old: str | None, new: str | None, same: Callable) -> bool:
    """A change of mind: an answer where there was none (or the reverse), or one not ``same`` as before."""
    if old is None or new is None:
        return (old is None) != (new is None)
    return not same(old, new)
