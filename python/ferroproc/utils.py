"""Run a command and get its output or exit code as a Deferred.

The ferroproc counterpart of ``twisted.internet.utils``:
:func:`getProcessOutput`, :func:`getProcessValue` and
:func:`getProcessOutputAndValue`. Each spawns ``executable`` with argv
``(executable,) + tuple(args)`` through ``reactor.spawnProcess`` and returns a
:class:`~ferroproc.defer.Deferred`. As in Twisted the child gets an *empty*
environment unless ``env`` says otherwise (``env=None`` passes ours on), and
runs in our working directory unless ``path`` is given.

Example::

    from ferroproc import reactor, utils

    d = utils.getProcessOutput("/bin/echo", ["hello"])
    d.addCallback(print)                 # b'hello\\n'
    d.addBoth(lambda _: reactor.stop())
    reactor.run()

ferroproc extensions (keyword-only, on all three helpers):

* ``maxBytes``: a cap on the bytes the child writes to stdout and stderr
  together. When it is exceeded the child is killed with SIGKILL, our ends of
  its pipes are closed, and the Deferred fails with
  :class:`OutputLimitExceeded` once the process has ended, carrying the
  output captured up to the cap.
* ``timeout``: seconds the child may run. Then it gets SIGTERM, and SIGKILL
  ``killGrace`` seconds later if it is still there; the Deferred fails with
  :class:`ProcessTimeout` once the process has ended.

ferroproc's :func:`getProcessResult` runs a command as
:func:`getProcessOutputAndValue` does but fires, whatever the outcome, with
a :class:`ProcessResult` (output, exit code or signal, resource usage,
whether it timed out), and passes spawnProcess's
:class:`~ferroproc.ChildOptions` on (``processGroup``, ``rlimits``,
``umask``, ``nice``...).

Errors in the arguments (a missing executable, a bad ``env``...) are raised
by the call itself, as ``spawnProcess`` raises them: a Deferred is returned
only for a process that started.
"""

from __future__ import annotations

import io
import math
import os
from typing import TYPE_CHECKING, Any, cast

from ferroproc._results import ProcessResult
from ferroproc._spawnargs import ChildOptions
from ferroproc.defer import Deferred
from ferroproc.error import ProcessExitedAlready
from ferroproc.failure import Failure
from ferroproc.protocol import ProcessProtocol

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Protocol

    from typing_extensions import Unpack

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

        def callLater(
            self, delay: float, callable: Callable[..., object], *args: Any, **kw: Any
        ) -> _DelayedCall: ...

    class _OptionsReactor(_ProcessReactor, Protocol):
        """A reactor whose ``spawnProcess`` takes ``childFDs`` and ferroproc's
        :class:`ChildOptions` (ferroproc's own, or Twisted's under
        :mod:`ferroproc.twisted`): what :func:`getProcessResult` and the
        pipelines need."""

        def spawnProcess(
            self,
            processProtocol: Any,
            executable: Any,
            args: Any = (),
            env: Any = ...,
            path: Any = None,
            uid: Any = None,
            gid: Any = None,
            usePTY: Any = False,
            childFDs: Any = None,
            **options: Unpack[ChildOptions],
        ) -> Any: ...

    class _ProcessTransport(Protocol):
        """What the helpers use of a process transport (``signalGroup`` only
        where it has a ``pgid``: ferroproc's transports)."""

        def loseConnection(self) -> None: ...
        def signalProcess(self, signalID: str | int) -> None: ...
        def signalGroup(self, signalID: str | int) -> None: ...
        def writeToChild(self, childFD: int, data: bytes) -> None: ...
        def closeStdin(self) -> None: ...


__all__ = [
    "OutputLimitExceeded",
    "ProcessResult",
    "ProcessTimeout",
    "getProcessOutput",
    "getProcessOutputAndValue",
    "getProcessResult",
    "getProcessValue",
]


def _describe(command: _Command) -> str:
    """The command as a shell-quoted line, for error messages."""
    import shlex

    return shlex.join(os.fsdecode(part) for part in command)


class _UnexpectedErrorOutput(IOError):
    """``getProcessOutput`` without ``errortoo`` saw data on stderr.

    The message is ``got stderr: <the first chunk, repr>``. ``processEnded``
    is a Deferred that fails with the process's end reason
    (``ProcessDone`` or ``ProcessTerminated``) once it has ended: even a
    clean exit is reported as a failure there, as in Twisted.
    """

    def __init__(self, text: bytes, processEnded: Deferred[Any]) -> None:
        IOError.__init__(self, f"got stderr: {text!r}")
        self.processEnded = processEnded


