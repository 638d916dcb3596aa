"""Synthetic verifiable tasks: 2-digit addition, mixed arithmetic, Countdown.

Each has a finite problem space split once by ``base.is_heldout_key``; the prompt is what a char-level model
continues (``"12+35="``) and the completion is the bare answer, which ``check`` compares exactly (Countdown:
evaluates the expression with fractions and verifies the numbers used, since many answers are right).

A checker reads model output, so it must return promptly on anything: ``Countdown.check`` never hands the
text to ``eval`` (``20**19**18`` is a big-integer power that no timer interrupts) but parses it with ``ast``
and evaluates the tree itself (``arith_value``), with only the task's operators and bounded sizes.
"""

from __future__ import annotations

import ast
import operator
import random
import re
from fractions import Fraction

from grpo_lab.tasks.base import Problem, Task, is_heldout_key
from grpo_lab.tasks.countdown import check_steps


class AdditionTask(Task):
    """``a+b=`` with ``a, b`` in ``[lo, hi]`` (2-digit by default). Answer: the decimal sum."""

    name = "addition"
    answer_tokens = 5

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
                if is_heldout_key(p.prompt, self.heldout_buckets) == (split == "test"):
                    out.append(self.render(p))
        return out


class MixedArithmeticTask(Task):
    """Expressions with ``+ - *`` over 1-2 digit numbers, e.g. ``7*8-12=``; Python precedence.

    ``heldout_buckets`` (1-4): how many fifths of the problem space are held out. 2-term problems over 0..10
    number only 363; with 4 the held-out part has 300 of them and training draws from the other 63, so a
    score is over 300 problems the model never trained on.

    ``negative=False`` keeps only problems whose value is at least 0 (rejection sampling, so every such
    problem stays equally likely): grade-school arithmetic without negative numbers. 2-term problems over
    0..12 then number 429 (169 sums, 169 products, 91 differences), 344 of them held out with
    ``heldout_buckets=4`` (``cpu-smollm2``).
    """

    name = "arithmetic"
    answer_tokens = 8
    quiet_defaults = {"negative": True}  # reports name the option only when it is off

    def __init__(self, max_terms: int = 3, hi: int = 20, heldout_buckets: int = 1, negative: bool = True):
        if not 1 <= heldout_buckets <= 4:
            raise ValueError(
                f"heldout_buckets={heldout_buckets}: hold out 1 to 4 of the 5 buckets (both parts non-empty)"
            )
        self.max_terms, self.hi, self.heldout_buckets, self.negative = max_terms, hi, heldout_buckets, negative

    def _random_problem(self, rng: random.Random) -> Problem:
        while True:
            k = rng.randint(2, self.max_terms)
            nums = [rng.randint(0, self.hi) for _ in range(k)]
            ops = [rng.choice("+-*") for _ in range(k - 1)]
            expr = str(nums[0]) + "".join(o + str(x) for o, x in zip(ops, nums[1:]))
            value = _safe_eval(expr)
            if self.negative or value >= 0:
                break
        return Problem(
            f"{expr}=",
            f"What is {expr.replace('*', ' * ').replace('+', ' + ').replace('-', ' - ')}?",
            str(value),
            {"expr": expr},
        )


