"""The library's floor plan holds: no import cycles, each module in its layer, small modules and functions.

Imports are read from the source (``ast``), at every nesting level: a lazy ``from grpo_lab.x import y``
inside a function is a dependency too, and so is ``importlib.import_module("grpo_lab.x")`` (or an f-string
whose constant start names a module), and a cycle through one is still a cycle a reader has to untangle.
Cycles are looked for between modules and between packages: package A's modules importing package B's while
B's import A's is a cycle too, even when no single module closes the loop. The layers are the ones drawn in
``grpo_lab/README.md``; ``pytest -s`` prints each top-level module's real depth (the longest import chain below
it). ``course`` (the course machinery) sits on top; the repository tools (``tools/``) are outside the layers,
and nothing in ``grpo_lab`` may import them.
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
    "progress": 1,
    "tasks": 1,
    "models": 1,
    "rewards": 1,
    "sandbox": 1,
    "grpo": 1,
    "rollout": 1,
    "rollout_fast": 1,
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
    "jobs": 4,
    "cli": 5,
    # The course machinery on top: it may import the whole library, and nothing below imports it.
    "course": 6,
    # Re-exports of course modules at the paths the notebooks import (grpo_lab.grading, grpo_lab.widgets.*).
    "grading": 6,
    "widgets": 6,
}
# Thin re-exports of course modules at the paths the stored notebooks import.
COURSE_SHIMS = ("grading", "widgets")
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


def _dynamic_import(call: ast.Call) -> str | None:
    """The module that ``importlib.import_module("a.b")`` or ``__import__("a.b")`` names, as far as the source
    shows it: for an f-string, its constant start up to the last dot (``f"a.b.{name}"`` -> ``a.b``)."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rpartition(".")[0] or None
    return None


def imports_of(mod: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every ``grpo_lab`` module that ``mod`` imports anywhere in its source, plus, for an import from outside a
    package, the package's ``__init__`` (Python runs it first)."""
    root = mod.split(".")[0]
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Call) and (named := _dynamic_import(node)):
            targets = [named]
        elif isinstance(node, ast.Import):
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


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The imports between siblings: an import from ``a.x.m`` of ``a.y.n`` is an edge ``a.x -> a.y`` between the
    two children of their closest common package (``a``). A package's own ``__init__`` importing its submodules,
    or a submodule importing its package, is no edge here (the module graph has those)."""
    out: dict[str, set[str]] = {}
    for m, deps in graph.items():
        for d in deps:
            a, b = m.split("."), d.split(".")
            i = 0
            while i < min(len(a), len(b)) and a[i] == b[i]:
                i += 1
            if i in (len(a), len(b)):
                continue
            out.setdefault(".".join(a[: i + 1]), set()).add(".".join(b[: i + 1]))
    return out


def package_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles between sibling packages or modules (``package_graph``), each sorted."""
    return find_cycles(package_graph(graph))


def depths(graph: dict[str, set[str]]) -> dict[str, int]:
    """For each node, the length of the longest import chain below it (0: imports nothing). The graph must be
    free of cycles (the cycle tests run first); a cycle would count once around."""
    memo: dict[str, int] = {}

    def depth(v: str, path: frozenset) -> int:
        if v not in memo:
            below = [depth(w, path | {v}) + 1 for w in graph.get(v, ()) if w not in path]
            memo[v] = max(below, default=0)
        return memo[v]

    return {v: depth(v, frozenset()) for v in sorted(graph)}


def top_level_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between the root package's children (``grpo_lab.trainer``, ``grpo_lab.course``...)."""
    root = next(iter(graph)).split(".")[0]
    top = {m.split(".")[1] for m in graph if "." in m}
    out = {t: set() for t in top}
    for t, deps in package_graph(graph).items():
        if t.count(".") == 1:
            out[t.split(".")[1]] |= {d.split(".")[1] for d in deps if d.startswith(root + ".")}
    return out


