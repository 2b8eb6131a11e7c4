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

Without ``errortoo``, :func:`getProcessOutput` fails with
:class:`UnexpectedErrorOutput` as soon as the child writes to stderr (as
Twisted's does, under the private name ``_UnexpectedErrorOutput``, which is
kept as an alias).

ferroproc's :func:`getProcessResult` runs a command as
:func:`getProcessOutputAndValue` does but fires, whatever the outcome, with
a :class:`ProcessResult` (output, exit code or signal, resource usage,
whether it timed out), and passes spawnProcess's
:class:`~ferroproc.ChildOptions` on (``processGroup``, ``rlimits``,
``umask``, ``nice``...). Pipelines (``a | b | c``) are in
:mod:`ferroproc.pipeline`.

Errors in the arguments (a missing executable, a bad ``env``...) are raised
by the call itself, as ``spawnProcess`` raises them: a Deferred is returned
only for a process that started.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ferroproc._capture import _EverythingGetter, _HelperProtocol, _OutputGetter, _ResultGetter, _ValueGetter
from ferroproc._results import ProcessResult
from ferroproc._spawnargs import ChildOptions
from ferroproc._utilerrors import OutputLimitExceeded, ProcessTimeout, UnexpectedErrorOutput
from ferroproc.defer import Deferred

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Protocol

    from typing_extensions import Unpack

    from ferroproc._capture import _Command, _Executable, _ProcessReactor

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


__all__ = [
    "OutputLimitExceeded",
    "ProcessResult",
    "ProcessTimeout",
    "UnexpectedErrorOutput",
    "getProcessOutput",
    "getProcessOutputAndValue",
    "getProcessResult",
    "getProcessValue",
]

#: Twisted's private name for :class:`UnexpectedErrorOutput`, for ported code
#: (and tests) that catch it by that name.
_UnexpectedErrorOutput = UnexpectedErrorOutput


def _command(name: str, executable: _Executable, args: Sequence[_Executable]) -> _Command:
    """argv for the helpers: the executable, then ``args``. A bare string
    would be split into characters (Twisted runs ``echo h i`` for
    ``getProcessOutput("echo", "hi")``), so it is refused."""
    if isinstance(args, (str, bytes)):
        raise TypeError(f"{name}: args must be a sequence of arguments, not a single {type(args).__name__}")
    return (executable, *args)


def _isNumber(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _checkLimits(function: str, maxBytes: int | None, timeout: float | None, killGrace: float) -> None:
    """Refuse bad limits before any child exists (a timer that could not be
    scheduled would otherwise fail only after the child had started)."""
    if maxBytes is not None and (not isinstance(maxBytes, int) or isinstance(maxBytes, bool) or maxBytes < 0):
        raise ValueError(f"{function}: maxBytes must be a non-negative int or None, not {maxBytes!r}")
    if timeout is not None and (not _isNumber(timeout) or not 0 < timeout < math.inf):
        raise ValueError(f"{function}: timeout must be a positive, finite number of seconds or None, not {timeout!r}")
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
            Deferred with :class:`UnexpectedErrorOutput` (an ``IOError``:
            ``"got stderr: ..."``) whose ``processEnded`` attribute is a
            Deferred that fails with the end reason once the process has
            ended; our ends of the pipes are closed then.
        maxBytes, timeout, killGrace: ferroproc extensions, see the module
            documentation.

    Errors: the exceptions of ``spawnProcess`` are raised here;
    ``ValueError`` for a bad ``maxBytes``, ``timeout`` or ``killGrace``.
    The exit code is not looked at (use :func:`getProcessOutputAndValue`).
    """
    _checkLimits("getProcessOutput", maxBytes, timeout, killGrace)
    command = _command("getProcessOutput", executable, args)
    deferred: Deferred[bytes] = Deferred()
    protocol = _OutputGetter(deferred, command, maxBytes, timeout, killGrace, True, errortoo=bool(errortoo))
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
    protocol = _EverythingGetter(deferred, command, maxBytes, timeout, killGrace, True, stdinBytes=stdinBytes)
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
            ``umask``, ``nice``, ``cpuAffinity``...), passed on. When the
            child leads a group of its own, the time limit and ``maxBytes``
            signal the whole group (one it joined, never: the child alone).

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
