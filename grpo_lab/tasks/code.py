"""Code writing with hidden unit tests: RLVR where the verifier runs the model's program in the sandbox.

A problem asks for one small Python function (``Write a Python function `count_a(s)` that returns how many
times the letter 'a' occurs in the string s.``); the reward is whether 4-6 hidden asserts hold when the
model's program runs in ``grpo_lab.sandbox`` (``run_tests``). There is no gold answer at training time.

- Families (``code_families``): templates with parameters (constants, letters, thresholds, function and argument names from small
  pools). Level 1: one-line arithmetic or comparison on numbers; level 2: string and list manipulation;
  level 3: loops, conditionals, small algorithms. ``TRAIN_FAMILIES`` (8 per level) are what training draws
  from; ``UNSEEN_FAMILIES`` (levels 2-3) never are, so a score on them measures whether the skill transfers to
  new kinds of function (``CodeTask(families="unseen")``).
- Each family carries a reference and a deliberately wrong implementation (a plausible mistake: off by one,
  ``>=`` for ``>``...). The generator runs both, in this process (they are the course's own templates, never
  model output), to compute the expected values and to make sure at least one assert catches the mistake;
  they are kept in ``meta["reference"]`` / ``meta["wrong"]`` for the tests of the generator only. The reward
  (``check``, ``check_many``, ``verdicts``) never reads them: it reads ``meta["func"]`` and ``meta["tests"]``.
  ``Problem.answer`` is the signature line (``def count_a(s):``), not a gold label: code that reads
  ``answer`` keeps working, and nothing can be scored against it.
- A problem's test inputs come from an rng seeded by its plain prompt, so a problem's tests are fixed; the
  train / held-out split is the usual hash of that plain prompt (``base.is_heldout_key``).

Extraction rule (``extract_program``): the FIRST fenced code block opened by ```` ```python ````,
```` ```py ```` (or ``python3``) or a bare ```` ``` ````; a block whose closing fence is missing (a truncated
completion) is not used, and a completion without such a block has no program (None, reward 0).

Name rule (``apply_name_rule``), so that gains are not renaming: the prompt names the function; if the program
does not define that name at top level but defines exactly one top-level function, ``name = that_function``
is appended. Decided with ``ast.parse`` here; nothing is executed in this process. A program that does not
parse passes through unchanged and the sandbox reports the error.
"""

from __future__ import annotations

import ast
import copy
import functools
import random
import re
from collections.abc import Callable

from grpo_lab.sandbox import FORBIDDEN_KINDS, CodeResult, run_many, run_tests
from grpo_lab.tasks.base import Problem, Task
from grpo_lab.tasks.code_families import TRAIN_FAMILIES, UNSEEN_FAMILIES, Family
from grpo_lab.tasks.prompts import CODE_SYSTEM

__all__ = [
    "CODE_SYSTEM",
    "CodeTask",
    "FAILURE_KINDS",
    "Family",
    "TRAIN_FAMILIES",
    "UNSEEN_FAMILIES",
    "apply_name_rule",
    "extract_program",
    "failure_kind",
    "make_problem",
]

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[ \t]*\n(.*?)```", re.S)
_PY_TAGS = ("python", "py", "python3", "")
MAX_PROGRAM_CHARS = 20_000  # longer programs are not parsed here (the sandbox still runs them)


def extract_program(completion: str | None) -> str | None:
    """The program of a completion by the module's extraction rule: the first ```` ```python ````,
    ```` ```py ```` or bare fenced block, closed; None without one."""
    if not isinstance(completion, str) or "```" not in completion:
        return None
    for m in _FENCE_RE.finditer(completion):
        if m.group(1).lower() in _PY_TAGS:
            return m.group(2)
    return None


