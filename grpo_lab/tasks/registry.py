"""Every task by name, in one static table: nothing registers itself from elsewhere at import time."""

from __future__ import annotations

from grpo_lab.errors import UnknownNameError
from grpo_lab.tasks.base import Task
from grpo_lab.tasks.code import CodeTask
from grpo_lab.tasks.constraints import ConstraintTask
from grpo_lab.tasks.gsm8k import GSM8KTask
from grpo_lab.tasks.synthetic import AdditionTask, CountdownTask, MixedArithmeticTask

TASKS: dict[str, type[Task]] = {
    "addition": AdditionTask,
    "arithmetic": MixedArithmeticTask,
    "code": CodeTask,
    "constraints": ConstraintTask,
    "countdown": CountdownTask,
    "gsm8k": GSM8KTask,
}


def get_task(name: str, tokenizer=None, system: str | None = None, **kwargs) -> Task:
    """A task by name (``addition``, ``arithmetic``, ``code``, ``constraints``, ``countdown``, ``gsm8k``), built with ``kwargs``.

    ``tokenizer``: the model's tokenizer. A chat model's (``prompts.is_chat_tokenizer``) makes every problem's
    prompt ``prompts.model_prompt`` of it, with ``system`` (default: the task's own, ``DEFAULT_SYSTEM`` for
    GSM8K, ``CODE_SYSTEM`` for code, ``CONSTRAINTS_SYSTEM`` for constraints and ``ANSWER_ONLY_SYSTEM`` for the others), and its answers free text checked leniently
    (``Task.check``); a char-level tokenizer changes nothing. An unknown name raises ``UnknownNameError`` (a
    ``KeyError``) naming the choices.
    """
    if name not in TASKS:
        raise UnknownNameError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    task = TASKS[name](**kwargs)
    task.tokenizer = tokenizer
    if system is not None:
        task.system = system
    return task
