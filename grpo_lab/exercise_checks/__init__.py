"""Checks for the exercises, one module per notebook; each registers tests with ``grading.exercise_test``.

Every module here is imported by ``grpo_lab.grading`` on the first ``check(...)``: adding a file adds its
exercises (modules whose name starts with ``_`` are helpers). Tests compare a student's function with stored
expected values or with the library's implementation on small inputs, and must finish in well under their
time limit. Each exercise lists the library functions it reimplements (``forbid=``), so that passing or
calling them is refused (``_own_work``); concept questions are registered with ``grading.concept_questions``.
"""
