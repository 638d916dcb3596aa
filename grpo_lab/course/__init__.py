"""The course machinery: what the notebooks use to teach, as opposed to the library they teach.

- ``grading``: ``check(...)`` for the exercises (the runtime grader in the student's kernel), with ``registry``
  (what an exercise is), ``own_work`` (refusing the library's own function) and ``checks/`` (the tests, one
  module per notebook) and ``questions/`` (the concept questions, as data);
- ``widgets``: the interactive explorers and the training dashboard;
- ``gallery``: the hostile programs notebook 01 runs against the sandbox.

This package sits on top of ``grpo_lab``: it may import any part of the library, and no module of the library
imports it (tests/test_architecture.py checks both). The short paths the notebooks use, ``grpo_lab.grading`` and
``grpo_lab.widgets.*``, are thin re-exports of these modules.
"""
