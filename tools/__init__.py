"""Repository tools: they work on this checkout (notebooks, exercises, badges), are not part of the ``grpo_lab``
wheel, and nothing in ``grpo_lab`` imports them (tests/test_architecture.py checks it).

- ``tools.render``: ``make render``, the notebooks stored executed in full mode (``python -m tools.render``);
- ``tools.build_exercises``: ``make exercises``, exercises/ generated from solutions/;
- ``tools.colab_badges``: the "Open in Colab" badges and install cells.

Run them from the repository root (``python -m tools.render``, ``python tools/build_exercises.py``).
"""
