"""The task interface: a ``Problem``, a ``Task`` with a train / held-out split, and the split rule.

Design notes:

- Every task has a problem space that is split once, by a hash of the problem, into a training part (4/5)
  and a held-out part (1/5). Training draws only from the first and evaluation only from the second, so
  "held-out accuracy" means problems the model never saw, whatever the seeds.
- A ``Problem`` carries the plain prompt for tiny models (``"12+35="``), the question for chat models and
  the gold answer as a string; ``Task.check`` decides correctness, so Countdown (many right answers),
  arithmetic (one) and GSM8K (equivalence of a final answer in free text) share one interface, and so do
  the trainers, the reward and ``evaluation.evaluate``.
- A task given a chat model's tokenizer (``get_task(name, tokenizer=...)``) hands out problems whose
  ``prompt`` is already ``prompts.model_prompt`` of them (system prompt + question in the model's chat
  template); the plain prompt stays in ``meta["plain_prompt"]`` and keeps deciding the split. Its answers
  are then free text, so ``check`` is the lenient verifier ``rewards.is_correct`` (the final ``#### x``, or
  the last number, equal to the gold answer) instead of an exact string match.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace

from grpo_lab.tasks.prompts import ANSWER_ONLY_SYSTEM, DatasetFormatError, is_chat_tokenizer, model_prompt

__all__ = ["DatasetFormatError", "Problem", "Task", "is_heldout_key"]


@dataclass(frozen=True)
class Problem:
    """One verifiable problem.

    ``prompt``: the text a plain (non-chat) model continues, e.g. ``"12+35="``.
    ``question``: the same problem in words, for chat models.
    ``answer``: the gold answer as a string (for Countdown: the target).
    ``meta``: task-specific data (operands, numbers), used by ``Task.check``.
    """

    prompt: str
    question: str
    answer: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)


def _bucket(key: str, n: int = 5) -> int:
    """A stable hash bucket (independent of PYTHONHASHSEED) used to split a problem space."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % n


def is_heldout_key(key: str, buckets: int = 1) -> bool:
    """True for the ``buckets``/5 of a problem space reserved for evaluation (1/5 unless a task says more)."""
    return _bucket(key) < buckets


