"""The protocols behind :mod:`ferroproc.utils` and each stage of a
:mod:`ferroproc.pipeline`: they capture a child's output, enforce
``maxBytes`` and ``timeout``, stop the child on request, and turn its end
into the result of a Deferred (bytes, an exit code, a tuple, a
:class:`~ferroproc.utils.ProcessResult`, or one of the utilities'
exceptions from the leaf module ``_utilerrors.py``).
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any, cast

from ferroproc._results import ProcessResult
from ferroproc._utilerrors import OutputLimitExceeded, ProcessTimeout, UnexpectedErrorOutput
from ferroproc.defer import Deferred
from ferroproc.error import ProcessExitedAlready
from ferroproc.failure import Failure
from ferroproc.protocol import ProcessProtocol

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    _Executable = str | bytes | os.PathLike[str] | os.PathLike[bytes]
    _Command = tuple[_Executable, ...]

    class _DelayedCall(Protocol):
        def cancel(self) -> None: ...
        def active(self) -> bool: ...

    class _ProcessReactor(Protocol):
        """What the helpers need from a reactor."""

        def spawnProcess(
            self,
            processProtocol: Any,
            executable: Any,
            args: Any = (),
            env: Any = ...,
            path: Any = None,
        ) -> Any: ...

        def callLater(self, delay: float, callable: Callable[..., object], *args: Any, **kw: Any) -> _DelayedCall: ...

    class _ProcessTransport(Protocol):
        """What the helpers use of a process transport (``signalGroup`` only
        where it has a ``pgid``: ferroproc's transports; it raises
        ``ValueError`` for a group the child joined but does not lead)."""

        def loseConnection(self) -> None: ...
        def signalProcess(self, signalID: str | int) -> None: ...
        def signalGroup(self, signalID: str | int) -> None: ...
        def writeToChild(self, childFD: int, data: bytes) -> None: ...
        def closeStdin(self) -> None: ...


def _processResult(out: bytes, err: bytes, reason: Failure, timedOut: bool) -> ProcessResult:
    """The :class:`ProcessResult` for a process that ended with ``reason``."""
    ended = reason.value
    usage = getattr(ended, "resourceUsage", None)  # Twisted's own reasons have none
    return ProcessResult(out, err, ended.exitCode, ended.signal, usage, timedOut)


class _Output:
    """Captured output, copied once and held at about 1x its size.

    Each chunk is copied into a ``BytesIO`` as it arrives and then freed;
    ``getvalue()`` hands the ``BytesIO``'s own buffer over without a copy.
    (Joining a list of chunks at the end would hold every byte twice.) A
    single chunk is returned as it is.
    """

    __slots__ = ("_first", "_io")

    def __init__(self) -> None:
        self._first: bytes | None = None
        self._io: io.BytesIO | None = None

    def append(self, data: bytes) -> None:
        if self._io is None:
            if self._first is None:
                self._first = data
                return
            self._io = io.BytesIO()
            self._io.write(self._first)
            self._first = None
        self._io.write(data)

    def getvalue(self) -> bytes:
        if self._io is None:
            return self._first or b""
        value = self._io.getvalue()
        self._io = None
        return value


class _HelperProtocol(ProcessProtocol):
    """The machinery the helpers (and each stage of a pipeline) share.

    Collects stdout and stderr (see :class:`_Output`), enforces ``maxBytes``
    and ``timeout``, stops the process on request (:meth:`terminate`), and
    turns the end of the process into the Deferred's result through
    :meth:`finished` (and :meth:`finishedAfterTimeout`), which subclasses
    define. Signals go to the child's process group when the child leads
    one (``processGroup=True``/``newSession``), as the engine's time limits
    do; a child that joined a group it does not lead is signalled alone.
    """

    def __init__(
        self,
        deferred: Deferred[Any],
        command: _Command,
        maxBytes: int | None,
        timeout: float | None,
        killGrace: float,
        keepOutput: bool,
    ) -> None:
        self.deferred: Deferred[Any] | None = deferred
        self.command = command
        self.outChunks = _Output()
        self.errChunks = _Output()
        self._keepOutput = keepOutput
        self._maxBytes = maxBytes
        self._received = 0
        self._timeout = timeout
        self._killGrace = killGrace
        self._timeoutCall: _DelayedCall | None = None
        self._killCall: _DelayedCall | None = None
        self._limitHit = False
        self._timedOut = False
        self._terminating = False
        self._killed = False
        self._exited = False
        self._ended = False

    # -- limits ----------------------------------------------------------------

    def startTimer(self, reactor: _ProcessReactor) -> None:
        """Start the ``timeout`` clock, unless the process has already ended."""
        if self._timeout is not None and not self._ended:
            self._timeoutCall = reactor.callLater(self._timeout, self._onTimeout, reactor)

    def _processTransport(self) -> _ProcessTransport:
        return cast("_ProcessTransport", self.transport)

    def _signal(self, name: str) -> None:
        transport = self._processTransport()
        try:
            if getattr(transport, "pgid", None) is not None:
                try:
                    transport.signalGroup(name)
                    return
                except ValueError:
                    pass  # a group it joined: not ours to signal, the child is
            transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    def _onTimeout(self, reactor: _ProcessReactor) -> None:
        self._timeoutCall = None
        self.timeOut(reactor)

    def timeOut(self, reactor: _ProcessReactor) -> None:
        """The time limit ran out: :meth:`terminate` the process, or, if it
        has exited already and only a grandchild keeps its pipes open, close
        them. The result says it timed out."""
        if self._ended:
            return
        self._timedOut = True
        if self._exited:
            self._processTransport().loseConnection()
            return
        self.terminate(reactor)

    def terminate(self, reactor: _ProcessReactor) -> bool:
        """Stop a running process: SIGTERM now, SIGKILL ``killGrace`` seconds
        later if it is still there, and our ends of its pipes closed once it
        has exited. Returns whether it was running (and so was signalled);
        does nothing the second time."""
        if self._exited or self._terminating:
            return False
        self._terminating = True
        self._signal("TERM")
        self._killCall = reactor.callLater(self._killGrace, self._onKillGrace)
        return True

    def kill(self) -> None:
        """SIGKILL the process now, unless it has exited, and close our ends
        of its pipes (used when it must not outlive a failed start)."""
        if not self._exited:
            self._killed = True
            self._signal("KILL")
        self._processTransport().loseConnection()

    @property
    def exited(self) -> bool:
        """Whether the process has been reaped."""
        return self._exited

    def _onKillGrace(self) -> None:
        self._killCall = None
        if not self._exited:
            self._killed = True
            self._signal("KILL")
        self._processTransport().loseConnection()

    def _keep(self, chunks: _Output, data: bytes) -> bool:
        """Count ``data`` against ``maxBytes`` and keep what fits.

        Returns False once the limit has been exceeded (the child is then
        being killed and the rest of its output is dropped).
        """
        if self._limitHit:
            return False
        maxBytes = self._maxBytes
        if maxBytes is not None and self._received + len(data) > maxBytes:
            room = maxBytes - self._received
            if self._keepOutput and room > 0:
                chunks.append(data[:room])
            self._received = maxBytes
            self._limitHit = True
            self._signal("KILL")
            self._processTransport().loseConnection()
            return False
        self._received += len(data)
        if self._keepOutput:
            chunks.append(data)
        return True

    def _cancelTimers(self) -> None:
        for call in (self._timeoutCall, self._killCall):
            if call is not None and call.active():
                call.cancel()
        self._timeoutCall = self._killCall = None

    # -- process events ------------------------------------------------------

    def outReceived(self, data: bytes) -> None:
        self._keep(self.outChunks, data)

    def errReceived(self, data: bytes) -> None:
        self._keep(self.errChunks, data)

    def processExited(self, reason: Failure) -> None:
        self._exited = True
        if self._timedOut or self._limitHit or self._terminating:
            # Do not let a grandchild holding our pipes delay the result.
            self._processTransport().loseConnection()

    def processEnded(self, reason: Failure) -> None:
        self._ended = True
        self._cancelTimers()
        deferred = self.deferred
        if deferred is None:
            self.endedAfterResult(reason)
            return
        self.deferred = None
        out = self.outChunks.getvalue()
        err = self.errChunks.getvalue()
        if self._limitHit:
            assert self._maxBytes is not None
            deferred.errback(OutputLimitExceeded(self.command, self._maxBytes, out, err, reason))
        elif self._timedOut:
            self.finishedAfterTimeout(deferred, out, err, reason)
        else:
            self.finished(deferred, out, err, reason)

    def finished(self, deferred: Deferred[Any], out: bytes, err: bytes, reason: Failure) -> None:
        """Fire ``deferred`` for a process that ended within its limits."""
        raise NotImplementedError

    def finishedAfterTimeout(self, deferred: Deferred[Any], out: bytes, err: bytes, reason: Failure) -> None:
        """Fire ``deferred`` for a process stopped by its time limit: Twisted's
        helpers fail with :class:`~ferroproc.utils.ProcessTimeout`."""
        assert self._timeout is not None
        deferred.errback(ProcessTimeout(self.command, self._timeout, self._killed, out, err, reason))

    def endedAfterResult(self, reason: Failure) -> None:
        """The process ended after the Deferred had already fired."""


class _OutputGetter(_HelperProtocol):
    """``getProcessOutput``: stdout (and stderr with ``errortoo``) as bytes."""

    def __init__(self, *args: Any, errortoo: bool, **kwargs: Any) -> None:
        _HelperProtocol.__init__(self, *args, **kwargs)
        self._errortoo = errortoo
        self.onProcessEnded: Deferred[Any] | None = None

    def errReceived(self, data: bytes) -> None:
        if self._errortoo:
            # Interleaved with stdout, in arrival order.
            self._keep(self.outChunks, data)
            return
        if not self._keep(self.errChunks, data) or self.deferred is None:
            return
        deferred = self.deferred
        self.deferred = None
        self.onProcessEnded = Deferred()
        deferred.errback(UnexpectedErrorOutput(data, self.onProcessEnded))
        self._processTransport().loseConnection()

    def finished(self, deferred: Deferred[Any], out: bytes, err: bytes, reason: Failure) -> None:
        deferred.callback(out)

    def endedAfterResult(self, reason: Failure) -> None:
        if self.onProcessEnded is not None:
            self.onProcessEnded.errback(reason)
            # The end reason is news only to code that asked for it: it is
            # not an unhandled error if nobody did (Twisted logs none either).
            # An errback added later still gets it; a failure raised by a
            # callback added later is reported as usual.
            self.onProcessEnded._disarmReporter()


class _ValueGetter(_HelperProtocol):
    """``getProcessValue``: the exit code (None after a signal)."""

    def finished(self, deferred: Deferred[Any], out: bytes, err: bytes, reason: Failure) -> None:
        deferred.callback(reason.value.exitCode)


class _EverythingGetter(_HelperProtocol):
    """``getProcessOutputAndValue``: ``(out, err, code)``."""

    def __init__(self, *args: Any, stdinBytes: bytes | None, **kwargs: Any) -> None:
        _HelperProtocol.__init__(self, *args, **kwargs)
        self._stdinBytes = stdinBytes

    def connectionMade(self) -> None:
        stdinBytes = self._stdinBytes
        if stdinBytes is not None:
            self._stdinBytes = None
            transport = self._processTransport()
            transport.writeToChild(0, stdinBytes)
            transport.closeStdin()

    def finished(self, deferred: Deferred[Any], out: bytes, err: bytes, reason: Failure) -> None:
        signal = reason.value.signal
        if signal:
            # Twisted fails with the bare tuple as the Failure's value.
            deferred.errback(Failure((out, err, signal)))
        else:
            deferred.callback((out, err, reason.value.exitCode))


class _ResultGetter(_EverythingGetter):
    """``getProcessResult`` (and each stage of a pipeline): a
    :class:`ProcessResult` however the process ended, a time-out included."""

    def finished(self, deferred: Deferred[Any], out: bytes, err: bytes, reason: Failure) -> None:
        deferred.callback(_processResult(out, err, reason, timedOut=False))

    def finishedAfterTimeout(self, deferred: Deferred[Any], out: bytes, err: bytes, reason: Failure) -> None:
        deferred.callback(_processResult(out, err, reason, timedOut=True))
