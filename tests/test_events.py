"""Lifecycle events on real children: order, exit status, signals, and
exceptions raised by protocol callbacks (SPEC §1.4, §2.1, §2.2, §2.6, §2.9)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from engine_support import Recorder, spawn_and_run
from helpers import CHILDREN, PY, run_reactor

from ferroproc import reactor
from ferroproc.defer import Deferred
from ferroproc.error import ProcessDone, ProcessTerminated
from ferroproc.failure import Failure
from ferroproc.protocol import ProcessProtocol

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
OUTPUT = str(CHILDREN / "engine_output.py")


def check_lifecycle(events: list[Any], fds: set[int]) -> None:
    """The invariants every pipe process obeys, whatever the timing."""
    assert events[0] == "made"
    assert events[-1] == "ended" and events.count("ended") == 1
    assert events.count("exited") == 1
    assert events.index("exited") < events.index("ended")
    lost = [e[1] for e in events if isinstance(e, tuple) and e[0] == "lost"]
    assert sorted(lost) == sorted(fds), "childConnectionLost once per fd"
    for fd in fds:
        last_data = max((i for i, e in enumerate(events) if e == ("data", fd)), default=-1)
        assert last_data < events.index(("lost", fd)), f"data on fd {fd} after its childConnectionLost"


# -- the seed's examples ---------------------------------------------------


def test_seed_wc_example() -> None:
    done = subprocess.run([PY, str(EXAMPLES / "wc.py")], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Received counts from wc.\nLines: 1\nWords: 6\nCharacters: 44\n"


def test_seed_verbose_example() -> None:
    done = subprocess.run([PY, str(EXAMPLES / "process.py")], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # The order of the stdin/stderr/stdout events varies (the seed says so);
    # the first line and the last three don't.
    assert lines[0] == "connectionMade!"
    assert lines[-3:] == ["processEnded, status 0", "quitting", "Main loop terminated."]
    assert lines.count("processExited, status 0") == 1
    middle = [line for line in lines[1:-3] if line != "processExited, status 0"]
    assert "inConnectionLost! stdin is closed! (we probably did it)" in middle
    assert "errConnectionLost! The child closed their stderr." in middle
    assert middle.count("outConnectionLost! The child closed their stdout!") == 1
    after_out = middle.index("outConnectionLost! The child closed their stdout!")
    assert middle[after_out + 1] == "I saw 40 lines"
    received = [line for line in middle if line.startswith("outReceived! with ")]
    assert received, done.stdout
    assert all(middle.index(line) < after_out for line in received), "all output before outConnectionLost"
    assert sum(int(line.split()[2]) for line in received) == len("     40     160    1120\n")
    assert len(middle) == 2 + len(received) + 2, done.stdout


# -- order -------------------------------------------------------------------


def test_connection_made_before_spawn_returns() -> None:
    seen: dict[str, Any] = {}

    class P(Recorder):
        def connectionMade(self) -> None:
            seen["pid"] = self.transport.pid
            seen["status"] = self.transport.status
            super().connectionMade()

    proto = P(stdin=b"")
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    assert proto.events == ["made"], "connectionMade runs inside spawnProcess, nothing else does"
    assert proto.transport is transport
    assert isinstance(seen["pid"], int) and seen["pid"] == transport.pid
    assert seen["status"] == -1
    run_reactor(proto.ended)
    check_lifecycle(proto.events, {0, 1, 2})


def test_order_with_output_on_both_pipes() -> None:
    proto = spawn_and_run([PY, OUTPUT, "300000", "200000"])
    check_lifecycle(proto.events, {0, 1, 2})
    assert proto.output(1) == b"o" * 300000
    assert proto.output(2) == b"e" * 200000
    assert proto.events.index("exited") < proto.events.index("ended")


def test_process_exited_before_process_ended_and_pid_cleared() -> None:
    proto = spawn_and_run(["/bin/sh", "-c", "exit 0"])
    assert proto.pid_at_exit is None, "pid is None once reaped, already in processExited"
    assert proto.status_at_exit == 0
    assert proto.events.index("exited") < proto.events.index("ended")


def test_no_callbacks_after_process_ended() -> None:
    proto = spawn_and_run([PY, OUTPUT, "1000", "1000"])
    n = len(proto.events)
    assert proto.transport.proto is None
    # Anything still queued would run now.
    run_reactor(lambda: True)
    assert len(proto.events) == n


# -- exit status -------------------------------------------------------------


def test_exit_zero_is_process_done() -> None:
    proto = spawn_and_run(["/bin/sh", "-c", "exit 0"])
    for reason in (proto.exited_reason, proto.ended_reason):
        assert isinstance(reason, Failure)
        assert reason.check(ProcessDone)
        assert reason.value.exitCode == 0
        assert reason.value.signal is None
        assert reason.value.status == 0
    assert proto.transport.status == 0


def test_exit_three_is_process_terminated() -> None:
    proto = spawn_and_run(["/bin/sh", "-c", "exit 3"])
    for reason in (proto.exited_reason, proto.ended_reason):
        assert isinstance(reason, Failure)
        assert reason.check(ProcessTerminated)
        assert not reason.check(ProcessDone)
        assert reason.value.exitCode == 3
        assert reason.value.signal is None
        assert reason.value.status == 768
    assert proto.transport.status == 768
    assert "exit code 3" in str(proto.ended_reason.value)


@pytest.mark.parametrize(
    "send, expected",
    [("KILL", signal.SIGKILL), ("TERM", signal.SIGTERM), (int(signal.SIGUSR1), signal.SIGUSR1)],
    ids=["KILL", "TERM", "int-SIGUSR1"],
)
def test_death_by_signal(send: Any, expected: int) -> None:
    proto = Recorder()
    transport = reactor.spawnProcess(proto, "/bin/sleep", ["sleep", "30"])
    transport.signalProcess(send)
    run_reactor(proto.ended)
    reason = proto.ended_reason
    assert reason is not None and reason.check(ProcessTerminated)
    assert reason.value.signal == expected
    assert reason.value.exitCode is None
    assert os.WIFSIGNALED(reason.value.status)
    assert os.WTERMSIG(reason.value.status) == expected
    assert transport.status == reason.value.status
    assert proto.exited_reason.value.signal == expected


def test_signal_ignored_in_parent_kills_child() -> None:
    """SIGUSR1 ignored here is back at its default in the child (Twisted's test)."""
    old = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        proto = Recorder()
        transport = reactor.spawnProcess(proto, "/bin/sleep", ["sleep", "30"])
    finally:
        signal.signal(signal.SIGUSR1, old)
    transport.signalProcess(signal.SIGUSR1)
    run_reactor(proto.ended)
    assert proto.ended_reason.value.signal == signal.SIGUSR1


# -- exceptions in callbacks -------------------------------------------------


def error_records(caplog: pytest.LogCaptureFixture, exc_type: type[BaseException]) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "ferroproc" and r.levelno >= logging.ERROR and r.exc_info and r.exc_info[0] is exc_type
    ]