class OutputLimitExceeded(Exception):
    """The child wrote more than ``maxBytes`` bytes (a ferroproc extension).

    The child was killed with SIGKILL. Attributes:

    * ``command``: the argv tuple (executable first);
    * ``limit``: the ``maxBytes`` value;
    * ``out``, ``err``: what was captured from stdout and stderr, at most
      ``limit`` bytes together (``getProcessOutput`` with ``errortoo`` puts
      both streams in ``out``; ``getProcessValue`` captures nothing);
    * ``reason``: the Failure the process ended with.
    """

    def __init__(
        self, command: _Command, limit: int, out: bytes, err: bytes, reason: Failure
    ) -> None:
        Exception.__init__(
            self,
            f"{_describe(command)}: wrote more than {limit} bytes of output "
            f"(maxBytes={limit}); killed with SIGKILL",
        )
        self.command = command
        self.limit = limit
        self.out = out
        self.err = err
        self.reason = reason


class ProcessTimeout(TimeoutError):
    """The child ran longer than ``timeout`` seconds (a ferroproc extension).

    It was sent SIGTERM, then SIGKILL if it outlived the grace period.
    Attributes:

    * ``command``: the argv tuple (executable first);
    * ``timeout``: the ``timeout`` value in seconds;
    * ``killed``: True if SIGKILL had to be sent;
    * ``out``, ``err``: the output captured until it ended (as for
      :class:`OutputLimitExceeded`);
    * ``reason``: the Failure the process ended with.
    """

    def __init__(
        self,
        command: _Command,
        timeout: float,
        killed: bool,
        out: bytes,
        err: bytes,
        reason: Failure,
    ) -> None:
        how = "SIGKILL after SIGTERM" if killed else "SIGTERM"
        TimeoutError.__init__(
            self,
            f"{_describe(command)}: did not finish within {timeout} seconds "
            f"(timeout={timeout}); stopped with {how}",
        )
        self.command = command
        self.timeout = timeout
        self.killed = killed
        self.out = out
        self.err = err
        self.reason = reason


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
    define. Signals go to the child's process group when it has one of its
    own (``processGroup``/``newSession``), as the engine's time limits do.
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
                transport.signalGroup(name)
            else:
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
            deferred.errback(
                OutputLimitExceeded(self.command, self._maxBytes, out, err, reason)
            )
        elif self._timedOut:
            self.finishedAfterTimeout(deferred, out, err, reason)
        else:
            self.finished(deferred, out, err, reason)

    def finished(self, deferred: Deferred[Any], out: bytes, err: bytes, reason: Failure) -> None:
        """Fire ``deferred`` for a process that ended within its limits."""
        raise NotImplementedError

    def finishedAfterTimeout(self, deferred: Deferred[Any], out: bytes, err: bytes, reason: Failure) -> None:
        """Fire ``deferred`` for a process stopped by its time limit: Twisted's
        helpers fail with :class:`ProcessTimeout`."""
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
        deferred.errback(_UnexpectedErrorOutput(data, self.onProcessEnded))
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


def _command(name: str, executable: _Executable, args: Sequence[_Executable]) -> _Command:
    """argv for the helpers: the executable, then ``args``. A bare string
    would be split into characters (Twisted runs ``echo h i`` for
    ``getProcessOutput("echo", "hi")``), so it is refused."""
    if isinstance(args, (str, bytes)):
        raise TypeError(f"{name}: args must be a sequence of arguments, not a single {type(args).__name__}")
    return (executable, *args)