class CountdownTask(Task):
    """Countdown: reach ``target`` using each given number at most once with ``+ - * /``.

    Prompt: ``"3 7 25 50->100:"``; the answer is an expression such as ``(50-25)*(7-3)``. Problems are
    generated backwards from a random expression, so each has at least one solution. ``check`` evaluates
    the expression exactly (fractions) and verifies the multiset of numbers used. ``min_numbers`` (2 to
    ``n_numbers``) mixes sizes: each problem has a uniformly drawn count of numbers in that range (levels).
    ``ops`` (default ``+-*/``) are the operators an answer may use; problems are built from those among ``+-*``
    (``ops="+-"``: sums and differences only, arithmetic a char-level model learns quickly).
    """

    name = "countdown"
    answer_tokens = 24
    statement_fields = ("numbers", "target")  # all that check reads: a label-free verifier (tasks.label_free)

    quiet_defaults = {"min_numbers": 0, "ops": "+-*/"}  # reports name an option only when it is set

    def __init__(self, n_numbers: int = 3, hi: int = 20, min_numbers: int = 0, ops: str = "+-*/"):
        if min_numbers and not 2 <= min_numbers <= n_numbers:
            raise ValueError(f"min_numbers={min_numbers}: between 2 and n_numbers={n_numbers}, or 0 for n_numbers")
        if not ops or set(ops) - set("+-*/") or not set(ops) & set("+-*"):
            raise ValueError(
                f"ops={ops!r}: a subset of '+-*/' with at least one of + - * (problems are built from them)"
            )
        self.n_numbers, self.hi, self.min_numbers, self.ops = n_numbers, hi, min_numbers, ops

    def _random_problem(self, rng: random.Random) -> Problem:
        while True:
            k = rng.randint(self.min_numbers, self.n_numbers) if self.min_numbers else self.n_numbers
            nums = [rng.randint(1, self.hi) for _ in range(k)]
            order = nums[:]
            rng.shuffle(order)
            expr, value = str(order[0]), Fraction(order[0])
            for x in order[1:]:
                op = rng.choice([o for o in "+-*" if o in self.ops])
                expr = f"({expr}{op}{x})"
                value = {"+": value + x, "-": value - x, "*": value * x}[op]
            if value.denominator == 1 and 0 < value <= 1000:
                target = int(value)
                shown = " ".join(map(str, sorted(nums)))
                return Problem(
                    f"{shown}->{target}:",
                    f"Using the numbers {shown} (each at most once) and + - * /, make {target}.",
                    str(target),
                    {"numbers": sorted(nums), "target": target, "solution": expr},
                )

    def check(self, problem: Problem, answer: str | None) -> bool:
        """True iff ``answer`` reaches the target: worked steps (``countdown.check_steps``, when it contains ``=``)
        or an expression. It reads ``meta["numbers"]`` and ``meta["target"]`` (the prompt) and never the stored
        ``meta["solution"]``: a label-free verifier (``grpo_lab.tasks.label_free``).

        An expression is right iff it is made of ``+ - * /``, parentheses and integers, uses each given
        number at most once and equals the target exactly (``Fraction`` arithmetic, so ``7/2*2`` is 7).

        At most ``MAX_ANSWER_CHARS`` characters, ASCII digits only (``\\d`` would also accept other scripts'
        digits, which ``int`` reads but the model was never shown); evaluated by ``arith_value``, never ``eval``. A chat model's reply is not parsed for an expression: Countdown
        is a char-level task here.
        """
        if answer and "=" in answer:  # worked steps, "3*5=15,15+7=22" (grpo_lab.tasks.countdown)
            return check_steps(problem.meta["numbers"], problem.meta["target"], answer.strip(), self.ops)
        if not answer or len(answer) > self.MAX_ANSWER_CHARS or not _COUNTDOWN_RE.fullmatch(answer):
            return False
        pool = list(problem.meta["numbers"])
        for x in re.findall(r"[0-9]+", answer):
            if int(x) not in pool:
                return False
            pool.remove(int(x))
        try:
            return arith_value(answer, self.ops) == problem.meta["target"]
        except ValueError:
            return False

    MAX_ANSWER_CHARS = 200


_COUNTDOWN_RE = re.compile(r"[0-9\s+\-*/()]+", re.ASCII)
_BINOPS = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
}
_UNARY = {ast.UAdd: ("+", operator.pos), ast.USub: ("-", operator.neg)}


def arith_value(
    expr: str, ops: str = "+-*/", *, max_chars: int = 1000, max_nodes: int = 200, max_bits: int = 256
) -> Fraction:
    """The exact value of an arithmetic expression of integer literals, parentheses and the operators in ``ops``.

    The text is parsed with ``ast`` and the tree evaluated here, node by node, in ``Fraction`` arithmetic (so
    ``/`` is exact and ``7/2*2 == 7``); ``eval`` is never called. Anything else (names, calls, ``**``, floats,
    an operator outside ``ops``, over ``max_chars`` characters or ``max_nodes`` tree nodes, a literal or an intermediate numerator
    or denominator over ``max_bits`` bits, division by zero) raises ``ValueError``. With those bounds every
    call does a bounded amount of work, whatever the text: a checker of model output must never hang.
    """
    if len(expr) > max_chars:
        raise ValueError(f"expression over {max_chars} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:  # deep nesting: RecursionError/MemoryError
        raise ValueError(f"not an arithmetic expression: {expr[:40]!r}") from err
    if sum(1 for _ in ast.walk(tree)) > max_nodes:
        raise ValueError(f"expression over {max_nodes} nodes")

    def value(node) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            v = Fraction(node.value)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS and _BINOPS[type(node.op)][0] in ops:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ValueError("division by zero")
            v = _BINOPS[type(node.op)][1](left, right)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY and _UNARY[type(node.op)][0] in ops:
            v = _UNARY[type(node.op)][1](value(node.operand))
        else:
            raise ValueError(f"{type(getattr(node, 'op', node)).__name__} is not allowed in an arithmetic answer")
        if max(abs(v.numerator), v.denominator).bit_length() > max_bits:
            raise ValueError(f"a value over {max_bits} bits")
        return v

    return value(tree.body)


def _safe_eval(expr: str) -> int:
    """The integer value of a generated ``+ - *`` expression (``arith_value``, Python precedence)."""
    return int(arith_value(expr, "+-*"))
