"""``check(...)`` moved to ``grpo_lab.course.grading`` with the rest of the course machinery; this module is kept so
that the notebooks' short import works (``from grpo_lab.grading import check``)."""

from grpo_lab.course.grading import CheckReport, ExerciseTimeout, check, list_exercises, questions_markdown

__all__ = ["CheckReport", "ExerciseTimeout", "check", "list_exercises", "questions_markdown"]
