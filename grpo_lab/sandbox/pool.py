"""Score many programs at once (a training step's completions): ``run_many``.

Each program runs in its own ``run_tests`` child, with every guarantee of the isolation mode; this module only
decides how many run at once, runs identical jobs once, and runs again what the sandbox could not score
(``status == "infra"``) instead of letting load turn into a reward of 0.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
import time
from collections.abc import Sequence

from grpo_lab.errors import SandboxInfrastructureError
from grpo_lab.sandbox.runner import CodeResult, run_tests

BACKOFF_S = 0.5  # before the first retry round; doubled for each further round


def default_workers() -> int:
    """How many programs ``run_many`` runs at once by default: two per core (a sandboxed run spends part of
    its time starting up and waiting on pipes), at most 8."""
    return max(1, min(8, 2 * (os.cpu_count() or 1)))


def run_many(
    jobs: Sequence[tuple[str, str]],
    timeout_s: float = 5.0,
    *,
    workers: int | None = None,
    retries: int = 2,
    **limits,
) -> list[CodeResult]:
    """Run each ``(code, tests)`` pair of ``jobs`` like ``run_tests(code, tests, timeout_s, **limits)``, up to
    ``workers`` at a time (default ``default_workers()``); the results come back in the order of ``jobs``.

    Identical pairs run once and share the result (each gets its own copy). A run the sandbox could not score
    (status ``infra``: it could not start or set itself up, or the machine starved it of CPU until the wall
    clock ran out) runs again, with fewer at once after a short backoff, up to ``retries`` more times; if it
    still cannot be scored, ``SandboxInfrastructureError`` is raised rather than a reward of 0 returned. What
    the code itself does never counts as ``infra`` (see ``run_tests``), so a hostile program cannot get
    itself retried.
    """
    jobs = list(jobs)
    workers = default_workers() if workers is None else max(1, int(workers))
    keys: list = []
    unique: dict = {}
    for i, job in enumerate(jobs):
        code, tests = job
        key = (code, tests) if isinstance(code, str) and isinstance(tests, str) else ("#unhashable", i)
        keys.append(key)
        unique.setdefault(key, (code, tests))
    todo = list(unique)
    results: dict = {}
    # retry rounds: fewer at once (half of what the machine's cores can run), after a backoff
    retry_workers = max(1, min(workers, os.cpu_count() or 1) // 2)
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        n = workers if attempt == 0 else retry_workers
        for key, res in zip(todo, _run_all([unique[k] for k in todo], timeout_s, n, limits)):
            results[key] = res
        todo = [k for k in todo if results[k].status == "infra"]
        if not todo:
            break
    if todo:
        first = results[todo[0]]
        raise SandboxInfrastructureError(
            f"the sandbox could not score {len(todo)} of {len(unique)} programs, even after {retries} retries "
            f"with fewer at once ({first.isolation or 'no'} isolation): {first.reason}. Nothing about the code "
            "is known, so no reward was given. Fix: run fewer at once (run_many(..., workers=1)), give them "
            "more time (timeout_s), free the machine of other work, or check that this isolation mode can start "
            "here (grpo_lab.sandbox.available_modes())."
        )
    return [dataclasses.replace(results[k]) for k in keys]


def _run_all(jobs: list[tuple[str, str]], timeout_s: float, workers: int, limits: dict) -> list[CodeResult]:
    def one(job):
        return run_tests(job[0], job[1], timeout_s, overload_is_infra=True, **limits)

    if workers <= 1 or len(jobs) <= 1:
        return [one(j) for j in jobs]
    with cf.ThreadPoolExecutor(min(workers, len(jobs)), thread_name_prefix="grpo_lab_sandbox") as ex:
        return list(ex.map(one, jobs))
