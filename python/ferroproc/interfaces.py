"""Twisted's process interfaces as :class:`typing.Protocol` classes.

Twisted declares its interfaces with ``zope.interface``; ferroproc declares
the same names structurally, so a type checker accepts any object with the
right methods — ferroproc's own classes, Twisted's, or a test fake — without
registration or inheritance::

    from ferroproc.interfaces import IProcessTransport
    from ferroproc.protocol import ProcessProtocol

    class Greeter(ProcessProtocol):
        def connectionMade(self) -> None:
            self.transport.write(b"hello\\n")   # self.transport: IProcessTransport
            self.transport.closeStdin()

    def shout(transport: IProcessTransport) -> None:
        transport.signalProcess("USR1")

Every class is :func:`typing.runtime_checkable`, so ``isinstance(obj,
IProcessTransport)`` checks that the methods exist (not their signatures).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from ferroproc.failure import Failure

__all__ = [
    "IConsumer",
    "IDelayedCall",
    "IProcessProtocol",
    "IProcessTransport",
    "IProducer",
    "IPullProducer",
    "IPushProducer",
    "IReactorProcess",
    "IReactorTime",
]


@runtime_checkable
class IProducer(Protocol):
    """Something that produces data for a consumer (Twisted's ``IProducer``)."""

    def stopProducing(self) -> None:
        """Stop producing data for good (the consumer is going away)."""


@runtime_checkable
class IPushProducer(IProducer, Protocol):
    """A producer that writes on its own until paused (``streaming=True``)."""

    def pauseProducing(self) -> None:
        """Stop writing for now: the consumer's buffer is full."""

    def resumeProducing(self) -> None:
        """Start writing again: the consumer's buffer has drained."""


@runtime_checkable
class IPullProducer(IProducer, Protocol):
    """A producer that writes one chunk each time it is asked (``streaming=False``)."""

    def resumeProducing(self) -> None:
        """Write one chunk now (the consumer is ready for more)."""


@runtime_checkable
class IConsumer(Protocol):
    """Something data can be written to, with flow control (Twisted's ``IConsumer``)."""

    def registerProducer(self, producer: IPushProducer | IPullProducer, streaming: bool) -> None:
        """Attach ``producer``; ``streaming`` says whether it is a push producer.

        Raises ``RuntimeError`` if a producer is already registered.
        """

    def unregisterProducer(self) -> None:
        """Detach the registered producer."""

    def write(self, data: bytes) -> None:
        """Write ``data`` (queued as needed; never blocks)."""


@runtime_checkable
class IProcessTransport(Protocol):
    """What a process protocol's ``self.transport`` offers (Twisted's
    ``IProcessTransport``, with the ``ITransport``, ``IConsumer`` and
    ``IPushProducer`` methods it inherits there).

    ferroproc's implementation is :class:`ferroproc._core.Process`, which
    also has PTY extensions (``setWindowSize``, ``setEcho``...).
    """

    @property
    def pid(self) -> int | None:
        """The child's pid, or None once it has been reaped."""

    def write(self, data: bytes) -> None:
        """Write ``data`` to the child's stdin (its terminal with ``usePTY``)."""

    def writeSequence(self, seq: Iterable[bytes]) -> None:
        """Write each bytes object of ``seq`` in order."""

    def writeToChild(self, childFD: int, data: bytes) -> None:
        """Write ``data`` to the pipe mapped as ``'w'`` on child fd ``childFD``.

        Raises ``KeyError`` when that fd has no open pipe.
        """

    def closeStdin(self) -> None:
        """Close the child's stdin once queued data is written (it sees EOF)."""

    def closeStdout(self) -> None:
        """Stop reading the child's stdout and close our end."""

    def closeStderr(self) -> None:
        """Stop reading the child's stderr and close our end."""

    def closeChildFD(self, childFD: int) -> None:
        """Close the pipe on child fd ``childFD``: an input pipe once its queued
        data is written, an output pipe at once."""

    def loseConnection(self) -> None:
        """Close every pipe; the child is not signalled."""

    def signalProcess(self, signalID: str | int) -> None:
        """Send a signal, by name (``"TERM"``, ``"KILL"``, ``"INT"``...) or number.

        Raises ``ferroproc.error.ProcessExitedAlready`` once the child is gone.
        """

    def getHost(self) -> object:
        """The local address (process transports raise ``NotImplementedError``)."""

    def getPeer(self) -> object:
        """The remote address (process transports raise ``NotImplementedError``)."""

    def registerProducer(self, producer: IPushProducer | IPullProducer, streaming: bool) -> None:
        """Register a producer feeding the child's stdin (see :class:`IConsumer`)."""

    def unregisterProducer(self) -> None:
        """Forget the registered producer."""

    def pauseProducing(self) -> None:
        """Stop reading the child's output (its pipes fill and it blocks)."""

    def resumeProducing(self) -> None:
        """Resume reading the child's output."""

    def stopProducing(self) -> None:
        """Close every pipe (as :meth:`loseConnection`)."""


@runtime_checkable
class IProcessProtocol(Protocol):
    """What ``spawnProcess`` needs of a protocol (Twisted's ``IProcessProtocol``).

    Subclass :class:`ferroproc.protocol.ProcessProtocol` rather than writing
    all five methods; it dispatches fds 0/1/2 to ``outReceived`` and friends.
    """

    def makeConnection(self, transport: IProcessTransport) -> None:
        """The child has started; ``transport`` is its process transport."""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """Output arrived on the pipe on child fd ``childFD``."""

    def childConnectionLost(self, childFD: int) -> None:
        """The pipe on child fd ``childFD`` closed."""

    def processExited(self, reason: Failure) -> None:
        """The child has been reaped; ``reason.value`` is ``ProcessDone`` or
        ``ProcessTerminated``."""

    def processEnded(self, reason: Failure) -> None:
        """The child has been reaped and all its pipes have closed: the last callback."""


@runtime_checkable
class IDelayedCall(Protocol):
    """A scheduled call, as ``callLater`` returns (Twisted's ``IDelayedCall``)."""

    def getTime(self) -> float:
        """When the call will run, in ``seconds()`` time."""

    def cancel(self) -> None:
        """Unschedule it; raises ``AlreadyCalled``/``AlreadyCancelled``."""

    def delay(self, secondsLater: float) -> None:
        """Run ``secondsLater`` seconds later than currently scheduled."""

    def reset(self, secondsFromNow: float) -> None:
        """Run ``secondsFromNow`` seconds from now instead."""

    def active(self) -> bool:
        """True until the call has run or been cancelled."""


@runtime_checkable
class IReactorTime(Protocol):
    """Time and scheduling (the part of Twisted's ``IReactorTime`` ferroproc has)."""

    def seconds(self) -> float:
        """The current time in seconds, as ``time.time()``."""

    def callLater(self, delay: float, callable: Callable[..., object], *args: Any, **kw: Any) -> IDelayedCall:
        """Call ``callable(*args, **kw)`` in ``delay`` seconds."""


@runtime_checkable
class IReactorProcess(Protocol):
    """A reactor that starts processes (Twisted's ``IReactorProcess``)."""

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol,
        executable: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        args: Sequence[str | bytes | os.PathLike[str] | os.PathLike[bytes]],
        env: Mapping[str, str] | Mapping[bytes, bytes] | None = ...,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool | tuple[int, int, str | bytes | None] = False,
        childFDs: Mapping[int, str | int] | None = None,
    ) -> IProcessTransport:
        """Start ``executable`` with ``args`` and connect ``processProtocol``
        to it; returns its transport (see ``ferroproc.Reactor.spawnProcess``)."""
