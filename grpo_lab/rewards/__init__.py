"""Verifiable rewards: answer extraction and equivalence, TRL-compatible reward functions, code rewards.

RLVR (DeepSeekMath, arXiv 2402.03300; DAPO, arXiv 2503.14476) needs no reward model, only a checker, and
the checker *is* the reward model: a lenient one is reward-hacked, a strict one gives a small model nothing
to learn from. Where to look:

- ``extraction``: ``extract_answer``, the raw final answer of a completion (``\\boxed{}``, ``####``,
  "the answer is", last number).
- ``equivalence``: ``answers_match`` and ``is_correct``, exact arithmetic first, math-verify for LaTeX,
  every call time-bounded.
- ``functions``: reward functions in TRL's ``f(prompts, completions, **kwargs) -> list[float]`` form
  (correctness, strict/soft format, DAPO's overlong penalty, weighted sums, code rewards).
- Code rewards run untrusted code in a sandboxed child process: ``grpo_lab.sandbox``.

Every public name is importable from ``grpo_lab.rewards`` itself.
"""

from grpo_lab.rewards.equivalence import MAX_ANSWER_CHARS, answers_match, is_correct
from grpo_lab.rewards.extraction import extract_answer
from grpo_lab.rewards.functions import (
    CombinedReward,
    RewardFunction,
    code_reward,
    combine_rewards,
    completion_text,
    correctness_reward,
    format_reward_soft,
    format_reward_strict,
    make_code_reward,
    make_correctness_reward,
    make_overlong_penalty,
    overlong_penalty_value,
    strict_is_correct,
)
from grpo_lab.sandbox import CodeResult, extract_code, run_tests

__all__ = [
    "extract_answer",
    "answers_match",
    "is_correct",
    "strict_is_correct",
    "completion_text",
    "RewardFunction",
    "correctness_reward",
    "make_correctness_reward",
    "format_reward_strict",
    "format_reward_soft",
    "make_overlong_penalty",
    "overlong_penalty_value",
    "combine_rewards",
    "code_reward",
    "make_code_reward",
    "run_tests",
    "CodeResult",
    "extract_code",
    "CombinedReward",
    "MAX_ANSWER_CHARS",
]
