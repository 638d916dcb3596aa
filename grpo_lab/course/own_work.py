"""Refuse a submission that is the library's own function, or a thin wrapper around it.

An exercise asks a student to write, say, ``group_advantages``; passing ``grpo_lab.grpo.group_advantages``
(or ``lambda r, g, s="group": group_advantages(r, g, s)``) would pass every value check without any
understanding. ``library_use(fn, forbidden)`` looks for that before a single test runs:

- the submission itself, or anything it wraps (``functools.partial``, ``__wrapped__`` from
  ``functools.wraps``, a bound method, a callable object's ``__call__``), is a function of ``grpo_lab``;
- or its code, read from the bytecode of the function and of every code object nested in it (lambdas,
  inner functions, comprehensions), reaches one of the exercise's ``forbidden`` names: a global or a closure
  variable that resolves to a ``grpo_lab`` callable of that name (also under an alias, ``as ga``), an
  attribute or an imported name spelled like it (``grpo.group_advantages``, ``from ... import``), or the
  name as a string constant (``getattr(grpo, "group_advantages")``);
- helper functions the student wrote next to the submission (same module) are read the same way, so
  hiding the call one function deeper does not help.

Names a student is allowed to call (``grpo_loss`` inside the training-step exercise) are simply not in that
exercise's ``forbidden`` list. This is a guard against shortcuts, not a sandbox: determined obfuscation
(``eval``, ``__import__`` with computed strings) is not chased. Standard library only, no ``grpo_lab``
imports, so ``grpo_lab.course.grading`` can import it without a cycle.
"""

from __future__ import annotations

import builtins
import dis
import functools
import types
from collections.abc import Callable, Iterator

_NAME_OPS = {"LOAD_GLOBAL", "LOAD_NAME"}
_ATTR_OPS = {"LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM", "STORE_ATTR"}


def is_library(obj) -> bool:
    """True for a callable defined in a ``grpo_lab`` module (re-exports keep their defining module)."""
    mod = getattr(obj, "__module__", None) or ""
    return callable(obj) and (mod == "grpo_lab" or mod.startswith("grpo_lab."))


def _name(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _unwrap(fn) -> Iterator[object]:
    """The submission and every layer it wraps: partial -> func, wraps -> __wrapped__, method -> function."""
    seen, todo = set(), [fn]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, functools.partial):
            todo.append(obj.func)
        elif isinstance(obj, types.MethodType):
            todo.append(obj.__func__)
        elif not isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type)) and callable(obj):
            todo.append(type(obj).__call__)
        wrapped = getattr(obj, "__wrapped__", None)
        if wrapped is not None:
            todo.append(wrapped)


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _code_objects(c)


def _referenced(fn: types.FunctionType) -> Iterator[tuple[str, str, object]]:
    """``(kind, name, value)`` for what ``fn``'s code touches: kind is "global" (value resolved, or None),
    "attr" (value None), "const" (a string constant) or "bound" (closure cells, defaults: the value)."""
    glb = getattr(fn, "__globals__", {})
    for code in _code_objects(fn.__code__):
        for ins in dis.get_instructions(code):
            if ins.opname in _NAME_OPS:
                yield "global", ins.argval, glb.get(ins.argval, builtins.__dict__.get(ins.argval))
            elif ins.opname in _ATTR_OPS:
                yield "attr", ins.argval, None
            elif ins.opname == "LOAD_CONST" and isinstance(ins.argval, str):
                yield "const", ins.argval, None
    for cell in fn.__closure__ or ():
        try:
            yield "bound", "", cell.cell_contents
        except ValueError:  # an empty cell (a variable assigned later)
            pass
    for value in list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values()):
        yield "bound", "", value


def library_use(fn: Callable, forbidden: dict[str, str]) -> str | None:
    """Why ``fn`` does not count as the student's own work, or None when it does.

    ``forbidden`` maps a short name to the library path it stands for (``{"group_advantages":
    "grpo_lab.grpo.group_advantages"}``). See the module docstring for what is detected.
    """
    for layer in _unwrap(fn):
        if is_library(layer):
            return (
                f"this is grpo_lab's own {_name(layer)} (or a wrapper around it); this exercise asks you to "
                f"write it, so passing the library's function does not count"
            )
    home = getattr(next((x for x in _unwrap(fn) if isinstance(x, types.FunctionType)), None), "__module__", None)
    seen: set[int] = set()
    todo = [x for x in _unwrap(fn) if isinstance(x, types.FunctionType)]
    while todo:
        f = todo.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        for kind, name, value in _referenced(f):
            hit = _forbidden_hit(kind, name, value, forbidden)
            if hit:
                return (
                    f"this exercise asks you to write it; calling {hit} inside your function does not count "
                    f"(found in {f.__name__!r})"
                )
            # Follow the student's own helpers (same module as the submission), never into other libraries.
            for inner in _unwrap(value) if value is not None and not isinstance(value, type) else ():
                if isinstance(inner, types.FunctionType) and inner.__module__ == home and id(inner) not in seen:
                    todo.append(inner)
    return None


def _forbidden_hit(kind: str, name: str, value, forbidden: dict[str, str]) -> str | None:
    """The library path a reference stands for when it is forbidden, else None."""
    if kind in ("attr", "const"):
        return forbidden.get(name)
    if value is None:
        return None
    if kind == "global" and name in forbidden and is_library(value):  # e.g. an object whose __name__ differs
        return forbidden[name]
    for layer in _unwrap(value) if callable(value) else ():
        if is_library(layer) and getattr(layer, "__name__", None) in forbidden:
            return forbidden[layer.__name__]
    return None
