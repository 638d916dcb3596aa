"""Reward functions with TRL's contract ``f(prompts, completions, **kwargs) -> list[float]``.

Dataset columns arrive as keyword lists (TRL 1.16 ``GRPOTrainer._calculate_rewards``); completions are
plain strings or chat messages. Every function here accepts both, never raises on a malformed completion
(it scores 0) and keeps the reason of every score in ``last_reasons``. The correctness reward is the
verifiable reward of RLVR (DeepSeekMath, arXiv 2402.03300); the overlong penalty is DAPO's (arXiv
2503.14476); the code reward runs untrusted code in ``grpo_lab.sandbox``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from grpo_lab.errors import SandboxInfrastructureError
from grpo_lab.rewards.equivalence import answers_match
from grpo_lab.rewards.extraction import _HASHES_RE, _boxed_contents, _phrase_answer, extract_answer
from grpo_lab.sandbox import CodeResult, extract_code, run_many


def strict_is_correct(completion: str, gold: str) -> bool:
    """The strict grader of notebook 01: the completion must pass ``format_reward_strict`` (reasoning, then
    exactly one final ``#### x`` / ``\\boxed{x}`` on the last line) and ``x`` must equal ``gold``
    character for character. The opposite end of the scale from ``is_correct``."""
    text = completion_text(completion)
    if text is None or _strict_format(text, 0, {})[0] != 1.0:
        return False
    pred = extract_answer(text)
    return pred is not None and pred.strip() == str(gold).strip()


# --------------------------------------------------------------------------------------------------
# TRL-compatible reward functions
# --------------------------------------------------------------------------------------------------


def completion_text(completion) -> str | None:
    """The text of a completion: a plain string, or the assistant content of a chat-message list
    (``[{"role": "assistant", "content": ...}]``; content may also be a list of ``{"type": "text"}`` parts,
    several assistant messages are joined). None when it is neither (a malformed completion)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        parts = []
        for msg in completion:
            if not isinstance(msg, dict):
                return None
            if msg.get("role", "assistant") != "assistant":
                continue
            content = msg.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(
                    p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text", ""), str)
                )
            elif content is not None:
                return None
        return "\n".join(parts) if parts else ("" if completion else None)
    return None


class RewardFunction:
    """A TRL reward function ``f(prompts, completions, **kwargs) -> list[float]`` with a readable trail.

    ``score(text, i, kwargs) -> (reward, reason)`` scores one completion (``i`` indexes the dataset
    columns in ``kwargs``). ``__call__`` extracts each completion's text, never lets one malformed
    completion raise (it scores 0, the reason says why), and keeps ``last_reasons`` (one string per
    completion) and ``last_rewards`` for inspection. ``__name__`` is what TRL logs (``rewards/<name>``).

    ``score_batch(items, kwargs) -> [(reward, reason), ...]``, if given, scores the well-formed completions
    together instead (``items``: their ``(i, text)`` pairs; one result per item, in order), for a checker that
    is faster on a batch (the code sandbox's ``run_many``); it must itself score a bad completion 0. A missing
    dataset column (``KeyError``) and ``SandboxInfrastructureError`` (no reward is known) always propagate.
    """

    def __init__(self, name: str, score: Callable | None, doc: str = "", *, score_batch: Callable | None = None):
        self.__name__ = name
        self.__qualname__ = name
        self.__doc__ = doc or getattr(score or score_batch, "__doc__", "")
        self._score = score
        self._score_batch = score_batch
        self.last_reasons: list[str] = []
        self.last_rewards: list[float] = []

    def __call__(self, prompts=None, completions=None, **kwargs) -> list[float]:
        completions = list(completions or [])
        rewards, reasons = [0.0] * len(completions), [""] * len(completions)
        items = []
        for i, c in enumerate(completions):
            text = completion_text(c)
            if text is None:
                reasons[i] = f"malformed completion ({type(c).__name__}): scored 0"
            else:
                items.append((i, text))
        if self._score_batch is not None:
            scored = self._score_batch(items, kwargs)
        else:
            scored = [self._score_one(text, i, kwargs) for i, text in items]
        for (i, _), (r, why) in zip(items, scored, strict=True):
            rewards[i], reasons[i] = float(r), why
        self.last_rewards, self.last_reasons = rewards, reasons
        return rewards

    def _score_one(self, text: str, i: int, kwargs: dict) -> tuple[float, str]:
        try:
            r, why = self._score(text, i, kwargs)
            return float(r), why
        except (KeyError, SandboxInfrastructureError):
            raise  # a missing dataset column is a configuration bug; an unscored program has no reward
        except Exception as e:
            return 0.0, f"error while scoring ({type(e).__name__}: {e}): scored 0"

    def __repr__(self):
        return f"<reward {self.__name__}>"


def _column(kwargs: dict, column: str, i: int):
    if column not in kwargs:
        raise KeyError(
            f"reward needs the dataset column {column!r}; got columns {sorted(k for k in kwargs if k not in ('completion_ids', 'trainer_state', 'log_extra', 'log_metric'))}"
        )
    return kwargs[column][i]


def _gold_of(value) -> str:
    """A gold answer from a dataset cell: a GSM8K solution "... #### 72" gives "72"."""
    s = str(value)
    if "####" in s:
        return s.rsplit("####", 1)[1].strip()
    return s.strip()


def make_correctness_reward(column: str = "answer", correct: float = 1.0, wrong: float = 0.0) -> RewardFunction:
    """Correctness against a dataset column: ``correct`` if ``is_correct(completion, gold)`` else ``wrong``.

    The verifiable reward of RLVR (DeepSeekMath, arXiv 2402.03300; DAPO, arXiv 2503.14476). A cell holding a
    whole GSM8K solution ("... #### 72") is reduced to its gold answer.
    """

    def score(text, i, kwargs):
        gold = _gold_of(_column(kwargs, column, i))
        pred = extract_answer(text)
        if pred is None:
            return wrong, "no answer found"
        if answers_match(pred, gold):
            return correct, f"correct: {pred!r} = {gold!r}"
        return wrong, f"wrong: extracted {pred!r}, gold {gold!r}"

    return RewardFunction(
        "correctness" if column == "answer" else f"correctness_{column}", score, make_correctness_reward.__doc__
    )


correctness_reward = make_correctness_reward("answer")

_STRICT_BOXED_TAIL_RE = re.compile(r"\}\s*(?:(?:\$\$?|\\\]|\\\))\s*)?\.?$")
_STRICT_HASH_RE = re.compile(r"^####[ \t]*-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?[ \t]*$")


def _strict_format(text, i, kwargs):
    """1.0 iff reasoning is followed by exactly one final answer, on the last line, and nothing after it:
    a ``#### <number>`` line, or a line ending in ``\\boxed{...}`` (optionally closed by ``$``/``\\]``/``.``)."""
    lines = [ln.rstrip() for ln in text.strip().split("\n") if ln.strip()]
    if not lines:
        return 0.0, "empty completion"
    n_markers = text.count("####") + len(re.findall(r"\\boxed", text))
    last = lines[-1].strip()
    hash_ok = bool(_STRICT_HASH_RE.match(last))
    # "\boxed{x}" then optional "$", "$$", "\]" or "\)" and "." at the end of the line. Read from the final
    # "}" backwards rather than with one regex "\\boxed\{.+\}...$", which backtracks in O(n^2) on a line of
    # unterminated boxes (1 s for 20,000 of them).
    tail = _STRICT_BOXED_TAIL_RE.search(last)
    first = last.find("\\boxed{")
    boxed_ok = (
        tail is not None and 0 <= first and first + len("\\boxed{") < tail.start() and bool(_boxed_contents(last))
    )
    if not (hash_ok or boxed_ok):
        if "####" in text or "\\boxed" in text:
            return 0.0, "the final answer is not on the last line (or is not a number after ####)"
        return 0.0, "no '#### <number>' or '\\boxed{}' final line"
    if n_markers != 1:
        return 0.0, f"{n_markers} final-answer markers: exactly one is allowed"
    reasoning = lines[:-1] if hash_ok else lines[:-1] + [last.split("\\boxed")[0]]
    if not any(re.search(r"[A-Za-z0-9]", ln) for ln in reasoning):
        return 0.0, "no reasoning before the final answer"
    return 1.0, "strict format ok"


def _soft_format(text, i, kwargs):
    """1.0 if a ``#### x`` line or a ``\\boxed{x}`` appears anywhere, 0.5 for only an answer phrase
    ("the answer is x", "Answer: x"), else 0."""
    if any(h.strip() for h in _HASHES_RE.findall(text)) or _boxed_contents(text):
        return 1.0, "has a final-answer marker"
    if _phrase_answer(text):
        return 0.5, "only an answer phrase, no #### or \\boxed"
    return 0.0, "no final-answer marker"


format_reward_strict = RewardFunction("format_strict", _strict_format)
format_reward_soft = RewardFunction("format_soft", _soft_format)


def overlong_penalty_value(length: int, max_length: int, cache_length: int) -> float:
    """DAPO's soft overlong punishment (arXiv 2503.14476, eq. 13), with L_max = ``max_length`` and
    L_cache = ``cache_length``::

        R(y) = 0                                 if |y| <= L_max - L_cache
             = ((L_max - L_cache) - |y|) / L_cache   if L_max - L_cache < |y| <= L_max
             = -1                                if |y| > L_max

    A penalty ramping linearly from 0 to -1 over the last ``cache_length`` tokens, added to the
    correctness reward, so that truncation is discouraged without the noise of a hard cliff. It is a
    length-shaping reward, separate from DAPO's overlong *filtering*, which instead masks truncated samples out
    of the loss (``mask_truncated_completions`` in TRL and in ``trainer.GRPOConfig``).
    """
    if cache_length <= 0 or cache_length > max_length:
        raise ValueError(
            f"need 0 < cache_length <= max_length, got cache_length={cache_length}, max_length={max_length}"
        )
    expected = max_length - cache_length
    if length <= expected:
        return 0.0
    if length <= max_length:
        return (expected - length) / cache_length
    return -1.0


def make_overlong_penalty(max_length: int, cache_length: int, tokenizer=None) -> RewardFunction:
    """A TRL reward applying ``overlong_penalty_value`` to each completion's length in tokens.

    The length is, in order of preference: ``len(completion_ids[i])`` (TRL passes ``completion_ids``),
    the length of ``tokenizer(text)["input_ids"]``, else the number of characters (then give
    ``max_length``/``cache_length`` in characters). TRL truncates at ``max_completion_length``, so set
    ``max_length`` at or below it (DAPO used L_max = 16,384 with a 4,096-token cache, generating up to 20,480).
    """
    overlong_penalty_value(0, max_length, cache_length)  # validate now, not on the first batch

    def score(text, i, kwargs):
        ids = kwargs.get("completion_ids")
        if ids is not None and i < len(ids):
            n, unit = len(ids[i]), "tokens"
        elif tokenizer is not None:
            n, unit = len(tokenizer(text, add_special_tokens=False)["input_ids"]), "tokens"
        else:
            n, unit = len(text), "chars"
        r = overlong_penalty_value(n, max_length, cache_length)
        return r, f"{n} {unit}: penalty {r:+.3f}"

    return RewardFunction("overlong_penalty", score, make_overlong_penalty.__doc__)


class CombinedReward(RewardFunction):
    """``sum_k w_k * f_k(prompts, completions, **kwargs)``; see ``combine_rewards``."""

    def __init__(self, funcs, weights, name):
        self.funcs, self.weights = funcs, weights
        self.names = [getattr(f, "__name__", f"reward{k}") for k, f in enumerate(funcs)]
        super().__init__(
            name or "+".join(f"{w:g}*{n}" for w, n in zip(weights, self.names)), None, combine_rewards.__doc__
        )

    def __call__(self, prompts=None, completions=None, **kwargs) -> list[float]:
        completions = list(completions or [])
        total = [0.0] * len(completions)
        notes: list[list[str]] = [[] for _ in completions]
        for f, w, n in zip(self.funcs, self.weights, self.names):
            out = f(prompts=prompts, completions=completions, **kwargs)
            why = getattr(f, "last_reasons", None) or [""] * len(completions)
            for i, r in enumerate(out):
                r = 0.0 if r is None else float(r)
                total[i] += w * r
                notes[i].append(f"{n}={r:g}" + (f" ({why[i]})" if i < len(why) and why[i] else ""))
        self.last_rewards, self.last_reasons = total, ["; ".join(x) for x in notes]
        return total


def combine_rewards(
    funcs: Sequence[Callable], weights: Sequence[float] | None = None, name: str | None = None
) -> RewardFunction:
    """One reward: ``sum_k w_k * f_k(prompts, completions, **kwargs)`` (default weights 1).

    TRL can also weight several functions itself (``GRPOConfig.reward_weights``) and then logs each one;
    a combined function is for code that wants a single number (the from-scratch trainer, the notebooks).
    ``last_reasons`` lists every component's score and reason. A component returning None (TRL's "does not
    apply") counts 0. The default name spells the sum, e.g. ``1*correctness+0.2*format_strict``.
    """
    funcs = list(funcs)
    weights = [1.0] * len(funcs) if weights is None else [float(w) for w in weights]
    if len(weights) != len(funcs) or not funcs:
        raise ValueError(f"need one weight per reward function: {len(funcs)} functions, {len(weights)} weights")
    return CombinedReward(funcs, weights, name)


# --------------------------------------------------------------------------------------------------
# Code rewards
# --------------------------------------------------------------------------------------------------


def make_code_reward(column: str = "tests", timeout_s: float = 5.0) -> RewardFunction:
    """Code correctness: the last fenced python block of the completion (``extract_code``) is run with the
    assert-based tests of a dataset column in the sandbox; 1.0 iff ``CodeResult.passed``.

    The reason records the sandbox status and its isolation mode. The batch runs at once through
    ``grpo_lab.sandbox.run_many`` (each program in its own sandboxed process, identical programs once); a run
    the sandbox could not score is run again, and if it still cannot be, ``SandboxInfrastructureError`` is
    raised rather than a reward of 0 made up. See ``grpo_lab.sandbox`` for what the sandbox does and does not
    stop.
    """

    def job(text, i, kwargs):
        tests = _column(kwargs, column, i)
        if isinstance(tests, (list, tuple)):
            tests = "\n".join(map(str, tests))
        code = extract_code(text)
        return None if code is None else (code, str(tests))

    def score_batch(items, kwargs):
        jobs = [job(text, i, kwargs) for i, text in items]
        todo = [j for j in jobs if j is not None]
        results = iter(run_many(todo, timeout_s=timeout_s) if todo else [])
        return [(0.0, "no ```python block found") if j is None else _code_score(next(results)) for j in jobs]

    return RewardFunction(
        "code" if column == "tests" else f"code_{column}", None, make_code_reward.__doc__, score_batch=score_batch
    )


def _code_score(res: CodeResult) -> tuple[float, str]:
    return (1.0 if res.passed else 0.0), f"{res.status} [{res.isolation}]" + (f": {res.reason}" if res.reason else "")


code_reward = make_code_reward("tests")