class Boom(Exception):
    pass


def test_raising_out_received_loses_that_pipe_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ferroproc")

    class Bad(Recorder):
        calls = 0

        def outReceived(self, data: bytes) -> None:
            self.calls += 1
            raise Boom("outReceived blew up")

    bad = Bad()
    good = Recorder(stdin=b"x" * 100000)
    reactor.spawnProcess(bad, "/usr/bin/yes", ["yes"])  # writes until its stdout breaks
    reactor.spawnProcess(good, "/bin/cat", ["cat"])
    run_reactor(lambda: bad.ended.called and good.ended.called)

    assert bad.calls == 1, "after the exception the pipe is closed, so no more data"
    assert ("lost", 1) in bad.events
    assert bad.ended_reason.value.signal == signal.SIGPIPE, "yes then dies writing into the closed pipe"
    check_lifecycle(bad.events, {0, 1, 2})

    assert good.output() == b"x" * 100000
    assert good.ended_reason.check(ProcessDone)
    check_lifecycle(good.events, {0, 1, 2})

    assert len(error_records(caplog, Boom)) == 1
    assert "outReceived blew up" in caplog.text


def test_callback_error_logged_with_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ferroproc")

    class Bad(Recorder):
        def outReceived(self, data: bytes) -> None:
            raise Boom("outReceived blew up")

    proto = Bad()
    reactor.spawnProcess(proto, "/bin/echo", ["echo", "hi"])
    run_reactor(proto.ended)
    (record,) = error_records(caplog, Boom)
    assert record.exc_info is not None and record.exc_info[2] is not None
    assert "Traceback (most recent call last)" in caplog.text
    assert "in outReceived" in caplog.text


