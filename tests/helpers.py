"""Helpers for the tests: fd and child listings, and ``run_reactor``."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ferroproc import reactor as _reactor

CHILDREN = Path(__file__).parent / "children"
PY = sys.executable


def open_fds() -> set[int]:
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.add(fd)
    return fds


def our_children() -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is this one."""
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        if int(rest[1]) == me:
            out.append((int(name), rest[0]))
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for an absent init counts as dead:
    a killed grandchild is reparented, and a sandbox's init may not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, timeout: float = 10.0) -> bool:
    """Wait (without the reactor) until ``pid`` no longer runs; False on timeout."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def iterate_until(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        _reactor.iterate(0.01)
    return True


def run_reactor(until: Any = None, timeout: float = 10.0) -> Any:
    """Run the reactor until ``until`` (a Deferred, or a zero-argument
    predicate) is satisfied, or fail after ``timeout`` seconds.

    For a Deferred, returns its result or raises its failure's exception.
    """
    state: dict[str, Any] = {}
    guard = _reactor.callLater(timeout, lambda: (state.setdefault("timeout", True), _reactor.stop()))
    if until is not None and hasattr(until, "addBoth"):

        def done(result: Any) -> None:
            state["result"] = result
            if _reactor.running:
                _reactor.stop()
            else:
                _reactor.callWhenRunning(_reactor.stop)

        until.addBoth(done)
    elif until is not None:

        def poll() -> None:
            if until():
                state["result"] = True
                _reactor.stop()
            else:
                _reactor.callLater(0.005, poll)

        _reactor.callWhenRunning(poll)
    try:
        _reactor.run(installSignalHandlers=False)
    finally:
        # Even when run() raises, the guard must not stop a later, unrelated run.
        if guard.active():
            guard.cancel()
    if state.get("timeout"):
        pytest.fail(f"reactor timed out after {timeout}s waiting for {until!r}")
    result = state.get("result")
    from ferroproc.failure import Failure

    if isinstance(result, Failure):
        result.raiseException()
    return result


class RecordingProducer:
    """A producer that only records which of its methods were called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")
