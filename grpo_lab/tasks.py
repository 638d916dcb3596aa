"""Verifiable tasks: seeded generators with held-out splits, GSM8K loading, prompt formatting.

Design notes:

- Every synthetic task has a finite problem space that is split once, by a hash of the problem, into a
  training part (4/5) and a held-out part (1/5). Training draws only from the first and evaluation only
  from the second, so "held-out accuracy" means problems the model never saw, whatever the seeds.
- A ``Problem`` carries the plain prompt for tiny models (``"12+35="``), the question for chat models and
  the gold answer as a string; ``Task.check`` decides correctness, so Countdown (many right answers) and
  arithmetic (one) share the same interface.
- GSM8K (Cobbe et al., arXiv 2110.14168) gold answers follow ``#### ``; some have thousands separators.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable


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


class DatasetFormatError(ValueError):
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

    def key(self, problem: Problem) -> str:
        return problem.prompt

    def _random_problem(self, rng: random.Random) -> Problem:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, problem: Problem, answer: str | None) -> bool:
        """True if ``answer`` (an extracted string, or None) is correct for ``problem``."""
        if answer is None:
            return False
        return answer.strip() == problem.answer

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
                    out.append(p)
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
        from fractions import Fraction

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
        if not answer or len(answer) > 200 or not re.fullmatch(r"[\d\s+\-*/()]+", answer):
            return False
        used = sorted(int(x) for x in re.findall(r"\d+", answer))
        pool = list(problem.meta["numbers"])
        for x in used:
            if x not in pool:
                return False
            pool.remove(x)
        try:
            from fractions import Fraction

            value = eval(re.sub(r"(\d+)", r"Fraction(\1)", answer), {"Fraction": Fraction, "__builtins__": {}})
        except Exception:
            return False
        return value == problem.meta["target"]


def _safe_eval(expr: str) -> int:
    if not re.fullmatch(r"[\d+\-*]+", expr):
        raise ValueError(f"not an arithmetic expression: {expr!r}")
    return int(eval(expr, {"__builtins__": {}}))


TASKS = {"addition": AdditionTask, "arithmetic": MixedArithmeticTask, "countdown": CountdownTask}


def get_task(name: str, **kwargs) -> Task:
    """A task by name (``addition``, ``arithmetic``, ``countdown``); a clear error names the choices."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name](**kwargs)


# --------------------------------------------------------------------------------------------------
# GSM8K
# --------------------------------------------------------------------------------------------------

GSM8K_HUB = ("openai/gsm8k", "main")
_GOLD_RE = re.compile(r"####\s*(.+?)\s*$", re.S)


def parse_gsm8k_answer(answer: str) -> str:
    """The gold answer of a GSM8K solution: the text after the last ``####``, thousands separators removed.

    ``"... #### 1,000"`` -> ``"1000"``. Raises ``DatasetFormatError`` when there is no ``####`` line.
    """
    if not isinstance(answer, str) or "####" not in answer:
        raise DatasetFormatError(f"a GSM8K answer must end with '#### <number>'; got {str(answer)[-60:]!r}")
    gold = answer.rsplit("####", 1)[1].strip()
    return gold.replace(",", "").replace("$", "").rstrip(".")


