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
thread, no SIGCHLD handler: exits are learned from pidfds, so the reactor's
own SIGCHLD machinery finds nothing of ours to reap.

Differences from Twisted's own ``spawnProcess`` are ferroproc's deliberate
ones (synchronous exec and argument errors, the ``PATH`` rule, ``uid``
without ``gid``...; see the README). ``reactor._neverUseSpawn`` is honoured
(the vfork-style path instead of ``posix_spawn``).

This module is the only part of ferroproc that imports Twisted.
"""

from __future__ import annotations

import weakref
from typing import Any

from twisted.internet import error as _terror
from twisted.internet.interfaces import IProcessTransport, IReadDescriptor
from twisted.internet.posixbase import PosixReactorBase
from twisted.python import log
from twisted.python.failure import Failure
from zope.interface import classImplements, implementer

import ferroproc.error as _ferror
from ferroproc._core import Engine, Process
from ferroproc._spawnargs import SpawnArgs, SpawnMethod, prepareSpawn
from ferroproc.error import _exitReason

__all__ = ["install", "installed", "uninstall"]


def _reason(status: int | None) -> Failure:
    """What ``processExited``/``processEnded`` receive, in Twisted's classes."""
    return Failure(_exitReason(status, _terror.ProcessDone, _terror.ProcessTerminated))


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


@implementer(IReadDescriptor)
class _EngineReader:
    """One reactor's engine, and the reader that lets the reactor drive it.

    Registered with ``reactor.addReader`` only while the engine has
    children that have not ended.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.engine = Engine(_reason, _log_error, _ProcessExitedAlready)
        self._fd = self.engine.fileno()
        self._reading = False
        self._soon: Any = None  # the pending callLater(0, ...), if any

    # IReadDescriptor / ILoggingContext
    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return "ferroproc"

    def doRead(self) -> None:
        self._turn()

    def connectionLost(self, reason: Any) -> None:
        # The reactor dropped us (removeAll, disconnectAll at shutdown, or
        # trial's cleanup): the next spawn or transport call registers again.
        self._reading = False

    # driving the engine
    def _turn(self) -> None:
        try:
            self.engine.runOnce(0.0, False)
        except BaseException:  # noqa: BLE001 - as Twisted does for a selectable: log, keep running
            log.err(None, "ferroproc: error while running the process engine")
        finally:
            self.settle()

    def _runSoon(self) -> None:
        self._soon = None
        self._turn()

    def settle(self) -> None:
        """Register while children are live, unregister when none are, and
        schedule a turn for queued work the poll fd does not show (e.g. a
        ``childConnectionLost`` queued by ``closeStdout()`` inside a
        callback)."""
        engine = self.engine
        if engine.processCount:
            if not self._reading:
                self._reading = True
                self.reactor.addReader(self)
        elif self._reading:
            self._reading = False
            self.reactor.removeReader(self)
        if self._soon is None and engine.hasPending():
            self._soon = self.reactor.callLater(0, self._runSoon)

    def spawn(self, protocol: Any, args: SpawnArgs) -> Process:
        try:
            return self.engine.spawn(protocol, args)
        finally:
            # Also after a failed spawn: connectionMade may have queued work.
            self.settle()


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
        return reader  # type: ignore[no-any-return]
    reader = _readers.get(reactor)
    if reader is None:
        reader = _readers[reactor] = _EngineReader(reactor)
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
) -> Process:
    """``PosixReactorBase.spawnProcess`` while :func:`install` is in effect:
    Twisted's signature and semantics, with ferroproc's engine and
    validation. Returns a ``ferroproc._core.Process`` providing
    ``IProcessTransport``."""
    method: SpawnMethod | None = "clone" if getattr(self, "_neverUseSpawn", False) else None
    spawnArgs = prepareSpawn(processProtocol, executable, args, env, path, uid, gid, usePTY, childFDs, None, method)
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


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    return bool(_saved)
