"""Helpers for the ``test_jobs_*`` files: run jobs on the default reactor,
and shell jobs that leave a grandchild's pid in a file."""

# Each test_jobs_* module imports settle_engines (no_leaks calls it before
# and after each test).

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from helpers import iterate_until, run_reactor

from ferroproc.jobs import Job, JobResult, JobSummary, Runner

#: The environment of the test jobs (small, and the same everywhere).
ENV = {"PATH": "/usr/bin:/bin"}


def run(jobs: Iterable[Any], timeout: float = 30.0, **options: Any) -> tuple[JobSummary, list[JobResult]]:
    """Run ``jobs`` with a Runner made of ``options`` on the default
    reactor; the summary and every result, in the order reported."""
    results: list[JobResult] = []
    summary = run_reactor(Runner(**options).run(jobs, results.append), timeout)
    return summary, results


def sh(script: str, **fields: Any) -> Job:
    """A shell job with the test environment."""
    fields.setdefault("env", ENV)
    return Job.shell(script, **fields)


def grandchild_job(pidfile: Path, script: str = "wait", **fields: Any) -> Job:
    """A job whose shell starts ``sleep 300`` in the background (in the
    job's process group), writes its pid to ``pidfile``, then runs
    ``script`` (by default: waits for it)."""
    return sh(f"sleep 300 & echo $! > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; {script}", **fields)


def wait_for_files(paths: Iterable[Path], timeout: float = 10.0) -> list[int]:
    """Turn the reactor until every file exists; their pids."""
    paths = list(paths)
    assert iterate_until(lambda: all(p.exists() for p in paths), timeout), f"not all of {paths} appeared"
    return [int(p.read_text()) for p in paths]


def alive_in_table(pid: int) -> bool:
    """Whether ``pid`` is in the process table and not a zombie (read from
    /proc, not from anything the runner says)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_if_alive(pids: Iterable[int]) -> None:
    """Clean up after a failed check (only the pids a test made)."""
    for pid in pids:
        if alive_in_table(pid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def settle_engines() -> None:
    """The spawn channels a runner's spawner threads use are the process's,
    made when the first runner with spawners starts and kept (like the
    asyncio host's engine): have them before a test counts its fds."""
    run([], concurrency=4)
