"""Countdown written as steps, its label-free checker, an exact solver, and format-only warm-start data.

A Countdown problem gives numbers and a target (``"3 5 7->22:"``); an answer is right when it reaches the target
using each number at most once. Nothing else is needed to check it: the verifier reads the numbers and the target,
both in the prompt, and no stored solution. That is what makes Countdown the course's stand-in for the setting the
reasoning stack is for, a task whose answers can be checked but for which nobody wrote the answers down
(Countdown as an RL task with a rule-based reward: TinyZero, Pan et al. 2025, and "Cognitive Behaviors that Enable
Self-Improving Reasoners", Gandhi et al., arXiv 2503.01307).

A small model writes its answer as **steps**, one operation each, with the intermediate result spelled out::

    3*5=15,15+7=22

Each step takes two numbers still available (the given ones, or results of earlier steps), each use consuming
one, and must be exact arithmetic; the last result must be the target. The steps are the model's own worked
solution (a rationale that the checker can read line by line), and they turn a 3-number problem into two
2-operand sums a char-level model can compute. ``steps_to_expression`` rewrites them as one expression (the
answer without its working), which ``CountdownTask.check`` accepts as well.

Two things here would make Countdown's labels free, and the course uses them only as named baselines:

- ``solve``: brute-force search over every order of operations (its cost, the number of steps it tried, is
  reported). For Countdown an exact solver exists; for the tasks the stack is meant for it does not.
- Problems are generated backwards from a random expression (``CountdownTask._random_problem``), so each problem
  is born with a solution in ``meta["solution"]``: a gold field the label-free verifier must never read
  (``grpo_lab.tasks.label_free``).

``format_examples`` is the warm start that reads no solution: prompts of the task's shape whose target is drawn at
random, completed by random valid steps over the given numbers. A model trained on them writes well-formed,
correctly computed steps that ignore the target, so it reaches a target only by chance; whatever it learns
about aiming at the target comes from the verifier's reward.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

__all__ = [
    "MAX_STEPS",
    "parse_steps",
    "steps_value",
    "check_steps",
    "steps_to_expression",
    "random_steps",
    "format_examples",
    "solve",
]

MAX_STEPS = 6  # more steps than numbers is never valid; this bounds the work on any text
_STEP = re.compile(r"([0-9]{1,6})([+\-*/])([0-9]{1,6})=([0-9]{1,7})", re.ASCII)


def parse_steps(text: str) -> list[tuple[int, str, int, int]]:
    """``"3*5=15,15+7=22"`` -> ``[(3, "*", 5, 15), (15, "+", 7, 22)]``; raises ``ValueError`` on anything else.

    Steps are separated by commas; spaces are ignored; each is ``x op y=z`` with non-negative integers of at
    most 6 digits (7 for ``z``) and at most ``MAX_STEPS`` steps, so parsing any text is bounded work.
    """
    parts = text.replace(" ", "").strip(",").split(",")
    if not parts or len(parts) > MAX_STEPS or len(text) > 120:
        raise ValueError(f"not 1 to {MAX_STEPS} steps: {text[:40]!r}")
    out = []
    for part in parts:
        m = _STEP.fullmatch(part)
        if m is None:
            raise ValueError(f"not a step 'x op y=z': {part[:30]!r}")
        out.append((int(m[1]), m[2], int(m[3]), int(m[4])))
    return out


def _apply(x: int, op: str, y: int) -> int | None:
    """``x op y`` when it is a non-negative integer (the steps' rule: no fractions, no negatives), else None."""
    if op == "+":
        return x + y
    if op == "*":
        return x * y
    if op == "-":
        return x - y if x >= y else None
    return x // y if y and x % y == 0 else None


def steps_value(numbers: Sequence[int], text: str, ops: str = "+-*/") -> int | None:
    """The last result of valid steps over ``numbers``, or None when the steps are invalid.

    Valid: parsable (``parse_steps``); each operator in ``ops``; each step's operands available (a given number or an earlier result, each
    used once); each result the exact value of its operation (``-`` non-negative, ``/`` exact).
    """
    try:
        steps = parse_steps(text)
    except ValueError:
        return None
    pool = list(numbers)
    for x, op, y, z in steps:
        if op not in ops:
            return None
        for v in (x, y):
            if v not in pool:
                return None
            pool.remove(v)
        if _apply(x, op, y) != z:
            return None
        pool.append(z)
    return steps[-1][3]


def check_steps(numbers: Sequence[int], target: int, text: str, ops: str = "+-*/") -> bool:
    """True iff ``text`` is valid steps over ``numbers`` (``steps_value``) whose last result is ``target``.

    Reads only the numbers and the target: the problem's statement, never a stored answer.
    """
    return steps_value(numbers, text, ops) == target


def steps_to_expression(text: str) -> str | None:
    """The answer of valid-looking steps as one expression, without the working: ``"3*5=15,15+7=22"`` ->
    ``"3*5+7"`` (parentheses where precedence needs them); None when the text does not parse.

    Results are matched to later operands by value, most recent first, which is how the steps read.
    """
    try:
        steps = parse_steps(text)
    except ValueError:
        return None
    made: list[tuple[int, str, str]] = []  # (value, expression, top-level operator) of earlier results

    def operand(v: int, right_of: str, right: bool) -> str:
        for i in range(len(made) - 1, -1, -1):
            if made[i][0] == v:
                _, e, top = made.pop(i)
                weaker = top in "+-" and right_of in "*/"
                if weaker or (right and top and (right_of in "-/" or (right_of == "*" and top == "/"))):
                    return f"({e})"
                return e
        return str(v)

    for x, op, y, z in steps:
        left = operand(x, op, False)
        right = operand(y, op, True)
        made.append((z, f"{left}{op}{right}", op))
    return made[-1][1] if made else None


def random_steps(numbers: Sequence[int], rng: random.Random, n_steps: int | None = None, ops: str = "+-*/") -> str:
    """Random valid steps over ``numbers``: ``n_steps`` (default: 1 to ``len(numbers) - 1``) operations on two
    available values each, with an operator among those that give a non-negative integer (``-`` larger minus
    smaller, ``/`` only when exact). What ``format_examples`` teaches; it never looks at a target."""
    pool = list(numbers)
    n_steps = n_steps or rng.randint(1, len(pool) - 1)
    out = []
    for _ in range(n_steps):
        i, j = rng.sample(range(len(pool)), 2)
        x, y = pool[i], pool[j]
        if not any(_apply(x, o, y) is not None for o in ops):
            x, y = y, x  # only "-" allowed and x < y: take the larger first
        op = rng.choice([o for o in ops if _apply(x, o, y) is not None])
        z = _apply(x, op, y)
        out.append(f"{x}{op}{y}={z}")
        pool = [v for k, v in enumerate(pool) if k not in (i, j)] + [z]
    return ",".join(out)


def format_examples(
    problems: Sequence, rng: random.Random, *, targets: Sequence[int] | None = None, ops: str = "+-*/"
) -> list[tuple[str, str]]:
    """Warm-start data that reads no solution: for each problem, a ``(prompt, completion)`` pair whose prompt has
    the problem's numbers with a random target (``targets`` to draw from, default the problems' own targets
    shuffled: the right range, unrelated to the numbers) and whose completion is ``random_steps`` over the numbers.

    A model trained on these writes the task's format and correct arithmetic but aims at nothing: each target
    is drawn independently of the completion, so no example tells it how to reach one.
    """
    pool_targets = list(targets) if targets is not None else [p.meta["target"] for p in problems]
    out = []
    for p in problems:
        nums = p.meta["numbers"]
        prompt = f"{' '.join(map(str, nums))}->{rng.choice(pool_targets)}:"
        out.append((prompt, random_steps(nums, rng, ops=ops)))
    return out


def solve(numbers: Sequence[int], target: int, ops: str = "+-*/") -> tuple[str | None, int]:
    """An exact solver by exhaustive search: ``(steps, tried)`` with the first valid steps reaching ``target``
    (shortest first) or None, and ``tried`` the number of operations it evaluated (its cost).

    Depth-first over every pair of available values and every operator, by increasing number of steps. For
    ``n`` numbers the search tries at most about ``prod_{k=2..n} 4 * k * (k - 1)`` operations (2,304 for 4
    numbers): free for Countdown, which is why Countdown's labels are free and the course reports the solver as
    a baseline, not a stage of the label-free stack.
    """
    tried = 0

    def search(pool: list[int], path: list[str], depth: int) -> str | None:
        nonlocal tried
        if path and pool[-1] == target:
            return ",".join(path)
        if depth == 0 or len(pool) < 2:
            return None
        for i in range(len(pool)):
            for j in range(len(pool)):
                if i == j:
                    continue
                for op in ops:
                    if op in "+*" and i > j:  # commutative: each unordered pair once
                        continue
                    tried += 1
                    z = _apply(pool[i], op, pool[j])
                    if z is None:
                        continue
                    rest = [v for k, v in enumerate(pool) if k not in (i, j)] + [z]
                    found = search(rest, [*path, f"{pool[i]}{op}{pool[j]}={z}"], depth - 1)
                    if found:
                        return found
        return None

    for depth in range(1, len(numbers)):
        found = search(list(numbers), [], depth)
        if found:
            return found, tried
    return None, tried
