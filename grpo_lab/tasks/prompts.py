"""Prompt formatting: the plain prompt of a char-level model, or a chat rendered by the tokenizer's template.

``DEFAULT_SYSTEM`` asks for a final ``#### <number>`` line, the GSM8K convention (Cobbe et al., arXiv
2110.14168) that ``rewards.extract_answer`` looks for and ``rewards.strict_is_correct`` demands.
"""

from __future__ import annotations

from grpo_lab.tasks.base import DatasetFormatError, Problem

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
