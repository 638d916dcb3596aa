"""Give every notebook an "Open in Colab" badge that points at its own path (idempotent).

Exercise notebooks are generated from solutions/, so a solution's badge points at its exercises/ twin:
that is the notebook a student opens. Usage: ``python scripts/colab_badges.py`` from the project root.
"""

import json
import re
from pathlib import Path

REPO = "grpo-lab/grpo-lab"  # GitHub owner/name that Colab opens notebooks from
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
LINK = "https://colab.research.google.com/github/{repo}/blob/main/{path}"


def badge_for(path: Path) -> str:
    target = Path("exercises", path.name) if path.parent.name == "solutions" else path
    return f"{BADGE}({LINK.format(repo=REPO, path=target.as_posix())})"


def ensure_badge(path: Path) -> bool:
    nb = json.loads(path.read_text())
    first = nb["cells"][0]
    src = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    want = badge_for(path)
    if BADGE in src:
        new = re.sub(re.escape(BADGE) + r"\([^)]*\)", want, src)
    else:
        lines = src.split("\n")
        new = "\n".join([lines[0], "", want, *lines[1:]])
    if new == src:
        return False
    first["source"] = new
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return True


if __name__ == "__main__":
    for folder in ("notebooks", "solutions"):
        for p in sorted(Path(folder).glob("*.ipynb")):
            if ensure_badge(p):
                print("badge:", p)
