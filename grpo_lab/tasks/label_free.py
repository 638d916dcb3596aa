"""Verifiers that provably read no gold answer: the problem is sealed before the checker sees it.

The reasoning stack's claim (GRPO with a verifier -> an ensemble -> consensus -> distillation -> repeat) is that
it builds capability where nobody wrote the answers down. That claim is only tested when the verifier the stack
uses cannot read a stored answer: a checker that compares with the gold answer implies the gold labels, and then
plain supervised learning on those labels is a free upper bound.

``seal(problem, readable)`` returns a copy in which ``answer`` and every ``meta`` field outside ``readable`` are
replaced by a ``Sealed`` object that raises ``GoldLabelRead`` on any use (comparison, ``str``, ``int``, ``len``,
hashing, iteration, attribute access). ``LabelFreeVerifier`` calls ``task.check`` on sealed problems only, so
a checker that touches a gold field fails loudly instead of quietly using it, and it counts its calls (a cost the
stage table reports). ``Task.statement_fields`` names what a task's statement is: Countdown's numbers and target,
both in the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from grpo_lab.errors import GrpoLabError
from grpo_lab.tasks.base import Problem, Task

__all__ = ["GoldLabelRead", "Sealed", "seal", "LabelFreeVerifier"]


class GoldLabelRead(GrpoLabError, RuntimeError):
    """A label-free verifier touched a gold field (the stored answer or a solution)."""


class Sealed:
    """A gold field that must not be read: every use raises ``GoldLabelRead`` naming the field."""

    __slots__ = ("_field",)

    def __init__(self, field: str):
        object.__setattr__(self, "_field", field)

    def _refuse(self, *args, **kwargs):
        raise GoldLabelRead(
            f"the verifier read the gold field {object.__getattribute__(self, '_field')!r}: a label-free verifier "
            "may read only the problem's statement (Task.statement_fields)"
        )

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __hash__ = __str__ = __int__ = __index__ = __float__ = __bool__ = __len__ = __iter__ = _refuse  # type: ignore[assignment]
    __contains__ = __getitem__ = __format__ = __add__ = __radd__ = __mul__ = _refuse  # type: ignore[assignment]

    def __getattr__(self, name):
        self._refuse()

    def __repr__(self) -> str:  # shown in tracebacks and reprs of sealed problems, so it must not raise
        return f"<sealed {object.__getattribute__(self, '_field')}>"


def seal(problem: Problem, readable: Sequence[str]) -> Problem:
    """``problem`` with ``answer`` and every ``meta`` key outside ``readable`` sealed (``Sealed``); ``prompt`` and
    ``question``, the statement a solver is given anyway, stay readable."""
    meta = {k: (v if k in readable else Sealed(f"meta[{k!r}]")) for k, v in problem.meta.items()}
    return replace(problem, answer=Sealed("answer"), meta=meta)


class LabelFreeVerifier:
    """``verifier(problem, text) -> bool``: ``task.check`` on ``seal(problem, task.statement_fields)``.

    Refuses a task that declares no statement fields (its check compares with a gold answer). ``calls`` counts
    the texts checked. A checker that reads a sealed field raises ``GoldLabelRead``, so a stage built through
    this verifier has read no gold answer: the property the stage table's ``gold_labels = 0`` states.
    """

    def __init__(self, task: Task):
        fields = getattr(task, "statement_fields", None)
        if not fields:
            raise GoldLabelRead(
                f"task {task.name!r} declares no statement_fields: its check compares with a gold answer, so no "
                "verifier of it is label-free (use Countdown, or code with unit tests)"
            )
        self.task, self.fields, self.calls = task, tuple(fields), 0

    def __call__(self, problem: Problem, text: str | None) -> bool:
        self.calls += 1
        return self.task.check(seal(problem, self.fields), text)

    def reward(self):
        """A TRL-style reward function (``prompts, completions, problem=...`` -> list of floats): 1.0 where this
        verifier accepts the stripped completion. The GRPO trainers pass the ``problem`` column; named
        ``<task>_verified`` in the training history."""

        def verified(prompts, completions, problem=None, **kwargs):
            if problem is None:
                raise ValueError("a label-free reward needs the trainer's 'problem' column")
            return [float(self(p, c.strip())) for p, c in zip(problem, completions, strict=True)]

        verified.__name__ = f"{self.task.name}_verified"
        return verified
