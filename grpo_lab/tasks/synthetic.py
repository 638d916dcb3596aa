"""Synthetic verifiable tasks: 2-digit addition, mixed arithmetic, Countdown.

Each has a finite problem space split once by ``base.is_heldout_key``; the prompt is what a char-level model
continues (``"12+35="``) and the completion is the bare answer, which ``check`` compares exactly (Countdown:
evaluates the expression with fractions and verifies the numbers used, since many answers are right).
"""

from __future__ import annotations

import random
import re
from fractions import Fraction

from grpo_lab.tasks.base import Problem, Task, is_heldout_key


class AdditionTask(Task):
    """``a+b=`` with ``a, b`` in ``[lo, hi]`` (2-digit by default). Answer: the decimal sum."""

    name = "addition"

    def __init__(self, lo: int = 10, hi: int = 99):
        self.lo, self.hi = lo, hi

    def make(self, a: int, b: int) -> Problem:
        return Problem(f"{a}+{b}=", f"What is {a} + {b}?", str(a + b), {"a": a, "b": b})

    def _random_problem(self, rng: random.Random) -> Problem:
        return self.make(rng.randint(self.lo, self.hi), rng.randint(self.lo, self.hi))

    def sloppy_answer(self, problem: Problem, rng: random.Random, p_drop: float = 0.6) -> str:
        """A sloppy teacher's answer: with probability ``p_drop`` it forgets the final carry.

        When the sum reaches 100, the leading ``1`` is dropped (``55+66`` -> ``"21"`` instead of ``"121"``);
        other problems are answered correctly. SFT on such labels gives a model that knows both answers but
        prefers the wrong one on carry problems: the right answer is in its samples, not at the top, the
        regime where RL with a verifier (which knows the truth) helps most.
        """
        total = problem.meta["a"] + problem.meta["b"]
        if total >= 100 and rng.random() < p_drop:
            return str(total - 100)
        return problem.answer

    def all_problems(self, split: str = "train") -> list[Problem]:
        """Every problem of a split, in a fixed order (2-digit addition: 8,100 in all)."""
        out = []
        for a in range(self.lo, self.hi + 1):
            for b in range(self.lo, self.hi + 1):
                p = self.make(a, b)
                if is_heldout_key(p.prompt) == (split == "test"):
                    out.append(self.render(p))
        return out


class MixedArithmeticTask(Task):
    """Expressions with ``+ - *`` over 1-2 digit numbers, e.g. ``7*8-12=``; Python precedence."""

    name = "arithmetic"

    def __init__(self, max_terms: int = 3, hi: int = 20):
        self.max_terms, self.hi = max_terms, hi

    def _random_problem(self, rng: random.Random) -> Problem:
        k = rng.randint(2, self.max_terms)
        nums = [rng.randint(0, self.hi) for _ in range(k)]
        ops = [rng.choice("+-*") for _ in range(k - 1)]
        expr = str(nums[0]) + "".join(o + str(x) for o, x in zip(ops, nums[1:]))
        value = _safe_eval(expr)
        return Problem(f"{expr}=", f"What is {expr.replace('*', ' * ').replace('+', ' + ').replace('-', ' - ')}?",
                       str(value), {"expr": expr})


class CountdownTask(Task):
    """Countdown: reach ``target`` using each given number at most once with ``+ - * /``.

    Prompt: ``"3 7 25 50->100:"``; the answer is an expression such as ``(50-25)*(7-3)``. Problems are
    generated backwards from a random expression, so each has at least one solution. ``check`` evaluates
    the expression exactly (fractions) and verifies the multiset of numbers used.
    """

    name = "countdown"

    def __init__(self, n_numbers: int = 3, hi: int = 20):
        self.n_numbers, self.hi = n_numbers, hi

    def _random_problem(self, rng: random.Random) -> Problem:
        while True:
            nums = [rng.randint(1, self.hi) for _ in range(self.n_numbers)]
            order = nums[:]
            rng.shuffle(order)
            expr, value = str(order[0]), Fraction(order[0])
            for x in order[1:]:
                op = rng.choice("+-*")
                expr = f"({expr}{op}{x})"
                value = {"+": value + x, "-": value - x, "*": value * x}[op]
            if value.denominator == 1 and 0 < value <= 1000:
                target = int(value)
                shown = " ".join(map(str, sorted(nums)))
                return Problem(f"{shown}->{target}:", f"Using the numbers {shown} (each at most once) and + - * /, make {target}.",
                               str(target), {"numbers": sorted(nums), "target": target, "solution": expr})

    def check(self, problem: Problem, answer: str | None) -> bool:
        """The expression ``answer`` equals the target exactly and uses only the given numbers, each at most
        once. A chat model's reply is not parsed for an expression: Countdown is a char-level task here."""
        if not answer or len(answer) > 200 or not re.fullmatch(r"[\d\s+\-*/()]+", answer):
            return False
        used = sorted(int(x) for x in re.findall(r"\d+", answer))
        pool = list(problem.meta["numbers"])
        for x in used:
            if x not in pool:
                return False
            pool.remove(x)
        try:
                value = eval(re.sub(r"(\d+)", r"Fraction(\1)", answer), {"Fraction": Fraction, "__builtins__": {}})
        except Exception:
            return False
        return value == problem.meta["target"]


def _safe_eval(expr: str) -> int:
    if not re.fullmatch(r"[\d+\-*]+", expr):
        raise ValueError(f"not an arithmetic expression: {expr!r}")
    return int(eval(expr, {"__builtins__": {}}))
