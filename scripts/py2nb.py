"""Write a notebook from a percent-format script (``# %%`` code cells, ``# %% [markdown]`` text cells).

Authoring aid only: the committed ``.ipynb`` is the source of truth; keep the ``.py`` drafts outside the
tree. Usage: ``python scripts/py2nb.py draft.py notebooks/04_grpo_from_scratch.ipynb``.
"""

import json
import re
import sys


def convert(text: str) -> dict:
    cells = []
    kind, buf = None, []

    def flush():
        if kind is None:
            return
        src = "\n".join(buf).strip("\n")
        if kind == "markdown":
            src = "\n".join(re.sub(r"^# ?", "", line) for line in src.splitlines())
        if src.strip():
            cell = {"cell_type": kind, "metadata": {}, "source": src}
            if kind == "code":
                cell.update(outputs=[], execution_count=None)
            cells.append(cell)

    for line in text.splitlines():
        m = re.match(r"^# %%( \[markdown\])?", line)
        if m:
            flush()
            kind, buf = ("markdown" if m.group(1) else "code"), []
        elif kind is not None:
            buf.append(line)
    flush()
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    nb = convert(open(src).read())
    for i, c in enumerate(nb["cells"]):
        c["id"] = f"c{i:03d}"
    with open(dst, "w") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {dst}: {len(nb['cells'])} cells")
