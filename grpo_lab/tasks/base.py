"""The task interface: a ``Problem``, a ``Task`` with a train / held-out split, and the split rule.

Design notes:

- Every task has a problem space that is split once, by a hash of the problem, into a training part (4/5)
  and a held-out part (1/5). Training draws only from the first and evaluation only from the second, so
  "held-out accuracy" means problems the model never saw, whatever the seeds.
- A ``Problem`` carries the plain prompt for tiny models (``"12+35="``), the question for chat models and
  the gold answer as a string; ``Task.check`` decides correctness, so Countdown (many right answers),
  arithmetic (one) and GSM8K (equivalence of a final answer in free text) share one interface, and so do
  the trainers, the reward and ``evaluation.evaluate``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from grpo_lab.errors import GrpoLabError


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


class DatasetFormatError(ValueError, GrpoLabError):
    """A dataset row is malformed; the message names the row and the fix."""


def _bucket(key: str, n: int = 5) -> int:
    """A stable hash bucket (independent of PYTHONHASHSEED) used to split a problem space."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % n


def is_heldout_key(key: str) -> bool:
    """True for the 1/5 of a problem space reserved for evaluation."""
    return _bucket(key) == 0


class Task:
    """Base class: a finite problem space split into train and held-out parts by ``is_heldout_key``."""

    name = "task"
    has_strict_check = False  # True where check_strict (a format-demanding check) exists
    chat_prompts = False  # True where prompts are rendered with a tokenizer's chat template (get_task passes it)

    def key(self, problem: Problem) -> str:
        return problem.prompt

    def _random_problem(self, rng: random.Random) -> Problem:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, problem: Problem, answer: str | None) -> bool:
        """True if ``answer`` (a completion, or None) is correct for ``problem``: here, exactly the gold string."""
        if answer is None:
            return False
        return answer.strip() == problem.answer

    def check_strict(self, problem: Problem, completion: str) -> bool:
        """A check that also demands the answer's format (GSM8K's ``#### x`` line); tasks without one refuse."""
        raise NotImplementedError(f"task {self.name!r} has no format-strict check (has_strict_check is False)")

    def extract(self, completion: str) -> str | None:
        """The answer a completion states, for voting over samples (``evaluation.evaluate`` with ``k``).

        Char-level tasks answer with the bare completion (``"47"``), so it is the stripped text (None when
        empty); tasks whose completions hold reasoning override this.
        """
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
            if is_heldout_key(self.key(p)) == want_heldout:
                out.append(p)
            if tries > 200 * (n + 10):
                raise RuntimeError(f"{self.name}: could not draw {n} {split} problems")
        return out

    def train(self, n: int, seed: int = 0) -> list[Problem]:
        return self.sample(n, seed, "train")

    def heldout(self, n: int, seed: int = 0) -> list[Problem]:
        return self.sample(n, seed, "test")
