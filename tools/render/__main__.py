"""``python -m tools.render [--only SUBSTR] [--test-mode]`` (or ``python tools/render ...``) from the repository
root: see ``tools.render.run.main``."""

import sys
from pathlib import Path

if not __package__:  # `python tools/render`: the folder runs as a script, so put the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.render.run import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
