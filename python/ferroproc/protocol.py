"""Protocols: ``ProcessProtocol`` with Twisted's names and default dispatch.

Subclass :class:`ProcessProtocol` and override what you need; everything not
overridden is a no-op, so unwanted output is read and thrown away (a child
never blocks on a full pipe nobody reads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from ferroproc.failure import Failure
    from ferroproc.interfaces import IProcessTransport

__all__ = ["BaseProtocol", "ProcessProtocol"]


class BaseProtocol:
    """What every protocol has: a transport, and ``connectionMade``."""

    #: 1 once :meth:`makeConnection` has run.
    connected: int = 0
    #: The transport, set by :meth:`makeConnection` (before any other callback).
    #:
    #: Typed ``IProcessTransport``, not ``Any`` and not ``IProcessTransport |
    #: None``: ``Any`` would let typos and wrong argument types through, and
    #: ``| None`` would make every callback narrow it (``assert
    #: self.transport``) although the engine calls none before
    #: ``makeConnection``. So ``self.transport.write(b"...")`` type-checks as
    #: written, as in Twisted code. It is None at runtime only before the
    #: protocol is connected, which the class default (cast once, here) hides
    #: from the type. Code that needs the concrete transport's extras (the PTY
    #: methods) can redeclare ``transport: ferroproc._core.Process`` in its
    #: subclass.
    transport: IProcessTransport = cast("IProcessTransport", None)

    def makeConnection(self, transport: IProcessTransport) -> None:
        """Attach ``transport`` and call :meth:`connectionMade`.

        Called by ``spawnProcess`` once the child has started, before it returns.
        """
        self.connected = 1
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        """Called once the transport is attached (for a process: it has started)."""


class ProcessProtocol(BaseProtocol):
    """Receives a child process's output and lifecycle events.

    Order per process: ``connectionMade`` (before ``spawnProcess`` returns);
    ``childDataReceived``/``childConnectionLost`` per pipe; ``processExited``
    once the child is reaped; ``processEnded`` last, after the child is reaped
    *and* every pipe has closed, so all output has been delivered.
    """

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """Output from the pipe on child fd ``childFD``; fd 1 goes to
        :meth:`outReceived`, fd 2 to :meth:`errReceived`, others are dropped."""
        if childFD == 1:
            self.outReceived(data)
        elif childFD == 2:
            self.errReceived(data)

    def outReceived(self, data: bytes) -> None:
        """Output from the child's stdout (or from its terminal with ``usePTY``)."""

    def errReceived(self, data: bytes) -> None:
        """Output from the child's stderr."""

    def childConnectionLost(self, childFD: int) -> None:
        """The pipe on child fd ``childFD`` closed; fds 0, 1 and 2 go to
        :meth:`inConnectionLost`, :meth:`outConnectionLost` and
        :meth:`errConnectionLost`."""
        if childFD == 0:
            self.inConnectionLost()
        elif childFD == 1:
            self.outConnectionLost()
        elif childFD == 2:
            self.errConnectionLost()

    def inConnectionLost(self) -> None:
        """The child's stdin pipe closed."""

    def outConnectionLost(self) -> None:
        """The child's stdout pipe closed."""

    def errConnectionLost(self) -> None:
        """The child's stderr pipe closed."""

    def processExited(self, reason: Failure) -> None:
        """The child has been reaped. ``reason.value`` is ``ProcessDone`` or
        ``ProcessTerminated`` (with ``exitCode``, ``signal`` and ``status``)."""

    def processEnded(self, reason: Failure) -> None:
        """The child has been reaped and all its pipes have closed: the last
        callback. ``reason`` is as for :meth:`processExited`."""
