"""Verifiable tasks: seeded generators with held-out splits, GSM8K loading, prompt formatting.

- ``base``: ``Problem``, ``Task`` (train / held-out split by a hash of the problem, ``check``, ``extract``).
- ``synthetic``: 2-digit addition, mixed arithmetic, Countdown (char-level prompts, exact checks).
- ``countdown``: Countdown answered in worked steps (``check_steps``, ``steps_to_expression``), an exact solver
  (``solve``, a baseline) and format-only warm-start data that reads no solution (``format_examples``).
- ``label_free``: ``LabelFreeVerifier``, a check on a sealed copy of each problem (``seal``), so a stage built
  with it provably read no gold answer (``GoldLabelRead`` otherwise).
- ``code``: write one Python function, checked by hidden unit tests in the sandbox (``CodeTask``,
  ``extract_program``, the name rule); its problem families are in ``code_families``.
- ``constraints``: COLLIE-style constrained sentences checked by their constraints, no gold output
  (``ConstraintTask``, ``make_problem``, ``program_for``, ``sentence_of``, ``sentence_potential``, the planner's
  few-shot ``planner_messages``); ``constraint_programs``: the JSON form of those constraints a planner writes
  (``parse_program``, ``Program.potential`` for SMC steering, ``ProgramError``, ``same_program``).
- ``gsm8k``: GSM8K (Cobbe et al., arXiv 2110.14168) from the hub or the packaged jsonl, ``GSM8KTask``.
- ``prompts``: ``model_prompt`` (the one prompt format of training and evaluation), ``is_chat_tokenizer``,
  ``format_prompt`` (plain, chat messages, a chat template rendered), ``DEFAULT_SYSTEM``, ``ANSWER_ONLY_SYSTEM``, ``CODE_SYSTEM``.
- ``registry``: ``TASKS`` and ``get_task``, one static table.
"""

from grpo_lab.tasks.base import DatasetFormatError, Problem, Task, is_heldout_key
from grpo_lab.tasks.code import CodeTask, extract_program
from grpo_lab.tasks.constraint_programs import Check, Program, ProgramError, parse_program, same_program, words_of
from grpo_lab.tasks.constraints import (
    CONSTRAINTS_SYSTEM,
    PLANNER_SYSTEM,
    ConstraintTask,
    make_problem,
    planner_messages,
    program_for,
    sentence_of,
    sentence_potential,
)
from grpo_lab.tasks.gsm8k import (
    GSM8K_HUB,
    GSM8KTask,
    find_project_root,
    gsm8k_split,
    load_gsm8k,
    local_gsm8k_path,
    parse_gsm8k_answer,
)
from grpo_lab.tasks.prompts import (
    ANSWER_ONLY_SYSTEM,
    CODE_SYSTEM,
    DEFAULT_SYSTEM,
    format_prompt,
    is_chat_tokenizer,
    model_prompt,
)
from grpo_lab.tasks.registry import TASKS, get_task
from grpo_lab.tasks.synthetic import AdditionTask, CountdownTask, MixedArithmeticTask

__all__ = [
    "ANSWER_ONLY_SYSTEM",
    "AdditionTask",
    "CODE_SYSTEM",
    "CONSTRAINTS_SYSTEM",
    "Check",
    "CodeTask",
    "ConstraintTask",
    "CountdownTask",
    "DEFAULT_SYSTEM",
    "DatasetFormatError",
    "GSM8KTask",
    "GSM8K_HUB",
    "MixedArithmeticTask",
    "PLANNER_SYSTEM",
    "Problem",
    "Program",
    "ProgramError",
    "TASKS",
    "Task",
    "extract_program",
    "find_project_root",
    "format_prompt",
    "get_task",
    "gsm8k_split",
    "is_chat_tokenizer",
    "is_heldout_key",
    "load_gsm8k",
    "local_gsm8k_path",
    "make_problem",
    "model_prompt",
    "parse_gsm8k_answer",
    "parse_program",
    "planner_messages",
    "program_for",
    "same_program",
    "sentence_of",
    "sentence_potential",
    "words_of",
]