class Task:
    """Base class: a finite problem space split into train and held-out parts by ``is_heldout_key``."""

    name = "task"
    has_strict_check = False  # True where check_strict (a format-demanding check) exists
    tokenizer = None  # set by get_task: a chat tokenizer makes every prompt a rendered chat (module docstring)
    system: str | None = ANSWER_ONLY_SYSTEM  # the system prompt of chat-rendered prompts
    heldout_buckets: int = 1  # how many of the 5 hash buckets are held out (``is_heldout_key``)
    # Default completion budget (``evaluation.max_answer_tokens``): the longest answer plus EOS with a little
    # slack for the char tasks; a task that reasons first (GSM8K) needs far more.
    answer_tokens: int = 16

    @property
    def chat(self) -> bool:
        """True when this task's prompts are rendered for a chat model (``prompts.is_chat_tokenizer``)."""
        return is_chat_tokenizer(self.tokenizer)

    def render(self, problem: Problem) -> Problem:
        """``problem`` with ``prompt`` = ``prompts.model_prompt(problem, self.tokenizer, self.system)``: unchanged
        for a plain model; for a chat model the rendered chat, the plain prompt kept in ``meta["plain_prompt"]``."""
        if not self.chat or "plain_prompt" in problem.meta:
            return problem
        return replace(
            problem,
            prompt=model_prompt(problem, self.tokenizer, self.system),
            meta={**problem.meta, "plain_prompt": problem.prompt},
        )

    def describe(self) -> str:
        """The task with its settings, e.g. ``arithmetic(max_terms=2, hi=10)``, for reports."""
        hidden = getattr(self, "quiet_defaults", {})  # settings named only when they differ from these
        args = ", ".join(
            f"{k}={v}"
            for k, v in vars(self).items()
            if isinstance(v, (int, float, str))
            and k not in ("system", "source", "where")
            and not (k in hidden and v == hidden[k])
        )
        return f"{self.name}({args})"

    def key(self, problem: Problem) -> str:
        return problem.meta.get("plain_prompt", problem.prompt)

    def _random_problem(self, rng: random.Random) -> Problem:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, problem: Problem, answer: str | None) -> bool:
        """True if ``answer`` (a completion, or None) is correct for ``problem``: for a plain model exactly the
        gold string; for a chat model ``rewards.is_correct`` (its final answer equals the gold one)."""
        if answer is None:
            return False
        if self.chat:
            from grpo_lab.rewards import is_correct

            return is_correct(answer, problem.answer)
        return answer.strip() == problem.answer

    def check_many(self, problems: list[Problem], completions: list[str | None]) -> list[bool]:
        """``check`` of each (problem, completion) pair: the batch form that trainers and evaluation call, so a
        task whose check is expensive (the code task runs a sandbox per completion) can run a batch in parallel."""
        return [self.check(p, c) for p, c in zip(problems, completions, strict=True)]

    def check_strict(self, problem: Problem, completion: str) -> bool:
        """A check that also demands the answer's format (GSM8K's ``#### x`` line); tasks without one refuse."""
        raise NotImplementedError(f"task {self.name!r} has no format-strict check (has_strict_check is False)")

    def extract(self, completion: str) -> str | None:
        """The answer a completion states, for voting over samples (``evaluation.evaluate`` with ``k``).

        Char-level tasks answer with the bare completion (``"47"``), so it is the stripped text (None when
        empty); a chat model's free text goes through ``rewards.extract_answer`` (``#### x``, else the last number).
        """
        if self.chat:
            from grpo_lab.rewards import extract_answer

            return extract_answer(completion)
        text = completion.strip()
        return text or None

    def sample(self, n: int, seed: int = 0, split: str = "train") -> list[Problem]:
        """``n`` problems drawn with replacement from ``split`` (``train`` or ``test``), reproducible by ``seed``."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        want_heldout = split == "test"
        rng = random.Random(f"{self.name}:{split}:{seed}")
        out: list[Problem] = []
        tries = 0
        while len(out) < n:
            p = self._random_problem(rng)
            tries += 1
            if is_heldout_key(self.key(p), self.heldout_buckets) == want_heldout:
                out.append(self.render(p))
            if tries > 200 * (n + 10):
                raise RuntimeError(f"{self.name}: could not draw {n} {split} problems")
        return out

    def heldout_distinct(self, n: int, seed: int = 0) -> list[Problem]:
        """Up to ``n`` DIFFERENT held-out problems (``heldout`` draws with replacement), reproducible by ``seed``.

        Fewer come back when the held-out part of the problem space is smaller (2-term arithmetic over 0..10
        has about 80): a score over repeated problems would claim a precision it does not have, so callers
        report ``len()`` of what they got as the number of problems evaluated.
        """
        seen: dict[str, Problem] = {}
        for p in self.sample(max(200, 30 * n), seed=seed, split="test"):
            seen.setdefault(self.key(p), p)
            if len(seen) >= n:
                break
        return list(seen.values())

    def train(self, n: int, seed: int = 0) -> list[Problem]:
        return self.sample(n, seed, "train")

    def heldout(self, n: int, seed: int = 0) -> list[Problem]:
        return self.sample(n, seed, "test")

    def batch_metrics(self) -> dict:
        """Counts about the last ``check_many`` batch for the training history (the code task: programs the
        sandbox stopped for a forbidden operation, by kind); empty for tasks with nothing to count."""
        return {}

    def stop_after(self, tokenizer):
        """An extra stop rule for sampling (``rollout.StopAfter``) or None: decoding past the part of a
        completion that ``check`` reads is wasted (the code task stops at the first block's closing fence)."""
        return None
