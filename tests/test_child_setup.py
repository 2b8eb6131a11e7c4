"""What the child starts with: no stray parent fds, default SIGPIPE, an empty
signal mask, ignored signals reset (SPEC §3.1, §2.9, §2.11)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from engine_support import Recorder, spawn_and_run
from helpers import CHILDREN, PY, run_reactor

from ferroproc import reactor
from ferroproc.error import ProcessTerminated

LISTFDS = str(CHILDREN / "engine_listfds.py")


@pytest.fixture(autouse=True, params=["posix_spawn", "clone"])
def spawn_method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs on both spawn paths: posix_spawn and the vfork-clone one."""
    monkeypatch.setattr(reactor, "_spawnMethod", request.param)
    yield request.param


def status_field(text: bytes, name: str) -> int:
    """A hex signal-set field (SigIgn, SigBlk ...) of /proc/<pid>/status."""
    for line in text.decode().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return int(value.strip(), 16)
    raise AssertionError(f"no {name} in {text!r}")


def bit(sig: int) -> int:
    return 1 << (sig - 1)


def test_inheritable_parent_fd_is_not_in_the_child() -> None:
    r, w = os.pipe()
    high = 250
    os.dup2(w, high, inheritable=True)
    try:
        assert os.get_inheritable(high)
        os.set_inheritable(r, True)
        proto = spawn_and_run([PY, LISTFDS])
    finally:
        os.close(high)
        os.close(r)
        os.close(w)
    fds = {int(n) for n in proto.output().split()}
    assert high not in fds
    assert fds == {0, 1, 2}


def test_child_fds_map_is_all_the_child_gets() -> None:
    proto = spawn_and_run([PY, LISTFDS], childFDs={1: "r", 5: "w"})
    fds = {int(n) for n in proto.output().split()}
    assert fds == {1, 5}, "unlisted fds, stdio included, are closed"


def test_sigpipe_is_default_in_the_child() -> None:
    # This Python ignores SIGPIPE (CPython does at startup); the child must not.
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    proto = spawn_and_run(["/bin/cat", "/proc/self/status"])
    assert status_field(proto.output(), "SigIgn") & bit(signal.SIGPIPE) == 0


def test_child_writing_into_a_closed_pipe_dies_of_sigpipe() -> None:
    class CloseAtOnce(Recorder):
        def connectionMade(self) -> None:
            super().connectionMade()
            self.transport.closeStdout()

    proto = CloseAtOnce()
    reactor.spawnProcess(proto, "/usr/bin/yes", ["yes"])
    run_reactor(proto.ended)
    assert proto.ended_reason.check(ProcessTerminated)
    assert proto.ended_reason.value.signal == signal.SIGPIPE
    assert proto.output() == b""


def test_signal_mask_is_empty_in_the_child() -> None:
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        assert signal.SIGUSR2 in signal.pthread_sigmask(signal.SIG_BLOCK, set())
        proto = spawn_and_run(["/bin/cat", "/proc/self/status"])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert status_field(proto.output(), "SigBlk") == 0


def test_ignored_signals_are_reset_in_the_child() -> None:
    old = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        proto = spawn_and_run(["/bin/cat", "/proc/self/status"])
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert status_field(proto.output(), "SigIgn") & bit(signal.SIGUSR1) == 0
