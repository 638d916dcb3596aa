"""Checks for the exercises, one module per notebook; each registers tests with ``grading.exercise_test``.

Every module here is imported by ``grpo_lab.grading`` on the first ``check(...)``: adding a file adds its
exercises. Tests compare a student's function with the library's reference implementation or with stored
expected values, on small inputs, and must finish in well under their time limit.
"""
