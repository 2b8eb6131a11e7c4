"""The recording protocol shared by the reliability tests."""

from __future__ import annotations

from typing import Any

from ferroproc.defer import Deferred
from ferroproc.protocol import ProcessProtocol


class Recorder(ProcessProtocol):
    """Records every callback in order; ``exited``/``ended`` fire with the
    reason's value."""

    def __init__(self) -> None:
        self.exited: Deferred = Deferred()
        self.ended: Deferred = Deferred()
        self.events: list[tuple[Any, ...]] = []
        self.data: dict[int, bytearray] = {}

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.data.setdefault(childFD, bytearray()).extend(data)

    def childConnectionLost(self, childFD: int) -> None:
        self.events.append(("lost", childFD))

    def processExited(self, reason: Any) -> None:
        self.events.append(("exited", reason.value))
        self.exited.callback(reason.value)

    def processEnded(self, reason: Any) -> None:
        self.events.append(("ended", reason.value))
        self.ended.callback(reason.value)

    def out(self, fd: int = 1) -> bytes:
        return bytes(self.data.get(fd, b""))

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e[0] == kind)
