"""Every task by name, in one static table: nothing registers itself from elsewhere at import time."""

from __future__ import annotations

from grpo_lab.errors import UnknownNameError
from grpo_lab.tasks.base import Task
from grpo_lab.tasks.gsm8k import GSM8KTask
from grpo_lab.tasks.synthetic import AdditionTask, CountdownTask, MixedArithmeticTask

TASKS: dict[str, type[Task]] = {"addition": AdditionTask, "arithmetic": MixedArithmeticTask, "countdown": CountdownTask,
                                "gsm8k": GSM8KTask}


def get_task(name: str, tokenizer=None, **kwargs) -> Task:
    """A task by name (``addition``, ``arithmetic``, ``countdown``, ``gsm8k``), built with ``kwargs``.

    ``tokenizer`` goes to tasks whose prompts are rendered with a chat template (``chat_prompts``: GSM8K); the
    char-level tasks ignore it, since their prompt is the raw string a char model continues. An unknown name
    raises ``UnknownNameError`` (a ``KeyError``) naming the choices.
    """
    if name not in TASKS:
        raise UnknownNameError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    cls = TASKS[name]
    if tokenizer is not None and cls.chat_prompts:
        kwargs["tokenizer"] = tokenizer
    return cls(**kwargs)
