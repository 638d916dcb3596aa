"""Prompt formatting: the one function that turns a problem into the text a model continues.

- ``model_prompt(problem, tokenizer, system)``: THE prompt of training and evaluation alike. A chat model
  (``is_chat_tokenizer``: its tokenizer has a chat template that marks who speaks) gets the system prompt
  and the question rendered by its own template, with the generation prompt appended; a char-level model
  keeps the bare prompt (``"12+35="``; for GSM8K the question). Every ``Task`` renders its problems through
  it (``Task.render``), so a trainer and an evaluator given the same task can never see different prompts.
- ``format_prompt``: the lower-level renderer (plain, chat messages, a chat template rendered).
- ``DEFAULT_SYSTEM`` (GSM8K: reason, then ``#### <number>``), ``ANSWER_ONLY_SYSTEM`` (arithmetic: the
  number only) and ``CODE_SYSTEM`` (the code task: one Python code block). ``#### <number>`` is the GSM8K convention (Cobbe et al., arXiv 2110.14168) that
  ``rewards.extract_answer`` looks for and ``rewards.strict_is_correct`` demands.
"""

from __future__ import annotations

from grpo_lab.errors import GrpoLabError


class DatasetFormatError(ValueError, GrpoLabError):
    """A dataset row is malformed; the message names the row and the fix."""


DEFAULT_SYSTEM = (
    "Solve the problem step by step. End your reply with the final answer on its own line as '#### <number>'."
)
ANSWER_ONLY_SYSTEM = "Answer with the final number only, as '#### <number>'."
CODE_SYSTEM = "Reply with only a Python code block that defines the function."  # the code task (``tasks.code``)


def is_chat_tokenizer(tokenizer) -> bool:
    """True for a chat model's tokenizer: it has a chat template that renders the speaker's role.

    The course's char-level tokenizers carry a trivial template (contents joined by newlines, no roles) so
    that chat-style code runs on them; their models were never taught a chat format, so they count as plain.
    """
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    return bool(template) and "role" in str(template)


def model_prompt(problem, tokenizer=None, system: str | None = DEFAULT_SYSTEM) -> str:
    """The text a model continues for ``problem``: the single prompt format of training and evaluation.

    Chat tokenizer (``is_chat_tokenizer``): ``format_prompt(problem, "chat", tokenizer, system)``, i.e. the
    tokenizer's own template over ``[system, user: question]`` with the assistant's turn opened (what
    ``apply_chat_template(..., add_generation_prompt=True)`` returns, as TRL renders conversational prompts).
    Otherwise: ``format_prompt(problem, "plain")``, the bare prompt a char-level model was trained on.
    """
    if is_chat_tokenizer(tokenizer):
        return format_prompt(problem, "chat", tokenizer, system=system)
    return format_prompt(problem, "plain")


def format_prompt(problem, style: str = "plain", tokenizer=None, system: str | None = DEFAULT_SYSTEM):
    """Format a problem for a model.

    - ``style="plain"``: the raw prompt string (``"12+35="``) for char-level models, or the question.
    - ``style="messages"``: a chat message list (what TRL's conversational datasets hold).
    - ``style="chat"``: the message list rendered by ``tokenizer.apply_chat_template`` with the
      generation prompt appended (what a chat model continues).
    Accepts a ``base.Problem`` or a GSM8K row (``{"question": ...}``).
    """
    if isinstance(problem, dict):
        if "question" not in problem:
            raise DatasetFormatError(f"a row needs a 'question' field to be formatted; got keys {sorted(problem)}")
        question, plain = problem["question"], problem["question"]
    else:
        question, plain = problem.question, problem.meta.get("plain_prompt", problem.prompt)
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