def find_project_root(start: str | Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the cwd, then this package) holding ``pyproject.toml``."""
    starts = [Path(start)] if start else [Path.cwd(), Path(__file__).resolve().parent]
    for s in starts:
        for p in [s.resolve(), *s.resolve().parents]:
            if (p / "pyproject.toml").exists() and (p / "grpo_lab").is_dir():
                return p
    return None


def local_gsm8k_path() -> Path | None:
    """The offline GSM8K train file: ``$GRPO_LAB_GSM8K`` when set, else the copy shipped inside the package
    (``grpo_lab/data/gsm8k/train.jsonl``, MIT licence, 7,473 problems; see the README beside it)."""
    import os

    if os.environ.get("GRPO_LAB_GSM8K"):
        p = Path(os.environ["GRPO_LAB_GSM8K"])
        return p if p.exists() else None
    p = Path(__file__).resolve().parent / "data" / "gsm8k" / "train.jsonl"
    return p if p.exists() else None


def _gsm8k_rows(rows: Iterable[dict], source: str) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "question" not in row or "answer" not in row:
            raise DatasetFormatError(f"{source}: row {i} needs 'question' and 'answer' fields; got {str(row)[:80]!r}")
        try:
            gold = parse_gsm8k_answer(row["answer"])
        except DatasetFormatError as e:
            raise DatasetFormatError(f"{source}: row {i}: {e}") from None
        out.append({"question": row["question"], "solution": row["answer"], "answer": gold})
    return out


def load_gsm8k(split: str = "train", path: str | Path | None = None, limit: int | None = None) -> list[dict]:
    """GSM8K rows as ``{"question", "solution", "answer"}`` (``answer`` = parsed gold).

    Reads ``path`` (a jsonl with ``question``/``answer``) if given, else the local course copy for the
    train split when present, else the hub (``datasets.load_dataset("openai/gsm8k", "main")``, the path
    Colab users take). Offline with no local file, the error says what to pass.
    """
    if path is None and split == "train":
        path = local_gsm8k_path()
    if path is not None:
        path = Path(path)
        rows = []
        with path.open() as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DatasetFormatError(f"{path}:{lineno}: not JSON ({e.msg}); one object per line expected") from None
                if limit and len(rows) >= limit:
                    break
        return _gsm8k_rows(rows, str(path))
    try:
        from datasets import load_dataset

        ds = load_dataset(*GSM8K_HUB, split=split)
    except Exception as err:
        raise DatasetFormatError(
            f"cannot load GSM8K {split!r} from the hub ({type(err).__name__}); pass path=<jsonl with question/answer> "
            "or set GRPO_LAB_GSM8K"
        ) from err
    rows = ds if limit is None else ds.select(range(min(limit, len(ds))))
    return _gsm8k_rows(rows, "openai/gsm8k")


def gsm8k_split(rows: list[dict], n_heldout: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Split GSM8K rows into (train, held-out) deterministically by a hash of the question.

    Used when only the train file is available offline: the held-out part never shares a question with
    the train part (exact duplicates included, since the hash is of the text).
    """
    held = [r for r in rows if is_heldout_key("gsm8k:" + r["question"].strip())]
    train = [r for r in rows if not is_heldout_key("gsm8k:" + r["question"].strip())]
    random.Random(seed).shuffle(held)
    return train, held[:n_heldout]


# --------------------------------------------------------------------------------------------------
# Prompt formatting
# --------------------------------------------------------------------------------------------------

DEFAULT_SYSTEM = (
    "Solve the problem step by step. End your reply with the final answer on its own line as '#### <number>'."
)


def format_prompt(problem: Problem | dict, style: str = "plain", tokenizer=None, system: str | None = DEFAULT_SYSTEM):
    """Format a problem for a model.

    - ``style="plain"``: the raw prompt string (``"12+35="``) for char-level models, or the question.
    - ``style="messages"``: a chat message list (what TRL's conversational datasets hold).
    - ``style="chat"``: the message list rendered by ``tokenizer.apply_chat_template`` with the
      generation prompt appended (what a chat model continues).
    Accepts a ``Problem`` or a GSM8K row (``{"question": ...}``).
    """
    if isinstance(problem, dict):
        if "question" not in problem:
            raise DatasetFormatError(f"a row needs a 'question' field to be formatted; got keys {sorted(problem)}")
        question, plain = problem["question"], problem["question"]
    else:
        question, plain = problem.question, problem.prompt
    if style == "plain":
        return plain
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    if style == "messages":
        return messages
    if style == "chat":
        if tokenizer is None:
            raise ValueError("style='chat' needs the tokenizer whose chat template renders the messages")
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise ValueError(f"style must be 'plain', 'messages' or 'chat', not {style!r}")