@pytest.mark.parametrize("where", ["connectionMade", "childConnectionLost", "processExited", "processEnded"])
def test_raising_lifecycle_callback_is_logged(caplog: pytest.LogCaptureFixture, where: str) -> None:
    caplog.set_level(logging.ERROR, logger="ferroproc")

    class Bad(Recorder):
        def connectionMade(self) -> None:
            super().connectionMade()
            if where == "connectionMade":
                raise Boom(where)

        def childConnectionLost(self, childFD: int) -> None:
            super().childConnectionLost(childFD)
            if where == "childConnectionLost":
                raise Boom(where)

        def processExited(self, reason: Failure) -> None:
            super().processExited(reason)
            if where == "processExited":
                raise Boom(where)

        def processEnded(self, reason: Failure) -> None:
            super().processEnded(reason)
            if where == "processEnded":
                raise Boom(where)

    proto = Bad(stdin=b"hello")
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    assert transport.pid is not None
    run_reactor(proto.ended)
    run_reactor(lambda: True)  # let a processEnded exception reach the log
    check_lifecycle(proto.events, {0, 1, 2})
    assert proto.output() == b"hello"
    assert proto.ended_reason.check(ProcessDone)
    expected = 3 if where == "childConnectionLost" else 1
    assert len(error_records(caplog, Boom)) == expected
    assert where in caplog.text


# -- many at once ------------------------------------------------------------


def test_two_hundred_concurrent_children() -> None:
    protos = []
    for i in range(200):
        proto = Recorder()
        reactor.spawnProcess(proto, "/bin/echo", ["echo", str(i)])
        protos.append(proto)
    run_reactor(lambda: all(p.ended.called for p in protos), timeout=20)
    for i, proto in enumerate(protos):
        assert proto.output() == f"{i}\n".encode()
        assert proto.ended_reason.check(ProcessDone)
        check_lifecycle(proto.events, {0, 1, 2})
    # The no_leaks fixture checks that no zombie and no fd is left.


def test_ended_deferred_fires_once_per_process() -> None:
    ends: list[Any] = []
    d: Deferred[Any] = Deferred()

    class P(ProcessProtocol):
        def processEnded(self, reason: Failure) -> None:
            ends.append(reason)
            if len(ends) == 1:
                d.callback(None)

    reactor.spawnProcess(P(), "/bin/true", ["true"])
    run_reactor(d)
    run_reactor(lambda: True)
    assert len(ends) == 1


def test_end_never_delivered_inside_spawn_process() -> None:
    """SPEC improvement 7: even a child with no pipes that is already gone
    gets processExited/processEnded from the loop, not from spawnProcess."""
    for _ in range(20):
        proto = Recorder()
        transport = reactor.spawnProcess(proto, "/bin/true", ["true"], childFDs={})
        assert proto.events == ["made"]
        run_reactor(proto.ended)
        assert proto.events == ["made", "exited", "ended"]
        assert transport.pid is None


def test_child_reaped_by_someone_else_still_ends() -> None:
    """SPEC improvement 6: a child whose status another waitpid took still ends,
    with ProcessTerminated(exitCode=None, signal=None)."""
    proto = Recorder()
    transport = reactor.spawnProcess(proto, "/bin/sleep", ["sleep", "30"], childFDs={})
    pid = transport.pid
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # steal the status before the engine looks
    run_reactor(proto.ended)
    reason = proto.ended_reason
    assert reason.check(ProcessTerminated)
    assert (reason.value.exitCode, reason.value.signal, reason.value.status) == (None, None, None)
    assert transport.pid is None
    assert transport.status is None
