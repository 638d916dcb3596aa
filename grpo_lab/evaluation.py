"""Held-out evaluation, one path for every task: greedy accuracy by the task's own checker, plus on request
a strict format check and pass@k / majority@k over sampled completions.

Design notes:

- Correctness is always ``task.check(problem, completion)``: for the char-level tasks the completion is the
  bare answer (``"47"``) compared exactly; for GSM8K it is ``rewards.is_correct`` (the lenient verifier: any
  final answer, by mathematical equivalence). The training reward uses the same check, so "accuracy" and
  "reward" never disagree about what is right.
- ``strict`` (GSM8K): ``task.check_strict`` (``rewards.strict_is_correct``: reasoning, then exactly one
  final ``#### x`` equal to the gold answer). The gap between strict and the lenient accuracy is format, not
  math (notebook 01).
- With ``k >= 2``, ``k`` completions per problem are sampled at ``temperature`` (seeded) with
  ``ensemble.sample_answers``. pass@k: one of the k is correct (Chen et al., arXiv 2107.03374, with n = k
  samples); majority@k: the plurality answer, by ``ensemble.majority_vote`` over ``task.extract`` of each
  sample, is correct (self-consistency, Wang et al., arXiv 2203.11171).
- Greedy decoding is ``rollout.greedy_complete`` (the KV-cache decoder of ``rollout.generate``), looked up
  at call time so a test can substitute canned completions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from grpo_lab import rollout
from grpo_lab.tasks import Problem, Task


@dataclass
class EvalResult:
    """Held-out accuracy of one model on one list of problems.

    ``accuracy``: share of greedy completions that pass ``task.check`` (for GSM8K: lenient); ``correct`` and
    ``completions`` per problem. ``strict``: share passing ``task.check_strict`` (None when not computed).
    Over ``k`` samples (None when ``k < 2``): ``pass_at_k``, ``majority_at_k``, ``strict_pass_at_k``.
    ``rows``: per-problem details (question, gold, completion, correct, strict, samples, vote, ...).
    """

    accuracy: float
    n: int
    correct: list[bool]
    completions: list[str]
    k: int = 1
    strict: float | None = None
    pass_at_k: float | None = None
    majority_at_k: float | None = None
    strict_pass_at_k: float | None = None
    seconds: float = 0.0
    rows: list[dict] = field(default_factory=list, repr=False)
    lengths: list[int] = field(default_factory=list, repr=False)
    max_new_tokens: int = 0

    @property
    def mean_length(self) -> float:
        """Mean greedy completion length in tokens (each completion re-tokenized, special tokens not counted)."""
        return sum(self.lengths) / max(1, len(self.lengths))

    @property
    def stderr(self) -> float:
        """Standard error of ``accuracy`` as a binomial proportion, ``sqrt(p (1 - p) / n)``: a difference between
        two accuracies on different problem sets is noise below about twice this (per side)."""
        return (self.accuracy * (1 - self.accuracy) / max(1, self.n)) ** 0.5

    def summary(self) -> dict:
        """The numbers, without the per-problem lists (what ``report.json`` keeps)."""
        return {
            "n": self.n,
            "k": self.k,
            "accuracy": self.accuracy,
            "stderr": round(self.stderr, 4),
            "strict": self.strict,
            "pass_at_k": self.pass_at_k,
            "majority_at_k": self.majority_at_k,
            "strict_pass_at_k": self.strict_pass_at_k,
            "max_new_tokens": self.max_new_tokens,
            "mean_length": round(self.mean_length, 2),
            "truncated": round(sum(n >= self.max_new_tokens for n in self.lengths) / max(1, self.n), 4),
            "seconds": round(self.seconds, 2),
        }

    def __str__(self) -> str:
        if self.strict is None:
            s = f"accuracy: {self.accuracy:.3f} ({sum(self.correct)}/{self.n})"
        else:
            s = f"greedy strict {self.strict:.3f}  lenient {self.accuracy:.3f}  (n={self.n})"
        if self.k > 1:
            s += f"   pass@{self.k} {self.pass_at_k:.3f}  majority@{self.k} {self.majority_at_k:.3f}"
        return s


def max_answer_tokens(task: Task) -> int:
    """Default completion budget of a task, its ``answer_tokens``: 5 tokens for 2-digit addition up to 256 for
    GSM8K; 16 for a task that does not say."""
    return getattr(task, "answer_tokens", 16)


def _stop_kw(task: Task, tokenizer) -> dict:
    """``{"stop_after": rule}`` when the task has an extra stop rule for this tokenizer, else ``{}``."""
    stop = task.stop_after(tokenizer) if tokenizer is not None else None
    return {"stop_after": stop} if stop is not None else {}


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / max(1, len(flags))


def _score_samples(task: Task, problem: Problem, texts: list[str], strict: bool) -> dict:
    """pass / majority / strict_pass of one problem's samples. The vote is over ``task.extract`` answers;
    the winning answer is judged through the first sample that states it, so the check is ``task.check``
    on a completion, exactly as for greedy decoding (no answer is extracted twice)."""
    from grpo_lab.ensemble import majority_vote

    answers = [task.extract(t) for t in texts]
    vote = majority_vote(answers)
    winner = next((t for t, a in zip(texts, answers) if a is not None and a == vote.answer), None)
    row = {
        "samples": texts,
        "vote": vote.answer,
        "pass": any(task.check(problem, t.strip()) for t in texts),
        "majority": winner is not None and task.check(problem, winner.strip()),
    }
    if strict:
        row["strict_pass"] = any(task.check_strict(problem, t) for t in texts)
    return row


def _sampled_metrics(model, tokenizer, task, problems, rows, k, max_new_tokens, batch_size, strict, temperature, seed):
    """pass@k and majority@k over ``k`` samples a problem (seeded by chunk), each row updated with its own."""
    from grpo_lab import ensemble

    per = max(1, batch_size // k)
    for i in range(0, len(problems), per):
        chunk = problems[i : i + per]
        texts, _ = ensemble.sample_answers(
            model,
            tokenizer,
            [p.prompt for p in chunk],
            k,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed + i,
        )
        for j, p in enumerate(chunk):
            rows[i + j].update(_score_samples(task, p, list(texts[j]), strict))
    return dict(
        pass_at_k=_share([r["pass"] for r in rows]),
        majority_at_k=_share([r["majority"] for r in rows]),
        strict_pass_at_k=_share([r["strict_pass"] for r in rows]) if strict else None,
    )


def eval_batch_size(max_new_tokens: int, cuda: bool) -> int:
    """How many prompts ``evaluate`` decodes at once by default: 512 for answers of at most 32 tokens; for longer
    ones 32 on a CPU (the KV cache grows with batch x length, and a CPU is already busy at that width) and 128 on a
    GPU, where decoding a token at a time is bound by kernel launches rather than arithmetic, so a batch 4x wider
    costs about the same per token (``grpo_lab.plan``'s per-token floor) and an evaluation needs 4x fewer decoding
    steps. 128 rows of a 672-token KV cache of Qwen2.5-0.5B in fp16 take about 1 GiB."""
    return 512 if max_new_tokens <= 32 else (128 if cuda else 32)


def evaluate(
    model,
    tokenizer,
    task: Task,
    problems: Sequence[Problem],
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    *,
    strict: bool | None = None,
    k: int = 0,
    temperature: float = 0.7,
    seed: int = 0,
) -> EvalResult:
    """Greedy accuracy on ``problems``: the share whose greedy completion passes ``task.check``.

    ``max_new_tokens`` None: ``max_answer_tokens(task)``. ``batch_size`` None: ``eval_batch_size``. ``strict`` None: computed when the
    task has a format-strict check (GSM8K). ``k >= 2``: also pass@k and majority@k over ``k`` samples at
    ``temperature``, drawn with ``seed`` (deterministic for a given model, problems and seed). The result
    also holds each greedy completion's length in tokens (``lengths``, ``mean_length``): under a tight budget a
    gain can come from brevity alone (answers that used to run past the budget now fit).
    """
    t0 = time.perf_counter()
    problems = list(problems)
    max_new_tokens = max_new_tokens or max_answer_tokens(task)
    batch_size = batch_size or eval_batch_size(max_new_tokens, str(getattr(model, "device", "cpu")).startswith("cuda"))
    strict = task.has_strict_check if strict is None else strict
    comps = rollout.greedy_complete(
        model, tokenizer, [p.prompt for p in problems], max_new_tokens, batch_size, **_stop_kw(task, tokenizer)
    )
    lengths = (
        [len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in comps] if tokenizer is not None else []
    )
    correct = task.check_many(problems, [c.strip() for c in comps])
    rows = [
        {"question": p.question, "gold": p.answer, "completion": c, "correct": ok}
        for p, c, ok in zip(problems, comps, correct)
    ]
    if strict:
        for p, row in zip(problems, rows):
            row["strict"] = task.check_strict(p, row["completion"])
    extra: dict = {}
    if k >= 2:
        extra = _sampled_metrics(
            model, tokenizer, task, problems, rows, k, max_new_tokens, batch_size, strict, temperature, seed
        )
    return EvalResult(
        _share(correct),
        len(problems),
        correct,
        comps,
        k=k if k >= 2 else 1,
        strict=_share([r["strict"] for r in rows]) if strict else None,
        seconds=time.perf_counter() - t0,
        rows=rows,
        lengths=lengths,
        max_new_tokens=max_new_tokens,
        **extra,
    )


def paired_difference(first: Sequence[bool], second: Sequence[bool]) -> dict:
    """Accuracy of ``first`` minus that of ``second`` on the same problems, with its paired standard error.

    With ``b`` problems only ``first`` gets right and ``c`` only ``second``, the difference is ``(b - c) / n``
    and its standard error ``sqrt(b + c - (b - c)^2 / n) / n`` (the variance of the mean of the per-problem
    differences, each -1, 0 or +1; the normal approximation behind McNemar's test). Problems both methods get
    right or wrong carry no information about which is better, so pairing is far tighter than comparing two
    independent accuracies. Returns ``{"diff", "se", "b", "c", "n"}``.
    """
    if len(first) != len(second) or not first:
        raise ValueError(
            f"paired_difference needs two equally long, non-empty lists of flags (got {len(first)} and {len(second)})"
        )
    n = len(first)
    b = sum(bool(x) and not bool(y) for x, y in zip(first, second))
    c = sum(bool(y) and not bool(x) for x, y in zip(first, second))
    se = math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
    return {"diff": (b - c) / n, "se": se, "b": b, "c": c, "n": n}


def vote_curve(task: Task, problems: Sequence[Problem], result: EvalResult, ks: Sequence[int]) -> dict[int, dict]:
    """majority@k and pass@k for each ``k`` in ``ks``, from the first ``k`` of the samples ``evaluate(..., k=K)``
    drew for each problem (``k <= K``), scored exactly as ``evaluate`` scores its ``K`` samples.

    Self-consistency (Wang et al., arXiv 2203.11171) is read as a curve over the number of sampled
    paths: pass@k rises towards the share of problems the model can solve at all, majority@k towards the share
    where the right answer is the most likely one. Returns ``{k: {"majority": [bool] per problem,
    "pass": [bool], "majority_at_k": float, "pass_at_k": float}}``.
    """
    problems = list(problems)
    if not result.rows or "samples" not in result.rows[0]:
        raise ValueError("vote_curve needs the samples of evaluate(..., k=K) with K >= 2")
    have = len(result.rows[0]["samples"])
    if any(k < 1 or k > have for k in ks):
        raise ValueError(f"every k must be between 1 and the {have} samples drawn per problem (got {list(ks)})")
    curve = {}
    for k in ks:
        scored = [_score_samples(task, p, row["samples"][:k], strict=False) for p, row in zip(problems, result.rows)]
        maj, pas = [s["majority"] for s in scored], [s["pass"] for s in scored]
        curve[k] = {"majority": maj, "pass": pas, "majority_at_k": _share(maj), "pass_at_k": _share(pas)}
    return curve


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from ``n`` samples of which ``c`` passed (Chen et al., "Evaluating Large
    Language Models Trained on Code", arXiv 2107.03374, eq. 1): ``1 - C(n - c, k) / C(n, k)``, the chance that
    k of the n samples drawn without replacement hold at least one pass; computed as a product, which stays
    exact where the binomials overflow. Needs ``0 <= c <= n`` and ``1 <= k <= n``."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


@dataclass
class PassAtK:
    """``sampled_pass_at_k``'s result: ``n`` samples per problem, ``correct[i]`` of them passed problem i;
    ``pass_at[k]`` the mean unbiased pass@k over the problems and ``stderr[k]`` its standard error over
    problems; ``samples[i]`` the completions (kept for inspection)."""

    n: int
    correct: list[int]
    pass_at: dict[int, float]
    stderr: dict[int, float]
    samples: list[list[str]] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        return {"n": self.n, "pass_at": self.pass_at, "stderr": self.stderr}


def sampled_pass_at_k(
    model,
    tokenizer,
    task: Task,
    problems: Sequence[Problem],
    n: int = 8,
    ks: Sequence[int] | None = None,
    *,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
) -> PassAtK:
    """pass@k for each ``k`` in ``ks`` (default: 1, 2, 4, ... up to ``n``) from ``n`` samples a problem at
    ``temperature``, with the unbiased estimator ``pass_at_k``; samples are drawn with the task's stop rule
    and checked with ``task.check_many``. Reproducible for a seed on a device: each chunk of problems draws
    from its own generator (``rollout.make_generator``: on the model's device on CUDA, where a CPU seed would not
    reach the sampler)."""
    problems = list(problems)
    ks = sorted(set(ks or [2**i for i in range(n.bit_length()) if 2**i <= n]))
    max_new_tokens = max_new_tokens or max_answer_tokens(task)
    per = max(1, batch_size // n)
    device = next(model.parameters()).device
    stop = task.stop_after(tokenizer)
    correct: list[int] = []
    samples: list[list[str]] = []
    for i in range(0, len(problems), per):
        chunk = problems[i : i + per]
        r = rollout.sample_groups(
            model,
            tokenizer,
            [p.prompt for p in chunk],
            n,
            max_completion_length=max_new_tokens,
            temperature=temperature,
            generator=rollout.make_generator(device, seed + i),
            stop_after=stop,
        )
        rows = [p for p in chunk for _ in range(n)]
        ok = task.check_many(rows, [t.strip() for t in r.texts])
        for j in range(len(chunk)):
            correct.append(int(sum(ok[j * n : (j + 1) * n])))
            samples.append(r.texts[j * n : (j + 1) * n])
    pass_at, stderr = {}, {}
    for k in ks:
        vals = [pass_at_k(n, c, k) for c in correct]
        m = sum(vals) / max(1, len(vals))
        pass_at[k] = m
        var = sum((v - m) ** 2 for v in vals) / max(1, len(vals) - 1)
        stderr[k] = (var / max(1, len(vals))) ** 0.5
    return PassAtK(n, correct, pass_at, stderr, samples)


def accuracy_by(problems: Sequence[Problem], correct: Sequence[bool], key: str = "level") -> dict:
    """Accuracy per value of ``problem.meta[key]`` (the code task's difficulty ``level``, or its ``family``):
    ``{value: {"n": ..., "accuracy": ..., "stderr": ...}}``, sorted by value; problems without the key are
    grouped under None."""
    groups: dict = {}
    for p, ok in zip(problems, correct):
        groups.setdefault(p.meta.get(key), []).append(bool(ok))
    out = {}
    for v in sorted(groups, key=lambda x: (x is None, str(x))):
        flags = groups[v]
        acc = _share(flags)
        out[v] = {"n": len(flags), "accuracy": acc, "stderr": (acc * (1 - acc) / max(1, len(flags))) ** 0.5}
    return out