def _top_level_names(tree: ast.Module) -> tuple[set[str], list[str]]:
    """(every name the module binds at top level, its top-level function names in order)."""
    bound, funcs = set(), []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            funcs.append(node.name)
            bound.add(node.name)
        elif isinstance(node, ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return bound, funcs


def apply_name_rule(program: str, name: str) -> str:
    """``program`` with ``name = <its one function>`` appended when it does not bind ``name`` at top level but
    defines exactly one top-level function; otherwise unchanged (also when it does not parse)."""
    if len(program) > MAX_PROGRAM_CHARS:
        return program
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return program
    bound, funcs = _top_level_names(tree)
    if name in bound or len(funcs) != 1:
        return program
    return f"{program.rstrip()}\n\n{name} = {funcs[0]}\n"


# What went wrong with a completion, as ``failure_kind`` names it, in the order a completion gets further.
FAILURE_KINDS = ("no program", "syntax error", "runtime error", "timeout", "forbidden", "wrong answer", "pass")
_SYNTAX = ("the code raised SyntaxError", "the code raised IndentationError", "the code raised TabError")


def failure_kind(result: CodeResult | None) -> str:
    """One word for a verdict of ``CodeTask.verdicts``, one of ``FAILURE_KINDS``: ``no program`` (None: no closed
    code block), ``syntax error`` (the program does not parse), ``forbidden`` (the sandbox stopped a forbidden
    operation), ``timeout`` (the wall-clock or CPU limit), ``wrong answer`` (an assert failed), ``runtime error``
    (anything else the code or the tests raised, a ``NameError`` for a missing function included, or a kill),
    ``pass``. Read from ``status``, ``forbidden`` and ``reason`` only; an ``infra`` result is not a verdict about
    the code (``run_many`` never returns one), so it raises ``ValueError``."""
    if result is None:
        return "no program"
    if result.status == "infra":
        raise ValueError(f"an 'infra' result says nothing about the code ({result.reason})")
    if result.passed:
        return "pass"
    if result.forbidden is not None:
        return "forbidden"
    if result.status == "timeout":
        return "timeout"
    if result.status == "error" and result.reason.startswith(_SYNTAX):
        return "syntax error"
    if result.status == "failed" and result.reason.startswith("assert failed"):
        return "wrong answer"
    return "runtime error"


def _run_batch(jobs: list[tuple[str, str]], timeout_s: float) -> list[CodeResult]:
    """Run (program, tests) jobs in the sandbox in parallel: ``sandbox.run_many`` (identical programs once; a
    run the machine could not give a fair chance is retried, never scored; every isolation guarantee kept)."""
    return run_many(jobs, timeout_s=timeout_s)


@functools.lru_cache(maxsize=1 << 14)
def _compile(source: str, name: str) -> Callable:
    """A generator template's function (the course's own code, never model output), compiled once."""
    namespace: dict = {}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - trusted templates only
    return namespace[name]


def _call(source: str, name: str, args: tuple):
    """(True, value) of ``name(*args)`` on a copy of the arguments, or (False, the exception's name)."""
    try:
        return True, _compile(source, name)(*copy.deepcopy(args))
    except Exception as err:  # a wrong implementation may raise (IndexError on an empty list): a caught mistake
        return False, type(err).__name__


def make_problem(family: Family, params: dict, func: str, args: tuple[str, ...]) -> Problem:
    """The problem of ``family`` with ``params``, function name ``func`` and argument names ``args``.

    Its asserts are drawn from an rng seeded by the plain prompt (so a problem's tests are fixed) until at least
    one of them fails on the family's wrong implementation; expected values come from the reference one.
    """
    fields = {**params, **dict(zip("ab", args))}
    signature = f"def {func}({', '.join(args)}):"
    question = f"Write a Python function `{func}({', '.join(args)})` that {family.spec.format(**fields)}."
    prompt = f"{question}\n{signature}"
    ref, wrong = (signature + "\n" + _indent(body.format(**fields)) for body in (family.ref, family.wrong))
    rng = random.Random(prompt)
    for _ in range(100):
        inputs = family.inputs(rng, params)
        expected = [_call(ref, func, a) for a in inputs]
        if not all(ok for ok, _ in expected):
            raise RuntimeError(f"code family {family.name}: the reference raised {expected} on {inputs}")
        if any(_call(wrong, func, a) != e for a, e in zip(inputs, expected)):
            break
    else:
        raise RuntimeError(f"code family {family.name}: no inputs tell the wrong implementation apart ({prompt!r})")
    tests = "".join(f"assert {func}({', '.join(map(repr, a))}) == {v!r}\n" for a, (_, v) in zip(inputs, expected))
    meta = {"func": func, "tests": tests, "family": family.name, "level": family.level, "reference": ref,
            "wrong": wrong, "unseen": family.unseen}  # fmt: skip
    return Problem(prompt, question, signature, meta)


def _indent(body: str) -> str:
    return "".join("    " + line + "\n" for line in body.splitlines())


def random_problem(family: Family, rng: random.Random) -> Problem:
    """A problem of ``family`` with its constants and names drawn from ``rng``."""
    params = family.params(rng)
    func, args = rng.choice(family.funcs).format(**params), rng.choice(family.args)
    p = _cached_problem(family, tuple(sorted(params.items())), func, args)
    return Problem(p.prompt, p.question, p.answer, dict(p.meta))  # a meta of its own: callers may add to it


@functools.cache  # bounded by the problem space (a few thousand); sampling draws far more
def _cached_problem(family: Family, params: tuple, func: str, args: tuple[str, ...]) -> Problem:
    return make_problem(family, dict(params), func, args)


class CodeTask(Task):
    """Write one Python function; hidden asserts decide (the module docstring has the rules).

    ``levels``: which difficulty levels (1-3) to draw from. ``families``: ``"train"`` (``TRAIN_FAMILIES``, what
    training uses), ``"unseen"`` (``UNSEEN_FAMILIES``, for measuring transfer to new kinds of function) or
    ``"all"``. ``heldout_buckets``: fifths of each family's problem space held out (the base split, by a hash of
    the plain prompt). ``timeout_s``: the sandbox's wall-clock limit per program. Problems are drawn family
    first (uniformly), then the family's constants and names.
    """

    name = "code"
    system = CODE_SYSTEM
    answer_tokens = 256  # a generous budget: a function of a few lines in a code block, with some slack
    quiet_defaults = {"timeout_s": 5.0}

    def __init__(
        self,
        levels: tuple[int, ...] | list[int] = (1, 2, 3),
        families: str = "train",
        system: str | None = CODE_SYSTEM,
        heldout_buckets: int = 1,
        timeout_s: float = 5.0,
    ):
        pools = {"train": TRAIN_FAMILIES, "unseen": UNSEEN_FAMILIES, "all": TRAIN_FAMILIES + UNSEEN_FAMILIES}
        if families not in pools:
            raise ValueError(f"families must be 'train', 'unseen' or 'all', not {families!r}")
        if not 1 <= heldout_buckets <= 4:
            raise ValueError(f"heldout_buckets={heldout_buckets}: hold out 1 to 4 of the 5 buckets")
        self.levels = tuple(sorted(set(levels)))
        self.pool = [f for f in pools[families] if f.level in self.levels]
        if not self.pool:
            raise ValueError(f"no {families} code families at levels {self.levels}")
        self.families, self.system, self.heldout_buckets, self.timeout_s = families, system, heldout_buckets, timeout_s

    def describe(self) -> str:
        """``code(levels=1-2-3, families=train, heldout_buckets=1)`` (``timeout_s`` only when not the default)."""
        levels = "-".join(map(str, self.levels))
        extra = "" if self.timeout_s == 5.0 else f", timeout_s={self.timeout_s:g}"
        return f"code(levels={levels}, families={self.families}, heldout_buckets={self.heldout_buckets}{extra})"

    def _random_problem(self, rng: random.Random) -> Problem:
        return random_problem(rng.choice(self.pool), rng)

    def program(self, problem: Problem, completion: str | None) -> str | None:
        """The program that would run for ``completion``: extracted, then the name rule applied; None without one."""
        code = extract_program(completion)
        return None if code is None else apply_name_rule(code, problem.meta["func"])

    def verdicts(self, problems: list[Problem], completions: list[str | None]) -> list[CodeResult | None]:
        """The sandbox's verdict on each completion's program against its problem's hidden tests, run in
        parallel; None where no program could be extracted. Reads only ``meta["func"]`` and ``meta["tests"]``."""
        programs = [self.program(p, c) for p, c in zip(problems, completions, strict=True)]
        jobs = [(prog, p.meta["tests"]) for p, prog in zip(problems, programs) if prog is not None]
        results = iter(_run_batch(jobs, self.timeout_s) if jobs else [])
        out = [None if prog is None else next(results) for prog in programs]
        self._last = out
        return out

    def batch_metrics(self) -> dict:
        """The last batch of ``verdicts``, counted for the training history: ``no_program`` (no closed code
        block), each sandbox status (``status/failed``...) and each kind of forbidden operation the harness
        stopped (``forbidden/exit``... over ``sandbox.FORBIDDEN_KINDS``, and ``forbidden_passed``, which must
        stay 0: a program stopped for a forbidden operation never scores)."""
        last = getattr(self, "_last", None) or []
        done = [r for r in last if r is not None]
        out = {"no_program": len(last) - len(done)}
        for st in ("passed", "failed", "error", "timeout", "killed"):
            out[f"status/{st}"] = sum(r.status == st for r in done)
        for kind in FORBIDDEN_KINDS:
            out[f"forbidden/{kind}"] = sum(r.forbidden == kind for r in done)
        out["forbidden_passed"] = sum(r.forbidden is not None and r.passed for r in done)
        return out

    def stop_after(self, tokenizer):
        """Decoding stops where the first code block closes (its second fence token), the only part the reward
        reads (``extract_program``): ``rollout.StopAfter`` over every token containing a Markdown fence."""
        if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
            return None
        from grpo_lab.rollout import StopAfter

        key = id(tokenizer)
        cached = getattr(self, "_stop", None)
        if cached is None or cached[0] != key:
            try:
                rule = StopAfter.containing(tokenizer, "```", 2)
            except ValueError:  # no fence token (a character-level vocabulary): decode to the budget
                rule = None
            self._stop = (key, rule)
        return self._stop[1]

    def check_many(self, problems: list[Problem], completions: list[str | None]) -> list[bool]:
        """``check`` of each pair, the programs run in parallel (``verdicts``)."""
        return [r is not None and r.passed for r in self.verdicts(problems, completions)]

    def check(self, problem: Problem, answer: str | None) -> bool:
        """True iff the completion's program (extraction and name rule) passes the problem's hidden tests."""
        program = self.program(problem, answer)
        return program is not None and run_tests(program, problem.meta["tests"], timeout_s=self.timeout_s).passed

    def extract(self, completion: str) -> str | None:
        """The normalised program, for voting over samples: ``ast.dump`` of the extracted code (so formatting and
        comments do not split votes), the stripped code when it does not parse, None without code."""
        code = extract_program(completion)
        if code is None:
            return None
        if len(code) <= MAX_PROGRAM_CHARS:
            try:
                return ast.dump(ast.parse(code))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                pass
        return code.strip() or None
