"""Pipelines: start ``a | b | c`` in one call (a ferroproc extension).

:func:`getPipelineOutput` runs the stages and fires with a
:class:`PipelineResult`: the last stage's output, and how every stage ended.
:func:`spawnPipeline` is the same with a :class:`Pipeline` in hand: protocols
of yours for the stages, the transports, :meth:`Pipeline.stop`.

Example::

    from ferroproc import reactor
    from ferroproc.pipeline import getPipelineOutput

    d = getPipelineOutput([["printf", "b\\na\\nb\\n"], ["sort"], ["uniq", "-c"]])
    d.addCallback(lambda result: print(result.out.decode(), result.exitCode))
    d.addBoth(lambda _: reactor.stop())
    reactor.run()

**Wiring.** Each stage is ``argv`` (``argv[0]`` is the program, looked up
on ``PATH`` as ``spawnProcess`` does). Neighbouring stages are joined by a
kernel pipe (``os.pipe()``) given to both through ``childFDs``: no byte
between stages passes through Python. The parent closes its copies of each
pipe as soon as the stages at its ends have started, so when a stage exits,
the next one sees end-of-file and the previous one SIGPIPE, as in a shell.

**Input.** ``stdinBytes`` is written to the first stage's stdin, which is
then closed; ``stdin=fd`` gives it that fd instead. With neither, its stdin
is closed at once (end-of-file) — unless ``protocols[0]`` is given, which
then writes to it through its transport and closes it.

**Output.** The last stage's stdout is captured in
:attr:`PipelineResult.out`, or goes to ``stdout=fd``, or to
``protocols[-1]``. Each stage's stderr is a pipe of its own, captured in its
:attr:`StageResult.err` (or given to ``protocols[i]``); ``stderr=fd`` sends
every stage's stderr to that fd instead.

**When a stage fails, the others are ended.** A stage *fails* when it exits
non-zero, is killed by a signal, or writes more than ``maxBytes`` — except
that

* a stage other than the last one killed by SIGPIPE has not failed: the
  stage after it stopped reading, as ``head`` does (in ``yes | head -1``,
  ``yes`` is killed by SIGPIPE and the pipeline succeeds); bash's
  ``pipefail`` would report 141 there;
* a stage that the pipeline stopped because another one had failed has not
  failed either (:attr:`StageResult.stoppedAfterFailure`): its status is
  the stop's doing.

As soon as a stage fails, every other stage still running gets SIGTERM (its
process group's, when ``processGroup=True``/``newSession`` made it lead one;
a stage that joined an existing group is signalled alone) and,
``killGrace`` seconds later, SIGKILL if it is still there; our ends of its
pipes are closed once it has exited, so what it had not yet delivered is
dropped (a grandchild holding them cannot delay the result). A stage that
exits 0 ends nothing: as in a shell, ``sleep 5 | true`` takes five seconds.

**Status (pipefail).** :attr:`PipelineResult.exitCode` is the status of the
last stage that failed (shell numbering: 128 + N after signal N), 0 if none
did; :attr:`PipelineResult.ok` is true when no stage failed and the time
limit was not reached.

**Time limit.** ``timeout`` counts from the start, for the whole pipeline.
When it runs out, every stage still running is stopped as above and marked
:attr:`~StageResult.timedOut` (a stage killed that way has failed).

**Errors.** Bad arguments (no stages, an empty argv, an argument that is not
str, bytes or path-like, a closed fd...) raise ``TypeError``/``ValueError``
(``OSError`` for a closed fd) naming them before any child exists; bad
``env``, ``path`` or options raise as ``spawnProcess`` does, from the first
stage, before any child exists too. If stage *k* fails to start (a missing
program: ``FileNotFoundError``), the stages already started are killed with
SIGKILL, our ends of their pipes and every pipe made for the pipeline are
closed, and the error is raised; the reactor reaps them as usual (their
protocols, if yours, still get ``processEnded``). A stage over ``maxBytes``
fails the Deferred with :class:`ferroproc.utils.OutputLimitExceeded` once
every stage has ended (a truncated result would pass for a whole one).

Cancelling the Deferred (``d.cancel()``, ``d.addTimeout(...)``) stops the
pipeline as :meth:`Pipeline.stop` does.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ferroproc._capture import _ResultGetter
from ferroproc._results import PipelineResult, ProcessResult, StageResult
from ferroproc._spawnargs import _checkProtocol
from ferroproc.defer import Deferred
from ferroproc.failure import Failure
from ferroproc.utils import _checkChildOptions, _checkLimits, _checkStdinBytes, _defaultReactor

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ferroproc._capture import _DelayedCall
    from ferroproc._spawnargs import ChildOptions
    from ferroproc.interfaces import IProcessProtocol, IProcessTransport
    from ferroproc.utils import _OptionsReactor

    _Argument = str | bytes | os.PathLike[str] | os.PathLike[bytes]
    _Command = tuple[_Argument, ...]

__all__ = ["Pipeline", "PipelineResult", "StageResult", "getPipelineOutput", "spawnPipeline"]


def _failed(exitCode: int | None, signalNumber: int | None, last: bool, stoppedAfterFailure: bool) -> bool:
    """Whether a stage that ended so counts as failed (the module's rule)."""
    if stoppedAfterFailure:
        return False
    if signalNumber == signal.SIGPIPE and not last:
        return False
    return exitCode != 0


class _StageProtocol(_ResultGetter):
    """One stage: the helpers' machinery (capture, ``maxBytes``,
    :meth:`terminate`) with the pipeline told of its exit and end, and every
    event passed on to the user's protocol when there is one (whose output
    is then not captured)."""

    def __init__(
        self,
        pipeline: Pipeline,
        index: int,
        user: IProcessProtocol | None,
        command: _Command,
        maxBytes: int | None,
        killGrace: float,
        stdinBytes: bytes | None,
    ) -> None:
        deferred: Deferred[ProcessResult] = Deferred()
        _ResultGetter.__init__(self, deferred, command, maxBytes, None, killGrace, user is None, stdinBytes=stdinBytes)
        self.ended = deferred
        self.pipeline = pipeline
        self.index = index
        self.user = user
        self.stoppedAfterFailure = False

    def makeConnection(self, transport: IProcessTransport) -> None:
        _ResultGetter.makeConnection(self, transport)
        if self.user is not None:
            self.user.makeConnection(transport)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if self.user is None:
            _ResultGetter.childDataReceived(self, childFD, data)
        else:
            self.user.childDataReceived(childFD, data)

    def childConnectionLost(self, childFD: int) -> None:
        if self.user is not None:
            self.user.childConnectionLost(childFD)

    # The user's callback first; the pipeline's bookkeeping even if it raises
    # (the engine then logs the error, as for any protocol).

    def processExited(self, reason: Failure) -> None:
        try:
            if self.user is not None:
                self.user.processExited(reason)
        finally:
            _ResultGetter.processExited(self, reason)
            self.pipeline._stageExited(self, reason)

    def processEnded(self, reason: Failure) -> None:
        try:
            if self.user is not None:
                self.user.processEnded(reason)
        finally:
            _ResultGetter.processEnded(self, reason)


class Pipeline:
    """A started pipeline: what :func:`spawnPipeline` returns (not created
    directly)."""

    #: The stages' transports, in pipeline order (``pid``,
    #: ``signalProcess``, ``pgid``, ``resourceUsage``...).
    transports: tuple[IProcessTransport, ...]
    #: Fires with the :class:`PipelineResult` once every stage has ended
    #: (fails with :class:`ferroproc.utils.OutputLimitExceeded` for a stage
    #: over ``maxBytes``). Cancelling it stops the pipeline (:meth:`stop`).
    ended: Deferred[PipelineResult]

    def __init__(self, reactor: _OptionsReactor, killGrace: float) -> None:
        self.transports = ()
        self.ended = Deferred(canceller=lambda _: self.stop())
        self._reactor = reactor
        self._killGrace = killGrace
        self._stages: list[_StageProtocol] = []
        self._results: dict[int, ProcessResult | Failure] = {}
        self._count = 0
        self._timeoutCall: _DelayedCall | None = None
        self._stopping = False
        self._abandoned = False

    def stop(self) -> None:
        """End every stage still running: SIGTERM, then SIGKILL ``killGrace``
        seconds later, as if killed from outside (their statuses count:
        143 after SIGTERM). :attr:`ended` still fires once they have all
        ended. Does nothing once the pipeline is being stopped."""
        if self._stopping:
            return
        self._stopping = True
        self._cancelTimeout()
        for stage in self._stages:
            stage.terminate(self._reactor)

    def __repr__(self) -> str:
        pids = [getattr(t, "pid", None) for t in self.transports]
        return f"<ferroproc.pipeline.Pipeline stages={len(self._stages)} pids={pids}>"

    # -- starting ----------------------------------------------------------

    def _start(
        self,
        commands: list[_Command],
        protocols: Sequence[IProcessProtocol | None],
        env: Mapping[Any, Any] | None,
        path: _Argument | None,
        stdinBytes: bytes | None,
        fds: dict[str, int | None],
        maxBytes: int | None,
        timeout: float | None,
        options: Mapping[str, Any],
    ) -> None:
        """Start every stage, or none: see the module's "Errors"."""
        self._count = len(commands)
        if stdinBytes is None and fds["stdin"] is None and protocols[0] is None:
            stdinBytes = b""  # nobody will write: end-of-file at once
        ours: set[int] = set()  # pipe ends the parent still holds
        upstream: int | None = None  # the read end the next stage gets as stdin
        transports = []
        try:
            for index, command in enumerate(commands):
                last = index == len(commands) - 1
                stdinFD: str | int | None = upstream
                if index == 0:
                    stdinFD = fds["stdin"] if fds["stdin"] is not None else "w"
                assert stdinFD is not None
                writeEnd = downstream = None
                if not last:
                    downstream, writeEnd = os.pipe()
                    ours.update((downstream, writeEnd))
                childFDs: dict[int, str | int] = {
                    0: stdinFD,
                    1: writeEnd if writeEnd is not None else (fds["stdout"] if fds["stdout"] is not None else "r"),
                    2: fds["stderr"] if fds["stderr"] is not None else "r",
                }
                firstInput = stdinBytes if index == 0 else None
                stage = _StageProtocol(self, index, protocols[index], command, maxBytes, self._killGrace, firstInput)
                transports.append(
                    self._reactor.spawnProcess(stage, command[0], command, env, path, childFDs=childFDs, **options)
                )
                self._stages.append(stage)
                stage.ended.addBoth(self._stageEnded, index)
                # The child holds its own copies now: with ours closed, its
                # neighbours see end-of-file / SIGPIPE when it exits.
                for fd in (upstream, writeEnd):
                    if fd is not None:
                        ours.discard(fd)
                        os.close(fd)
                upstream = downstream
        except BaseException:
            self._abandoned = True
            for fd in ours:
                os.close(fd)
            for stage in self._stages:
                stage.kill()
            raise
        self.transports = tuple(transports)
        if timeout is not None:
            self._timeoutCall = self._reactor.callLater(timeout, self._onTimeout)

    # -- stage events ------------------------------------------------------

    def _stageExited(self, stage: _StageProtocol, reason: Failure) -> None:
        if self._stopping or self._abandoned:
            return
        ended = reason.value
        if _failed(ended.exitCode, ended.signal, stage.index == self._count - 1, False):
            self._stopping = True
            self._cancelTimeout()
            for other in self._stages:
                if other is not stage and other.terminate(self._reactor):
                    other.stoppedAfterFailure = True

    def _onTimeout(self) -> None:
        self._timeoutCall = None
        self._stopping = True
        for stage in self._stages:
            stage.timeOut(self._reactor)

    def _cancelTimeout(self) -> None:
        if self._timeoutCall is not None and self._timeoutCall.active():
            self._timeoutCall.cancel()
        self._timeoutCall = None

    def _stageEnded(self, result: ProcessResult | Failure, index: int) -> None:
        self._results[index] = result
        if len(self._results) == self._count and not self._abandoned:
            self._finish()
        # A stage's failure (OutputLimitExceeded) is handed to ``ended``.
        return None

    def _finish(self) -> None:
        self._cancelTimeout()
        if self.ended.called:  # cancelled
            return
        results = [self._results[i] for i in range(self._count)]
        for result in results:
            if isinstance(result, Failure):
                self.ended.errback(result)
                return
        stages = []
        for stage, result in zip(self._stages, results, strict=True):
            assert isinstance(result, ProcessResult)
            last = stage.index == self._count - 1
            stages.append(
                StageResult(
                    tuple(os.fsdecode(arg) for arg in stage.command),
                    result.err,
                    result.exitCode,
                    result.signal,
                    result.resourceUsage,
                    result.timedOut,
                    stage.stoppedAfterFailure,
                    _failed(result.exitCode, result.signal, last, stage.stoppedAfterFailure),
                )
            )
        final = results[-1]
        assert isinstance(final, ProcessResult)
        self.ended.callback(PipelineResult(final.out, tuple(stages)))


# -- checking the arguments ---------------------------------------------------


def _typeName(value: object) -> str:
    return type(value).__name__


def _commands(function: str, stages: object) -> list[_Command]:
    """The stages as argv tuples, each argument checked (so a later stage
    cannot fail on one after the first has started)."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
        raise TypeError(f"{function}: stages must be a list of argv lists, not {_typeName(stages)}")
    if not stages:
        raise ValueError(f"{function}: stages is empty: a pipeline needs at least one command")
    commands = []
    for i, stage in enumerate(stages):
        if isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence):
            raise TypeError(
                f"{function}: stages[{i}] must be a list of arguments (argv), not {_typeName(stage)} {stage!r}"
            )
        if not stage:
            raise ValueError(f"{function}: stages[{i}] is empty: its first item is the program to run")
        for j, arg in enumerate(stage):
            if not isinstance(arg, (str, bytes, os.PathLike)):
                raise TypeError(
                    f"{function}: stages[{i}][{j}] must be str, bytes or path-like, not {_typeName(arg)} {arg!r}"
                )
            try:
                encoded = os.fsencode(arg)
            except UnicodeEncodeError:
                raise ValueError(f"{function}: stages[{i}][{j}] cannot be encoded to bytes: {arg!r}") from None
            if b"\0" in encoded:
                raise ValueError(f"{function}: stages[{i}][{j}] contains a NUL byte: {arg!r}")
            if j == 0 and not encoded:
                raise ValueError(f"{function}: stages[{i}][0] is empty: it names the program to run")
        commands.append(tuple(stage))
    return commands


def _protocols(function: str, protocols: object, count: int) -> list[IProcessProtocol | None]:
    if protocols is None:
        return [None] * count
    if isinstance(protocols, (str, bytes)) or not isinstance(protocols, Sequence):
        raise TypeError(
            f"{function}: protocols must be a list (one protocol or None per stage), not {_typeName(protocols)}"
        )
    if len(protocols) != count:
        raise ValueError(f"{function}: {len(protocols)} protocols for {count} stages (give one, or None, per stage)")
    for i, protocol in enumerate(protocols):
        _checkProtocol(protocol, False, f"{function}: protocols[{i}]")
    return list(protocols)


def _fd(function: str, name: str, fd: object) -> int | None:
    """An fd argument: None, or an open fd."""
    if fd is None:
        return None
    if not isinstance(fd, int) or isinstance(fd, bool):
        raise TypeError(f"{function}: {name} must be an fd number or None, not {_typeName(fd)}")
    if fd < 0:
        raise ValueError(f"{function}: {name} fd {fd} is negative")
    try:
        os.fstat(fd)
    except OSError as e:
        raise OSError(e.errno or errno.EBADF, f"{function}: {name} fd {fd} is not open") from None
    return fd


def _spawn(
    function: str,
    stages: Sequence[Sequence[_Argument]],
    protocols: Sequence[IProcessProtocol | None] | None,
    env: Mapping[Any, Any] | None,
    path: _Argument | None,
    reactor: _OptionsReactor | None,
    stdinBytes: bytes | None,
    stdin: int | None,
    stdout: int | None,
    stderr: int | None,
    maxBytes: int | None,
    timeout: float | None,
    killGrace: float,
    options: Mapping[str, Any],
) -> Pipeline:
    commands = _commands(function, stages)
    users = _protocols(function, protocols, len(commands))
    _checkLimits(function, maxBytes, timeout, killGrace)
    _checkStdinBytes(function, stdinBytes)
    _checkChildOptions(function, options)
    if stdinBytes is not None and stdin is not None:
        raise ValueError(f"{function}: give stdinBytes or stdin, not both")
    fds = {name: _fd(function, name, fd) for name, fd in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr))}
    pipeline = Pipeline(reactor if reactor is not None else _defaultReactor(), killGrace)
    pipeline._start(commands, users, env, path, stdinBytes, fds, maxBytes, timeout, options)
    return pipeline


# -- the public calls -----------------------------------------------------------


def spawnPipeline(
    stages: Sequence[Sequence[_Argument]],
    protocols: Sequence[IProcessProtocol | None] | None = None,
    env: Mapping[Any, Any] | None = {},  # as in Twisted's utilities: {} is an empty environment
    path: _Argument | None = None,
    reactor: _OptionsReactor | None = None,
    *,
    stdinBytes: bytes | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    maxBytes: int | None = None,
    timeout: float | None = None,
    killGrace: float = 5.0,
    **options: Unpack[ChildOptions],
) -> Pipeline:
    """Start the stages as a pipeline and return the :class:`Pipeline`
    (its :attr:`~Pipeline.ended` fires with the :class:`PipelineResult`).

    Arguments:
        stages: one argv list per stage, in order (``[["sort"], ["uniq",
            "-c"]]``).
        protocols: None, or one protocol (or None) per stage. A stage's
            protocol receives all its events, with the real transport;
            its output goes to the protocol instead of the result:
            the stage's stderr, and for the last stage stdout. The first
            stage's protocol may write to its stdin (see the module's
            "Input").
        env, path, reactor: as for :func:`ferroproc.utils.getProcessOutput`,
            for every stage (``{}``: an empty environment; ``None``: ours).
        stdinBytes, stdin: the first stage's input: bytes to write, or an
            fd to read (not both).
        stdout: an fd for the last stage's stdout, instead of capturing it.
        stderr: an fd for every stage's stderr, instead of capturing each.
        maxBytes: a cap on the bytes captured from each stage (stdout and
            stderr together).
        timeout, killGrace: the time limit for the whole pipeline, and the
            seconds between SIGTERM and SIGKILL when stages are stopped.
        options: spawnProcess's :class:`~ferroproc.ChildOptions`, for every
            stage (``processGroup=True`` gives each stage a group of its own,
            which stopping it then signals; a group id makes each join that
            group, and stopping then signals each stage alone).

    The fds given are not closed. For the rules (when stages are stopped,
    pipefail, errors) see :mod:`ferroproc.pipeline`.
    """
    return _spawn(
        "spawnPipeline", stages, protocols, env, path, reactor, stdinBytes, stdin, stdout, stderr,
        maxBytes, timeout, killGrace, options,
    )  # fmt: skip


def getPipelineOutput(
    stages: Sequence[Sequence[_Argument]],
    stdinBytes: bytes | None = None,
    env: Mapping[Any, Any] | None = {},  # as in Twisted's utilities: {} is an empty environment
    path: _Argument | None = None,
    reactor: _OptionsReactor | None = None,
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    maxBytes: int | None = None,
    timeout: float | None = None,
    killGrace: float = 5.0,
    **options: Unpack[ChildOptions],
) -> Deferred[PipelineResult]:
    """Run the stages as a pipeline; the Deferred fires with a
    :class:`PipelineResult` once every stage has ended, whatever their
    statuses (it fails only for ``maxBytes``, or when cancelled).

    Example, in a coroutine (``ensureDeferred``, ``task.react``)::

        result = await getPipelineOutput([["ls", "/usr/bin"], ["wc", "-l"]], env=None)
        print(int(result.out), result.exitCode, [s.status for s in result.stages])

    The arguments are those of :func:`spawnPipeline` (without protocols:
    all output is captured, unless ``stdout``/``stderr`` send it to fds).
    """
    return _spawn(
        "getPipelineOutput", stages, None, env, path, reactor, stdinBytes, stdin, stdout, stderr,
        maxBytes, timeout, killGrace, options,
    ).ended  # fmt: skip
