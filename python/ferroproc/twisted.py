"""Run ferroproc's engine under a Twisted reactor.

Call :func:`install` once at start-up and every ``reactor.spawnProcess`` of
every POSIX Twisted reactor — the global one, and reactors created later —
starts its child through ferroproc; so do ``twisted.internet.utils``
(``getProcessOutput`` ...), ``ProcessEndpoint`` and everything else built on
``spawnProcess``. Protocols keep receiving Twisted's own objects: a
``twisted.python.failure.Failure`` wrapping
``twisted.internet.error.ProcessDone`` / ``ProcessTerminated``, and a
transport that provides ``IProcessTransport``::

    import ferroproc.twisted
    ferroproc.twisted.install()

    from twisted.internet import reactor, utils
    d = utils.getProcessOutput("/bin/echo", ["hello"])
    d.addCallback(print).addBoth(lambda _: reactor.stop())
    reactor.run()

How it works: each reactor gets one :class:`ferroproc._core.Engine`
(created on its first ``spawnProcess``). The engine's poll fd is added to
the reactor as an ``IReadDescriptor`` while the engine has children that
have not ended, and removed as soon as the last one has (so an idle
reactor carries nothing of ours, and trial's dirty-reactor check stays
clean). A readable fd, or work queued by a transport call that the fd does
not show, runs one non-blocking engine turn from the reactor's thread. No
thread (but on kernels without pidfds, one waiter per child), no SIGCHLD
handler: exits are learned from pidfds, so the reactor's
own SIGCHLD machinery finds nothing of ours to reap.

Differences from Twisted's own ``spawnProcess`` are ferroproc's deliberate
ones (synchronous exec and argument errors, the ``PATH`` rule, ``uid``
without ``gid``...; see the README). ``reactor._neverUseSpawn`` is honoured
(the vfork-style path instead of ``posix_spawn``).

This module is the only part of ferroproc that imports Twisted.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

try:
    from twisted.internet import error as _terror
    from twisted.internet.interfaces import IProcessTransport, IReadDescriptor
    from twisted.internet.posixbase import PosixReactorBase
    from twisted.python import log
    from twisted.python.failure import Failure
    from zope.interface import classImplements, implementer
except ModuleNotFoundError as _missing:
    # Only an absent package is ours to explain; an ImportError from inside
    # an installed Twisted is reported as it is.
    if _missing.name not in ("twisted", "zope", "zope.interface"):
        raise
    raise ImportError(
        "ferroproc.twisted runs ferroproc under Twisted's reactor and needs Twisted (24.3 or later), "
        "which is not installed: pip install 'ferroproc[twisted]'",
        name=_missing.name,
    ) from _missing

import ferroproc.error as _ferror
from ferroproc._core import Engine, Process
from ferroproc._spawnargs import SpawnArgs, SpawnMethod, prepareSpawn
from ferroproc.error import ResourceUsage, _exitReason

__all__ = ["ProcessTimedOut", "install", "installed", "uninstall"]


class ProcessTimedOut(_ferror.ProcessTimedOut, _terror.ProcessTerminated):
    """A time limit (``timeout``/``idleTimeout``) ended the process: a
    ``twisted.internet.error.ProcessTerminated`` (so Twisted code handles it
    as any failed process) that is also ferroproc's
    :class:`ferroproc.error.ProcessTimedOut`."""


def _reason(
    status: int | None, timedOut: tuple[str, float, bool] | None = None, usage: ResourceUsage | None = None
) -> Failure:
    """What ``processExited``/``processEnded`` receive, in Twisted's classes."""
    return Failure(
        _exitReason(status, _terror.ProcessDone, _terror.ProcessTerminated, timedOut, usage, ProcessTimedOut)
    )


class _ProcessExitedAlready(_ferror.ProcessExitedAlready, _terror.ProcessExitedAlready):
    """What ``signalProcess`` raises once the child is gone: Twisted's
    ``ProcessExitedAlready``, and ferroproc's too, so either ``except``
    clause matches."""


_ProcessExitedAlready.__name__ = _ProcessExitedAlready.__qualname__ = "ProcessExitedAlready"