def _isNumber(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _checkLimits(
    function: str, maxBytes: int | None, timeout: float | None, killGrace: float
) -> None:
    """Refuse bad limits before any child exists (a timer that could not be
    scheduled would otherwise fail only after the child had started)."""
    if maxBytes is not None and (
        not isinstance(maxBytes, int) or isinstance(maxBytes, bool) or maxBytes < 0
    ):
        raise ValueError(f"{function}: maxBytes must be a non-negative int or None, not {maxBytes!r}")
    if timeout is not None and (not _isNumber(timeout) or not 0 < timeout < math.inf):
        raise ValueError(
            f"{function}: timeout must be a positive, finite number of seconds or None, not {timeout!r}"
        )
    if not _isNumber(killGrace) or not 0 <= killGrace < math.inf:
        raise ValueError(f"{function}: killGrace must be a finite number of seconds >= 0, not {killGrace!r}")


def _checkStdinBytes(function: str, stdinBytes: bytes | None) -> None:
    if stdinBytes is not None and not isinstance(stdinBytes, bytes):
        raise TypeError(f"{function}: stdinBytes must be bytes or None, not {type(stdinBytes).__name__}")


#: The spawnProcess options the helpers pass on (``timeout`` and
#: ``killGrace`` are theirs, with their own meaning).
_CHILD_OPTIONS = frozenset(ChildOptions.__optional_keys__)


def _checkChildOptions(function: str, options: Mapping[str, Any]) -> None:
    """Refuse keyword arguments that are not :class:`ChildOptions` (their
    values are checked by ``spawnProcess``, before any child exists)."""
    unknown = sorted(set(options) - _CHILD_OPTIONS)
    if unknown:
        raise TypeError(
            f"{function}: unexpected keyword argument {unknown[0]!r} "
            f"(spawnProcess options passed on: {', '.join(sorted(_CHILD_OPTIONS))})"
        )


def _defaultReactor() -> _OptionsReactor:
    from ferroproc import reactor

    return reactor


def _run(
    protocol: _HelperProtocol,
    deferred: Deferred[Any],
    executable: _Executable,
    command: _Command,
    env: Mapping[Any, Any] | None,
    path: _Executable | None,
    reactor: _ProcessReactor | None,
) -> Deferred[Any]:
    if reactor is None:
        reactor = _defaultReactor()
    reactor.spawnProcess(protocol, executable, command, env, path)
    protocol.startTimer(reactor)
    return deferred


def getProcessOutput(
    executable: _Executable,
    args: Sequence[_Executable] = (),
    env: Mapping[Any, Any] | None = {},  # as in Twisted: {} is an empty environment
    path: _Executable | None = None,
    reactor: _ProcessReactor | None = None,
    errortoo: bool = False,
    *,
    maxBytes: int | None = None,
    timeout: float | None = None,
    killGrace: float = 5.0,
) -> Deferred[bytes]:
    """Run a command; the Deferred fires with everything it wrote to stdout.

    Arguments:
        executable: the program; argv is ``(executable,) + tuple(args)``.
        args: the arguments after argv[0].
        env: the child's environment; the default ``{}`` is an empty one,
            ``None`` passes ours on.
        path: the child's working directory (default: ours).
        reactor: the reactor to spawn with (default: ``ferroproc.reactor``).
        errortoo: if true, stderr is collected too, interleaved with stdout
            in arrival order. If false, the first data on stderr fails the
            Deferred with an ``IOError`` (``"got stderr: ..."``) whose
            ``processEnded`` attribute is a Deferred that fails with the end
            reason once the process has ended; our ends of the pipes are
            closed then.
        maxBytes, timeout, killGrace: ferroproc extensions, see the module
            documentation.

    Errors: the exceptions of ``spawnProcess`` are raised here;
    ``ValueError`` for a bad ``maxBytes``, ``timeout`` or ``killGrace``.
    The exit code is not looked at (use :func:`getProcessOutputAndValue`).
    """
    _checkLimits("getProcessOutput", maxBytes, timeout, killGrace)
    command = _command("getProcessOutput", executable, args)
    deferred: Deferred[bytes] = Deferred()
    protocol = _OutputGetter(
        deferred, command, maxBytes, timeout, killGrace, True, errortoo=bool(errortoo)
    )
    return _run(protocol, deferred, executable, command, env, path, reactor)


def getProcessValue(
    executable: _Executable,
    args: Sequence[_Executable] = (),
    env: Mapping[Any, Any] | None = {},  # as in Twisted: {} is an empty environment
    path: _Executable | None = None,
    reactor: _ProcessReactor | None = None,
    *,
    maxBytes: int | None = None,
    timeout: float | None = None,
    killGrace: float = 5.0,
) -> Deferred[int | None]:
    """Run a command; the Deferred fires with its exit code.

    A child killed by a signal gives None (a success, not a failure, as in
    Twisted). Output is read and discarded; ``maxBytes`` still counts it.
    Arguments, errors and extensions are as for :func:`getProcessOutput`.
    """
    _checkLimits("getProcessValue", maxBytes, timeout, killGrace)
    command = _command("getProcessValue", executable, args)
    deferred: Deferred[int | None] = Deferred()
    protocol = _ValueGetter(deferred, command, maxBytes, timeout, killGrace, False)
    return _run(protocol, deferred, executable, command, env, path, reactor)


def getProcessOutputAndValue(
    executable: _Executable,
    args: Sequence[_Executable] = (),
    env: Mapping[Any, Any] | None = {},  # as in Twisted: {} is an empty environment
    path: _Executable | None = None,
    reactor: _ProcessReactor | None = None,
    stdinBytes: bytes | None = None,
    *,
    maxBytes: int | None = None,
    timeout: float | None = None,
    killGrace: float = 5.0,
) -> Deferred[tuple[bytes, bytes, int]]:
    """Run a command; the Deferred fires with ``(out, err, exitCode)``.

    If the child is killed by a signal, the Deferred fails instead, and the
    Failure's ``value`` is the tuple ``(out, err, signalNumber)`` (as in
    Twisted).

    ``stdinBytes``, if given, is written to the child's stdin, which is then
    closed. Without it stdin stays open, so a child that reads stdin waits
    for it (Twisted's behaviour).

    Other arguments, errors and extensions are as for
    :func:`getProcessOutput`.
    """
    _checkLimits("getProcessOutputAndValue", maxBytes, timeout, killGrace)
    _checkStdinBytes("getProcessOutputAndValue", stdinBytes)
    command = _command("getProcessOutputAndValue", executable, args)
    deferred: Deferred[tuple[bytes, bytes, int]] = Deferred()
    protocol = _EverythingGetter(
        deferred, command, maxBytes, timeout, killGrace, True, stdinBytes=stdinBytes
    )
    return _run(protocol, deferred, executable, command, env, path, reactor)


def getProcessResult(
    executable: _Executable,
    args: Sequence[_Executable] = (),
    env: Mapping[Any, Any] | None = {},  # as in Twisted: {} is an empty environment
    path: _Executable | None = None,
    reactor: _OptionsReactor | None = None,
    stdinBytes: bytes | None = None,
    *,
    maxBytes: int | None = None,
    timeout: float | None = None,
    killGrace: float = 5.0,
    **options: Unpack[ChildOptions],
) -> Deferred[ProcessResult]:
    """Run a command; the Deferred fires with a :class:`ProcessResult`
    (a ferroproc extension).

    As :func:`getProcessOutputAndValue`, but the Deferred never fails for a
    non-zero exit, a signal or a time-out: the result says what happened
    (``exitCode``, ``signal``, ``timedOut``, ``ok``), with both outputs and
    what the child used (``resourceUsage``).

    Example::

        result = await utils.getProcessResult("make", ["all"], env=None, timeout=600)
        print(result.exitCode, result.resourceUsage)

    Arguments:
        executable, args, env, path, reactor: as for :func:`getProcessOutput`.
        stdinBytes: written to the child's stdin, which is then closed;
            without it stdin stays open (as for
            :func:`getProcessOutputAndValue`).
        maxBytes: a cap on stdout and stderr together. Exceeding it kills
            the child and fails the Deferred with
            :class:`OutputLimitExceeded` (a truncated result would pass for
            a whole one).
        timeout, killGrace: the child is stopped after ``timeout`` seconds
            (SIGTERM, SIGKILL ``killGrace`` seconds later) and the result
            has ``timedOut=True``.
        options: spawnProcess's :class:`~ferroproc.ChildOptions`
            (``processGroup``/``newSession``, ``killGroupOnExit``, ``rlimits``,
            ``umask``, ``nice``, ``cpuAffinity``...), passed on. With a group
            of its own, the time limit and ``maxBytes`` signal the child's
            whole group.

    Errors: the exceptions of ``spawnProcess`` are raised here;
    ``ValueError`` for a bad ``maxBytes``, ``timeout`` or ``killGrace``,
    ``TypeError`` for ``stdinBytes`` that is not bytes or a keyword that is
    not a :class:`~ferroproc.ChildOptions` one.
    """
    _checkLimits("getProcessResult", maxBytes, timeout, killGrace)
    _checkStdinBytes("getProcessResult", stdinBytes)
    _checkChildOptions("getProcessResult", options)
    command = _command("getProcessResult", executable, args)
    deferred: Deferred[ProcessResult] = Deferred()
    protocol = _ResultGetter(deferred, command, maxBytes, timeout, killGrace, True, stdinBytes=stdinBytes)
    if reactor is None:
        reactor = _defaultReactor()
    reactor.spawnProcess(protocol, executable, command, env, path, **options)
    protocol.startTimer(reactor)
    return deferred
