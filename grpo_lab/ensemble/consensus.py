"""Iterative consensus: members answer, see each other's answers and revise until they agree.

The loop follows ICE (Omar, Glicksberg, Nadkarni, Klang, medRxiv 10.1101/2024.12.25.24319629, later
Computers in Biology and Medicine 196:110731, 2025). Members are generators, any callable from chat
messages to text, so the same loop runs scripted fakes in tests and real models
(``grpo_lab.ensemble.sampling.hf_generator``) in notebooks.
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