def _log_error(where: str, exc: BaseException) -> None:
    """Log a protocol callback's exception as Twisted does (``log.err``)."""
    failure = Failure(exc)  # takes exc.__traceback__
    log.err(failure, f"while calling {where}:")
    # Observers have formatted it by now; a log buffer that keeps the event
    # (Twisted's, until logging begins) must not keep the frames, and through
    # them the protocol, its transport and the engine's fds, alive.
    failure.cleanFailure()


class _PipeEntry:
    """One pipe of a process as Twisted's reactor would hold it: a
    ``ProcessReader`` (output pipes), or a ``ProcessWriter`` (input pipes:
    a reader while nothing is queued, as Twisted watches a write pipe for
    its reader closing, and a writer while data waits)."""

    __slots__ = ("childFD", "kind", "parentFD", "transport")

    def __init__(self, transport: Process, childFD: int, parentFD: int, kind: str) -> None:
        self.transport = transport
        self.childFD = childFD
        self.parentFD = parentFD
        self.kind = kind

    def fileno(self) -> int:
        return self.parentFD

    def logPrefix(self) -> str:
        return type(self).__name__

    def doRead(self) -> None:
        """The engine reads the pipe; nothing to do here."""

    def doWrite(self) -> None:
        """The engine writes the pipe; nothing to do here."""

    def connectionLost(self, reason: Any) -> None:
        """The reactor is shutting down (``disconnectAll``): close the pipe."""
        self.transport.closeChildFD(self.childFD)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PipeEntry) and (other.transport, other.childFD) == (self.transport, self.childFD)

    def __hash__(self) -> int:
        return hash((id(self.transport), self.childFD))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} childFD={self.childFD} fd={self.parentFD} of {self.transport!r}>"


class ProcessReader(_PipeEntry):
    """A process's output pipe, as Twisted's reactor lists it."""


class ProcessWriter(_PipeEntry):
    """A process's input pipe, as Twisted's reactor lists it."""