def test_no_import_cycles():
    cycles = find_cycles(import_graph(PKG))
    assert not cycles, "import cycles inside grpo_lab (function-level imports count): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_import_cycles_between_packages():
    cycles = package_cycles(import_graph(PKG))
    assert not cycles, "packages (or sibling modules) that import each other: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_package_cycle_finder_fails_on_a_package_cycle():
    # grading -> checks (its helper, and the check modules by an importlib string), checks.ex01 -> grading: no
    # module closes a loop, but the two packages depend on each other (the registry the course once had).
    graph = {
        "lab": set(),
        "lab.grading": {"lab.checks", "lab.checks.own_work"},
        "lab.checks": set(),
        "lab.checks.own_work": set(),
        "lab.checks.ex01": {"lab.grading"},
        "lab.trainer": {"lab.grpo"},
        "lab.grpo": set(),
    }
    assert find_cycles(graph) == []
    assert package_cycles(graph) == [["lab.checks", "lab.grading"]]
    with pytest.raises(AssertionError, match="lab.checks <-> lab.grading"):
        cycles = package_cycles(graph)
        assert not cycles, "; ".join(" <-> ".join(c) for c in cycles)
    # Deeper down: two subpackages of one package, and a package's own submodules, are not confused.
    graph = {"lab.a": set(), "lab.a.x": {"lab.a.y.m"}, "lab.a.y": set(), "lab.a.y.m": {"lab.a.x"}, "lab.b": set()}
    assert package_cycles(graph) == [["lab.a.x", "lab.a.y"]]
    assert package_cycles({"lab.p": {"lab.p.m"}, "lab.p.m": {"lab.p"}}) == []


def test_import_reader_sees_importlib_strings(tmp_path):
    pkg = tmp_path / "fakelab"
    (pkg / "checks").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "checks" / "__init__.py").write_text("")
    (pkg / "checks" / "ex01.py").write_text("from fakelab.grading import check\n")
    (pkg / "grading.py").write_text(
        "import importlib\ndef check():\n    for n in ('ex01',):\n"
        "        importlib.import_module(f'fakelab.checks.{n}')\n    __import__('fakelab.other')\n"
    )
    (pkg / "other.py").write_text("")
    graph = import_graph(pkg)
    assert graph["fakelab.grading"] == {"fakelab.checks", "fakelab.other"}
    assert package_cycles(graph) == [["fakelab.checks", "fakelab.grading"]]


def test_depths_are_the_longest_chains():
    graph = {"a": {"b", "c"}, "b": {"c"}, "c": {"d"}, "d": set()}
    assert depths(graph) == {"a": 3, "b": 2, "c": 1, "d": 0}


def test_print_the_real_depths():
    """``pytest -s tests/test_architecture.py`` prints the floor plan as the imports draw it."""
    top = top_level_graph(import_graph(PKG))
    depth = depths(top)
    rows = sorted(top, key=lambda t: (LAYERS.get(t, 99), depth[t], t))
    print(f"\n{'module':<16} {'layer':>5} {'depth':>5}  imports (grpo_lab)")
    for t in rows:
        print(f"{t:<16} {LAYERS.get(t, '?')!s:>5} {depth[t]:>5}  {', '.join(sorted(top[t])) or '-'}")
    assert depth and max(depth.values()) >= 1


def test_the_library_never_imports_the_repository_tools():
    # tools/ (render, the exercise builder, badges) is not in the wheel: an import of it would break there.
    found = []
    for p in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            elif isinstance(node, ast.Call):
                names = [_dynamic_import(node) or ""]
            found += [f"{p.relative_to(PKG.parent)}:{node.lineno} {n}" for n in names if n.split(".")[0] == "tools"]
    assert not found, f"grpo_lab imports the repository tools: {found}"


def test_only_the_notebook_shims_import_the_course():
    # The course machinery sits on top: below it, only the re-exports at the notebooks' short paths import it.
    graph = import_graph(PKG)
    users = sorted({m for m, deps in graph.items() for d in deps if d.startswith("grpo_lab.course")})
    outside = [m for m in users if not m.startswith("grpo_lab.course") and m.split(".")[1] not in COURSE_SHIMS]
    assert not outside, f"library modules that import grpo_lab.course: {outside}"


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
