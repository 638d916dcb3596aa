"""Held-out evaluation: greedy accuracy of a model on a task's problems.

For the char-level tasks the completion is the bare answer (``"47"``), so correctness is the task's own
``check`` on the stripped completion; chat models on GSM8K go through ``rewards.is_correct`` (issue 4's
verifier) in the capstone.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpo_lab.rollout import greedy_complete
from grpo_lab.tasks import Problem, Task


@dataclass
class EvalResult:
    accuracy: float
    n: int
    correct: list[bool]
    completions: list[str]

    def __str__(self) -> str:
        return f"accuracy: {self.accuracy:.3f} ({sum(self.correct)}/{self.n})"


def max_answer_tokens(task: Task) -> int:
    """Completion budget for a char-level task: the longest answer plus EOS, with a little slack."""
    return {"addition": 5, "arithmetic": 8, "countdown": 24}.get(task.name, 16)


def evaluate(model, tokenizer, task: Task, problems: list[Problem], max_new_tokens: int | None = None,
             batch_size: int = 512) -> EvalResult:
    """Greedy accuracy: the share of ``problems`` whose greedy completion passes ``task.check``."""
    max_new_tokens = max_new_tokens or max_answer_tokens(task)
    comps = greedy_complete(model, tokenizer, [p.prompt for p in problems], max_new_tokens, batch_size)
    correct = [task.check(p, c.strip()) for p, c in zip(problems, comps)]
    return EvalResult(sum(correct) / max(len(correct), 1), len(correct), correct, comps)
