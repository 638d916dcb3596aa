"""The checks of the exercises, one module per notebook (``nb04_rollout`` and ``nb04_update`` split notebook 04 by
concept); each test is marked with ``grpo_lab.course.registry.exercise_test``.

The grader reads the modules that ``grpo_lab.course.grading.check_modules`` lists, so a new module is added there.
Tests compare a student's function with stored expected values or with the library's implementation on small
inputs, and must finish in well under their time limit. Each exercise lists the library functions it
reimplements (``forbid=``), so that passing or calling them is refused (``grpo_lab.course.own_work``). Concept
questions are data, in ``grpo_lab/course/questions/``.
"""
