"""The errors grpo-lab raises on purpose: each message names the fix.

``GrpoLabError`` is their common base, so the command line can tell an expected failure (a missing model
folder, an unknown task, a malformed dataset, a bad configuration), which it reports in one line, from a
bug, whose traceback it keeps. Each concrete error also keeps the built-in base it always had
(``ValueError``, ``KeyError``, ``RuntimeError``, ...), so code that catches those still works.
"""

from __future__ import annotations


class GrpoLabError(Exception):
    """Base of every error grpo-lab raises on purpose; its message says what to do instead."""


class UsageError(GrpoLabError):
    """A command or call that cannot work as given (a missing required option, say)."""


class UnknownNameError(GrpoLabError, KeyError):
    """An unknown task, preset or model size; the message lists the known ones.

    A ``KeyError`` for code that looks names up in a table, but printed as its message: ``KeyError``'s own
    ``str`` quotes it (``"'unknown task ...'"``).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingDataError(GrpoLabError, FileNotFoundError):
    """A data file the call needs is not there; the message says where to put it or what to set."""


class MissingDependencyError(GrpoLabError, ImportError):
    """An optional package a feature needs is not installed; the message gives the ``pip install`` line."""


class ConfigError(GrpoLabError, ValueError):
    """A trainer configuration that cannot work (``GRPOConfig``, ``PPOConfig``, reward functions, data); the
    message names the fix."""


class SandboxInfrastructureError(GrpoLabError, RuntimeError):
    """The code sandbox could not score a program (it could not start or set itself up, or the machine starved
    it), even after retries: no reward is known, so none is made up; the message names the fix."""


class TrainingDivergedError(GrpoLabError, FloatingPointError):
    """A run stopped because its loss stayed non-finite, or fp16's loss scaler skipped most updates
    (``loop.NonFiniteGuard``); the message names the fixes (bf16, a lower learning rate, the LoRA preset)."""
