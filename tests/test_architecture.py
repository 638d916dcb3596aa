"""The library's floor plan holds: no import cycles, each module in its layer, small modules and functions.

Imports are read from the source (``ast``), at every nesting level: a lazy ``from grpo_lab.x import y``
inside a function is a dependency too, and a cycle through one is still a cycle a reader has to untangle.
The layers are the ones drawn in ``grpo_lab/README.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "grpo_lab"

# Bottom to top. A module may import from its own layer (without a cycle) or from any layer below.
LAYERS: dict[str, int] = {
    "deadline": 0,
    "errors": 0,
    "env": 1,
    "tasks": 1,
    "models": 1,
    "rewards": 1,
    "sandbox": 1,
    "grpo": 1,
    "rollout": 1,
    "memory": 1,
    "evaluation": 2,
    "sft": 2,
    "config": 2,
    "checkpoint": 2,
    "loop": 2,
    "trainer": 2,
    "ppo": 2,
    "ensemble": 2,
    "cost": 2,
    "distill": 3,
    "hygiene": 3,
    "trl_backend": 3,
    "plan": 3,
    "trl_equivalence": 3,
    "presets": 3,
    "widgets": 4,
    "grading": 4,
    "exercise_checks": 4,
    "jobs": 4,
    "render": 4,
    "cli": 5,
}
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
LONG_FUNCTION_REASON = "Why one function:"


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` names or lies in (``grpo_lab.ensemble.majority_vote`` -> the package)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(mod: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every ``grpo_lab`` module that ``mod`` imports anywhere in its source, plus, for an import from outside a
    package, the package's ``__init__`` (Python runs it first)."""
    root = mod.split(".")[0]
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            if t.split(".")[0] != root:
                continue
            hit = _resolve(t, known)
            if hit is None or hit == root or hit == mod:
                continue
            found.add(hit)
            # Importing grpo_lab.a.b from outside package grpo_lab.a runs grpo_lab/a/__init__.py too.
            parts = hit.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in known and not mod.startswith(parent + ".") and mod != parent:
                    found.add(parent)
    found.discard(mod)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {m: imports_of(m, p, known) for m, p in known.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    cycles = find_cycles(import_graph(PKG))
    assert not cycles, "import cycles inside grpo_lab (function-level imports count): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_cycle_finder_sees_lazy_and_package_cycles(tmp_path):
    # The kinds of cycle the library once had: a lazy import back into a caller, a star import between
    # siblings, and a submodule that imports its own package's __init__ while that __init__ imports it.
    pkg = tmp_path / "fakelab"
    (pkg / "ens").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "jobs.py").write_text("def run():\n    from fakelab.capstone import go\n")
    (pkg / "capstone.py").write_text("from fakelab.jobs import run\ndef go():\n    pass\n")
    (pkg / "cost.py").write_text("from fakelab.ens.voting import vote\n")
    (pkg / "ens" / "__init__.py").write_text("from fakelab.ens.voting import vote\nfrom fakelab.cost import *\n")
    (pkg / "ens" / "voting.py").write_text("def vote():\n    pass\n")
    (pkg / "ok.py").write_text("from . import jobs\n")
    cycles = find_cycles(import_graph(pkg))
    assert ["fakelab.capstone", "fakelab.jobs"] in cycles
    assert ["fakelab.cost", "fakelab.ens"] in cycles
    assert not any("fakelab.ok" in c for c in cycles)
    # A sibling import inside the package is not a cycle through its __init__.
    assert not any("fakelab.ens.voting" in c for c in cycles)


def _layer(mod: str) -> int | None:
    parts = mod.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_sits_in_a_layer_and_imports_only_downwards():
    graph = import_graph(PKG)
    unplaced = sorted({m.split(".")[1] for m in graph if "." in m and _layer(m) is None})
    assert not unplaced, f"modules missing from the floor plan (LAYERS here and grpo_lab/README.md): {unplaced}"
    upward = [
        f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
        for m, deps in graph.items()
        for d in deps
        if _layer(m) is not None and _layer(d) is not None and _layer(d) > _layer(m)
    ]
    assert not upward, "imports that point up the floor plan:\n" + "\n".join(sorted(upward))


def test_floor_plan_is_documented():
    readme = (PKG / "README.md").read_text()
    missing = [name for name in LAYERS if f"`{name}" not in readme]
    assert not missing, f"grpo_lab/README.md does not describe: {missing}"


def test_modules_are_small():
    big = [
        f"{p.relative_to(PKG.parent)}: {n} lines"
        for p in PKG.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them by concept): {big}"


def test_long_functions_say_why():
    long = []
    for p in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if n > MAX_FUNCTION_LINES and LONG_FUNCTION_REASON not in doc:
                    long.append(f"{p.relative_to(PKG.parent)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, (
        f"functions over {MAX_FUNCTION_LINES} lines without '{LONG_FUNCTION_REASON} ...' in the docstring: {long}"
    )


@pytest.mark.parametrize("mod", sorted(m for m in modules(PKG) if "harness" not in m))
def test_every_module_imports(mod):
    import importlib

    importlib.import_module(mod)
