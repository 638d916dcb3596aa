"""Shared assertions of the exercise checks: one call of the student's function, one clear message."""


def expect(fn, args: tuple, want, context: str = "", *, identical: bool = False, note: str = ""):
    """Call ``fn(*args)`` and assert the result equals ``want`` (``is want`` when ``identical``: for None,
    True and False, where ``0 == False`` would let a wrong type through). The failure message reads
    "<context>: expected <want>, got <got><note>". Returns the result."""
    got = fn(*args)
    ok = got is want if identical else got == want
    prefix = f"{context}: " if context else ""
    assert ok, f"{prefix}expected {want!r}, got {got!r}{note}"
    return got
