"""Shared pieces for the engine tests (test_events, test_transport, ...):
a protocol that records every callback, and ``spawn_and_run``."""

from __future__ import annotations

from typing import Any

from helpers import run_reactor

from ferroproc import reactor
from ferroproc.defer import Deferred
from ferroproc.failure import Failure
from ferroproc.protocol import ProcessProtocol


class Recorder(ProcessProtocol):
    """Records callbacks as ``events``, output per fd in ``out``; ``ended``
    fires (with this protocol) from ``processEnded``.

    ``stdin`` is written in ``connectionMade`` and stdin then closed, unless
    ``close_stdin`` is false.
    """

    def __init__(self, stdin: bytes | None = None, close_stdin: bool = True) -> None:
        self.stdin = stdin
        self.close_stdin = close_stdin
        self.events: list[Any] = []
        self.out: dict[int, bytearray] = {}
        self.ended: Deferred[Any] = Deferred()
        self.exited_reason: Failure | None = None
        self.ended_reason: Failure | None = None
        self.pid_at_exit: Any = "unset"
        self.status_at_exit: Any = "unset"

    def connectionMade(self) -> None:
        self.events.append("made")
        if self.stdin is not None:
            self.transport.write(self.stdin)
        if self.close_stdin and self.stdin is not None:
            self.transport.closeStdin()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.events.append(("data", childFD))
        self.out.setdefault(childFD, bytearray()).extend(data)
        super().childDataReceived(childFD, data)

    def childConnectionLost(self, childFD: int) -> None:
        self.events.append(("lost", childFD))
        super().childConnectionLost(childFD)

    def processExited(self, reason: Failure) -> None:
        self.events.append("exited")
        self.exited_reason = reason
        self.pid_at_exit = self.transport.pid
        self.status_at_exit = self.transport.status

    def processEnded(self, reason: Failure) -> None:
        self.events.append("ended")
        self.ended_reason = reason
        self.ended.callback(self)

    def output(self, fd: int = 1) -> bytes:
        return bytes(self.out.get(fd, b""))


def spawn_and_run(args: list[str], stdin: bytes | None = None, timeout: float = 10.0, **kw: Any) -> Recorder:
    """Spawn ``args`` (``args[0]`` is the executable) with a Recorder, run the
    reactor until processEnded, and return the protocol."""
    proto = Recorder(stdin=stdin, close_stdin=kw.pop("close_stdin", True))
    reactor.spawnProcess(proto, args[0], args, **kw)
    run_reactor(proto.ended, timeout)
    return proto
