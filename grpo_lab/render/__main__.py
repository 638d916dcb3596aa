"""``python -m grpo_lab.render [--only SUBSTR] [--test-mode]``: see ``grpo_lab.render.run.main``."""

from grpo_lab.render.run import main

if __name__ == "__main__":  # the architecture tests import every module; only ``-m`` renders
    raise SystemExit(main())