@implementer(IReadDescriptor)
class _EngineReader:
    """One reactor's engine, and the reader that lets the reactor drive it.

    Registered as one of the reactor's *internal* readers (like its waker),
    only while the engine has children that have not ended: ``removeAll()``
    (trial's janitor calls it after every test) neither removes nor returns
    it, so children spawned afterwards are still delivered. Instead the
    reactor's ``getReaders()``, ``getWriters()`` and ``removeAll()`` show
    the processes as Twisted's own reactor would (see :func:`_showProcesses`).
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        #: The engine; None in a forked child until it is first needed.
        self._engine: Engine | None = Engine(_reason, _log_error, _ProcessExitedAlready)
        self._fd = self._engine.fileno()
        self._reading = False
        self._bound = False
        #: The reactor's call that runs the engine's next timer (a spawn's
        #: time limit), and when that timer is due.
        self._timer: Any = None
        self._timerAt: float | None = None
        _allReaders.add(self)

    @property
    def engine(self) -> Engine:
        """The engine, made on first use (again in a forked child, where the
        fork hook only forgets the parent's)."""
        engine = self._engine
        if engine is None:
            engine = self._engine = Engine(_reason, _log_error, _ProcessExitedAlready)
            self._fd = engine.fileno()
        return engine

    # IReadDescriptor / ILoggingContext
    def fileno(self) -> int:
        return self._fd if self._engine is not None else self.engine.fileno()

    def logPrefix(self) -> str:
        return "ferroproc"

    def doRead(self) -> None:
        if not self._bound:
            # The reactor's thread runs the protocols: spawnProcess from
            # another thread while it does is refused.
            self.engine.bindThread()
            self._bound = True
        try:
            self.engine.runOnce(0.0, True)
        except BaseException:  # noqa: BLE001 - as Twisted does for a selectable: log, keep running
            log.err(None, "ferroproc: error while running the process engine")
        finally:
            self.settle()

    def connectionLost(self, reason: Any) -> None:
        # The reactor dropped us anyway (e.g. removeReader by hand): the next
        # spawn registers again.
        self._reading = False

    def settle(self) -> None:
        """Register while children are live, unregister when none are.
        Work queued outside a turn (a transport call from code the reactor
        runs) wakes the engine's fd, so the reactor always sees it."""
        if self.engine.processCount:
            if not self._reading:
                self._reading = True
                add = getattr(self.reactor, "_addInternalReader", None)
                if add is not None:
                    add(self)
                else:
                    self.reactor.addReader(self)
        elif self._reading:
            self._reading = False
            internal: set[Any] = getattr(self.reactor, "_internalReaders", set())
            if self in internal:
                self.reactor._removeInternalReader(self)
            else:
                self.reactor.removeReader(self)
        self._scheduleTimer()

    def _scheduleTimer(self) -> None:
        """Have the reactor run a turn when the engine's next timer is due
        (only while children are live: an idle reactor holds no call of ours)."""
        at = self.engine.nextTimer() if self.engine.processCount else None
        if at == self._timerAt:
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer, self._timerAt = None, at
        if at is not None:
            self._timer = self.reactor.callLater(max(0.0, at - self.engine.seconds()), self._onTimer)

    def _onTimer(self) -> None:
        self._timer = self._timerAt = None
        self.doRead()

    def spawn(self, protocol: Any, args: SpawnArgs) -> Process:
        try:
            return self.engine.spawn(protocol, args)
        finally:
            self.settle()

    def entries(self, writers: bool) -> list[Any]:
        """The processes' reactor entries: readers, or writers."""
        out: list[Any] = []
        for t in self.engine.processes():
            # Through the class: a program may have hung an attribute of its
            # own on the transport under any name, ours included.
            for childFD, parentFD, kind, queued in Process._selectables(t):
                if kind == "pty":
                    # Twisted's PTYProcess is itself the reactor's entry.
                    if not writers or queued:
                        out.append(t)
                elif kind == "r":
                    if not writers:
                        out.append(ProcessReader(t, childFD, parentFD, kind))
                elif queued == writers:
                    out.append(ProcessWriter(t, childFD, parentFD, kind))
        return out

    def removeProcesses(self) -> list[Any]:
        """``removeAll()``: take every process off the reactor (no more
        output or callbacks; still signalled and reaped) and return its
        entries. trial's janitor then kills the PTY processes among them,
        as under Twisted."""
        removed = self.entries(False) + self.entries(True)
        for t in self.engine.processes():
            Process._removeFromReactor(t)
        return removed

    def afterFork(self) -> None:
        """In a child made by ``os.fork()``: forget the engine, whose
        children belong to the parent (its fd stays registered with the
        reactor the two processes share, untouched). A fresh one is made on
        first use, not here: this runs in every forked child, also one that
        only goes on to exec (``subprocess`` with ``preexec_fn``), where
        nothing may be built."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.forgetAfterFork()
        self._reading = False
        self._bound = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._timerAt = None


#: Every engine reader, for the fork hook.
_allReaders: weakref.WeakSet[_EngineReader] = weakref.WeakSet()


def _afterForkInChild() -> None:
    for reader in list(_allReaders):
        reader.afterFork()


os.register_at_fork(after_in_child=_afterForkInChild)


#: The reactor classes whose reactor-entry methods show ferroproc's processes,
#: with their own methods (restored by :func:`uninstall`).
_shown: dict[type, dict[str, Any]] = {}


def _existingReader(reactor: Any) -> _EngineReader | None:
    state = getattr(reactor, "__dict__", None)
    reader = state.get(_ATTR) if state is not None else _readers.get(reactor)
    return reader if isinstance(reader, _EngineReader) else None


def _showProcesses(cls: type) -> None:
    """Make ``getReaders()``, ``getWriters()`` and ``removeAll()`` of the
    reactor class ``cls`` show the engine's processes as Twisted's reactor
    shows its own, and not the engine's reader (one of the reactor's
    internals, like its waker). A reactor with no engine is unaffected."""
    if cls in _shown:
        return
    own = {name: getattr(cls, name) for name in ("getReaders", "getWriters", "removeAll")}
    _shown[cls] = {name: cls.__dict__[name] for name in own if name in cls.__dict__}

    def getReaders(self: Any) -> list[Any]:
        found = own["getReaders"](self)
        reader = _existingReader(self)
        if reader is None:
            return list(found)
        return [r for r in found if r is not reader] + reader.entries(False)

    def getWriters(self: Any) -> list[Any]:
        found = own["getWriters"](self)
        reader = _existingReader(self)
        return list(found) + (reader.entries(True) if reader is not None else [])

    def removeAll(self: Any) -> list[Any]:
        found = own["removeAll"](self)
        reader = _existingReader(self)
        if reader is None:
            return list(found)
        return [r for r in found if r is not reader] + reader.removeProcesses()

    for f in (getReaders, getWriters, removeAll):
        f.__doc__ = own[f.__name__].__doc__
        setattr(cls, f.__name__, f)


def _hideProcesses() -> None:
    for cls, methods in _shown.items():
        for name in ("getReaders", "getWriters", "removeAll"):
            if name in methods:
                setattr(cls, name, methods[name])
            else:
                delattr(cls, name)
    _shown.clear()


# Engines by reactor, for reactors without an instance __dict__.
_readers: weakref.WeakKeyDictionary[Any, _EngineReader] = weakref.WeakKeyDictionary()
_ATTR = "_ferroprocEngineReader"


def _readerFor(reactor: Any) -> _EngineReader:
    # Kept in the reactor's own __dict__ where there is one, so it lives and
    # dies with the reactor's state (Twisted's ReactorBuilder tests swap the
    # global reactor's __dict__ for a fresh reactor's: both then share it).
    state = getattr(reactor, "__dict__", None)
    if state is not None:
        reader = state.get(_ATTR)
        if reader is None:
            reader = state[_ATTR] = _EngineReader(reactor)
            _showProcesses(type(reactor))
        return reader  # type: ignore[no-any-return]
    reader = _readers.get(reactor)
    if reader is None:
        reader = _readers[reactor] = _EngineReader(reactor)
        _showProcesses(type(reactor))
    return reader


def spawnProcess(
    self: Any,
    processProtocol: Any,
    executable: Any,
    args: Any = (),
    env: Any = {},  # noqa: B006 - Twisted's default: an empty environment
    path: Any = None,
    uid: Any = None,
    gid: Any = None,
    usePTY: Any = 0,
    childFDs: Any = None,
    **options: Any,
) -> Process:
    """``PosixReactorBase.spawnProcess`` while :func:`install` is in effect:
    Twisted's signature and semantics, with ferroproc's engine and
    validation, and ferroproc's keyword-only extensions
    (:class:`ferroproc.SpawnOptions`: process groups, time
    limits, resource limits...). Returns a ``ferroproc._core.Process``
    providing ``IProcessTransport``."""
    method: SpawnMethod | None = "clone" if getattr(self, "_neverUseSpawn", False) else None
    spawnArgs = prepareSpawn(processProtocol, executable, args, env, path, uid, gid, usePTY, childFDs, options, method)
    return _readerFor(self).spawn(processProtocol, spawnArgs)


_saved: dict[str, Any] = {}


def install() -> None:
    """Make every POSIX Twisted reactor's ``spawnProcess`` (the global
    reactor's, and that of reactors created later) start children through
    ferroproc. Idempotent; call it once at start-up, before spawning.

    Raises ``ImportError`` if Twisted is not installed (``pip install
    ferroproc[twisted]``).
    """
    if _saved:
        return
    _saved["spawnProcess"] = PosixReactorBase.__dict__["spawnProcess"]
    PosixReactorBase.spawnProcess = spawnProcess  # type: ignore[method-assign]
    # ferroproc transports are IProcessTransport providers (declared once on
    # the class rather than per transport: no per-spawn cost).
    classImplements(Process, IProcessTransport)


def uninstall() -> None:
    """Undo :func:`install`: later ``spawnProcess`` calls use Twisted's own
    transports again. Children already started keep being driven by their
    engine until they end."""
    if not _saved:
        return
    PosixReactorBase.spawnProcess = _saved.pop("spawnProcess")  # type: ignore[method-assign]
    _hideProcesses()


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    return bool(_saved)
