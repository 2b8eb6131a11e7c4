"""The standalone reactor: ``spawnProcess``, timers, threads and ``run``.

Arguments are checked by :mod:`ferroproc._spawnargs` before any child
exists, so a mistake is a ``TypeError``/``ValueError``/``OSError`` from
``spawnProcess`` that names the parameter; the Rust engine
(``ferroproc._core.Engine``) then gets bytes only.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec

from ferroproc._asynciohost import AsyncioDriver, runningLoop
from ferroproc._core import DelayedCall, Engine, Process
from ferroproc._logger import logError, logger
from ferroproc._spawnargs import SpawnMethod, SpawnOptions, prepareSpawn
from ferroproc.error import ProcessDone, ProcessTerminated, ReactorNotRunning, ResourceUsage, _exitReason

if TYPE_CHECKING:
    from types import FrameType

    from typing_extensions import Unpack

    from ferroproc.failure import Failure
    from ferroproc.interfaces import IProcessProtocol

__all__ = ["Reactor", "reactor"]

#: The parameters of a callable scheduled with its arguments (``callLater`` ...),
#: so a type checker matches the arguments against the callable.
_P = ParamSpec("_P")


def _reason(
    status: int | None, timedOut: tuple[str, float, bool] | None = None, usage: ResourceUsage | None = None
) -> Failure:
    """The ``Failure`` that ``processExited``/``processEnded`` receive."""
    from ferroproc.failure import Failure

    return Failure(_exitReason(status, ProcessDone, ProcessTerminated, timedOut, usage))


#: Every reactor, for the fork hook below.
_reactors: weakref.WeakSet[Reactor] = weakref.WeakSet()


def _afterForkInChild() -> None:
    """In a child made by ``os.fork()``: every reactor forgets its engine
    (the parent's children, pipes and pidfds, left untouched) and gets a
    fresh, empty one on first use."""
    for r in list(_reactors):
        r._replaceEngine()


os.register_at_fork(after_in_child=_afterForkInChild)


class Reactor:
    """ferroproc's own reactor: enough of Twisted's for process work.

    One instance, :data:`ferroproc.reactor`, is the default. Unlike Twisted's,
    it can be run again after ``stop()``.

    Inside a running asyncio loop (``asyncio.run()``, ``uvloop.run()``...)
    it need not run at all: its first ``spawnProcess`` or ``callLater``
    from the loop's thread hands the engine to that loop, which then drives
    it (children, timers, ``callFromThread``), so the utilities' Deferreds
    can simply be awaited.
    """

    #: Twisted's test hook: force the vfork-style path even where posix_spawn fits.
    _neverUseSpawn: bool = False

    def __init__(self) -> None:
        #: The engine; None in a forked child until it is first needed.
        self._engineOrNone: Engine | None = Engine(_reason, logError)
        _reactors.add(self)
        self._whenRunning: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._triggers: dict[tuple[str, str], list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]] = {}
        self._spawnMethod: SpawnMethod | None = None
        #: The asyncio loop driving the engine, while the reactor does not run.
        self._driver: AsyncioDriver | None = None

    # -- processes ---------------------------------------------------------

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol | None,
        executable: str | bytes | os.PathLike[Any],
        args: Sequence[str | bytes | os.PathLike[Any]] = (),
        env: Mapping[Any, Any] | None = {},  # Twisted's default: an empty environment
        path: str | bytes | os.PathLike[Any] | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool | tuple[int, int, str | bytes | None] = False,
        childFDs: Mapping[int, str | int] | None = None,
        **options: Unpack[SpawnOptions],
    ) -> Process:
        """Start ``executable`` with ``args`` (``args[0]`` is the program's
        name) and connect ``processProtocol`` to it; returns the transport,
        after ``connectionMade`` has run.

        - ``env``: omitted → an empty environment; ``None`` → ``os.environ``;
          a dict → exactly that. A bare executable name is looked up on the
          child's ``PATH``, else the parent's, else ``/bin:/usr/bin``.
        - ``path``: the child's working directory (default: the parent's).
        - ``uid``/``gid``: run as that user/group (``uid`` alone takes the
          user's primary group; supplementary groups are the user's own).
        - ``usePTY``: true for a new terminal as fds 0, 1 and 2, or a
          ``(masterfd, slavefd, ttyname)`` tuple; not with ``childFDs``.
        - ``childFDs``: ``{childFD: 'r' | 'w' | parentFD}``; default
          ``{0: 'w', 1: 'r', 2: 'r'}``. Unlisted fds are closed in the child.

        ferroproc's extensions are keyword-only (:class:`ferroproc.SpawnOptions`):
        ``windowSize``; ``processGroup``/``newSession`` and
        ``killGroupOnExit``/``killGroupOnLost``; ``timeout``/``idleTimeout``
        with ``killGrace``; ``rlimits``, ``umask``, ``nice``,
        ``cpuAffinity``, ``parentDeathSignal``, ``noNewPrivileges`` and
        ``cgroup``.

        Raises ``TypeError``/``ValueError`` naming the bad parameter, or the
        ``OSError`` subclass for a failed start (``FileNotFoundError`` for a
        missing executable, ``PermissionError`` ...); no child is left behind.
        """
        method = self._spawnMethod or ("clone" if self._neverUseSpawn else None)
        spawnArgs = prepareSpawn(
            processProtocol, executable, args, env, path, uid, gid, usePTY, childFDs, options, method
        )
        self._followAsyncio()
        transport = self._engine.spawn(processProtocol, spawnArgs)
        if self._driver is not None:
            self._driver.schedule()
        return transport

    def _followAsyncio(self) -> None:
        """Inside a running asyncio loop (the reactor not running), let that
        loop drive the engine."""
        loop = runningLoop()
        driver = self._driver
        if driver is not None and (loop is None or not driver.attachedTo(loop)) and not driver.driving():
            # Its loop stopped: release the engine (and its thread binding).
            driver.close()
            self._driver = driver = None
        if loop is None or self._engine.running or driver is not None:
            return
        self._driver = AsyncioDriver(self._engine, loop)

    @property
    def _engine(self) -> Engine:
        """The engine, made on first use in a forked child."""
        engine = self._engineOrNone
        if engine is None:
            engine = self._engineOrNone = Engine(_reason, logError)
        return engine

    def _replaceEngine(self) -> None:
        """Forget the engine of the process this one was forked from. The
        next is made on first use, not here: the fork hook runs in every
        forked child, also one that only goes on to exec (``subprocess``
        with ``preexec_fn``), where nothing may be built."""
        engine, self._engineOrNone = self._engineOrNone, None
        if engine is not None:
            engine.forgetAfterFork()
        self._driver = None

    # -- time and threads --------------------------------------------------

    def seconds(self) -> float:
        """The current time in seconds, as ``time.time()``."""
        return self._engine.seconds()

    def callLater(self, delay: float, callable: Callable[_P, object], *args: _P.args, **kw: _P.kwargs) -> DelayedCall:
        """Call ``callable(*args, **kw)`` in ``delay`` seconds; returns a
        ``DelayedCall`` (``cancel``, ``active``, ``getTime``, ``delay``, ``reset``)."""
        call = self._engine.callLater(delay, callable, args, kw or None)
        self._followAsyncio()
        if self._driver is not None:
            self._driver.schedule()
        return call

    def callFromThread(self, callable: Callable[_P, object], *args: _P.args, **kw: _P.kwargs) -> None:
        """Run ``callable(*args, **kw)`` on the reactor's thread soon; safe
        from any thread, and wakes a sleeping reactor."""
        self._engine.callFromThread(callable, args, kw or None)

    def callWhenRunning(self, callable: Callable[_P, object], *args: _P.args, **kw: _P.kwargs) -> None:
        """Call ``callable`` once the reactor runs (now, if it already does)."""
        if self.running:
            callable(*args, **kw)
        else:
            self._whenRunning.append((callable, args, kw))

    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[_P, object], *args: _P.args, **kw: _P.kwargs
    ) -> tuple[str, str, Callable[..., Any]]:
        """Call ``callable`` at ``phase`` ('before', 'during', 'after') of
        ``eventType`` ('startup' or 'shutdown'); returns an id for
        :meth:`removeSystemEventTrigger`."""
        if phase not in ("before", "during", "after"):
            raise ValueError(f"addSystemEventTrigger: unknown phase {phase!r}")
        self._triggers.setdefault((eventType, phase), []).append((callable, args, kw))
        return (eventType, phase, callable)

    def removeSystemEventTrigger(self, triggerID: tuple[str, str, Callable[..., Any]]) -> None:
        """Remove a trigger added with :meth:`addSystemEventTrigger`."""
        eventType, phase, fn = triggerID
        calls = self._triggers.get((eventType, phase), [])
        for i, (f, _, _) in enumerate(calls):
            if f is fn:
                del calls[i]
                return
        raise ValueError(f"removeSystemEventTrigger: no such trigger {triggerID!r}")

    def _fire(self, eventType: str) -> None:
        for phase in ("before", "during", "after"):
            for f, a, kw in list(self._triggers.get((eventType, phase), [])):
                try:
                    f(*a, **kw)
                except Exception as e:  # noqa: BLE001 - logged, as Twisted does
                    logError(f"a {phase} {eventType} trigger", e)

    # -- running -----------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is active."""
        engine = self._engineOrNone
        return engine is not None and engine.running

    def _startRunning(self) -> None:
        self._fire("startup")
        calls, self._whenRunning = self._whenRunning, []
        for f, a, kw in calls:
            try:
                f(*a, **kw)
            except Exception as e:  # noqa: BLE001
                logError("callWhenRunning", e)

    def _onSignal(self, signum: int, frame: FrameType | None) -> None:
        logger().info("Received %s, shutting down.", signal.Signals(signum).name)
        self.stop()

    def run(self, installSignalHandlers: bool = True) -> None:
        """Run until :meth:`stop`. On the main thread (and with
        ``installSignalHandlers``), Ctrl-C and SIGTERM stop the reactor
        cleanly, as in Twisted. Children still running when it stops keep
        running and are handled when it runs again."""
        if self.running:
            raise RuntimeError("the reactor is already running")
        restore: list[tuple[signal.Signals, Any]] = []
        oldWakeup: int | None = None
        onMain = threading.current_thread() is threading.main_thread()
        if installSignalHandlers and onMain:
            oldWakeup = signal.set_wakeup_fd(self._engine.wakeupFd(), warn_on_full_buffer=False)
            for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
                if signal.getsignal(sig) is default:
                    restore.append((sig, signal.signal(sig, self._onSignal)))
        self.callLater(0, self._startRunning)
        pid = os.getpid()
        try:
            self._engine.run()
        finally:
            for sig, handler in restore:
                signal.signal(sig, handler)
            if oldWakeup is not None:
                signal.set_wakeup_fd(oldWakeup)
            # A process forked inside a callback comes back here too: the
            # shutdown belongs to the parent's run, not the child's.
            if os.getpid() == pid:
                self._fire("shutdown")

    def stop(self) -> None:
        """Stop :meth:`run` after the current turn. Raises ``ReactorNotRunning``
        when it is not running."""
        if not self.running:
            raise ReactorNotRunning("Can't stop reactor that isn't running.")
        self._engine.stop()

    def iterate(self, delay: float = 0.0) -> None:
        """Run one turn of the loop, waiting at most ``delay`` seconds (a
        finite number: ``ValueError`` otherwise)."""
        self._engine.runOnce(delay)

    def __repr__(self) -> str:
        return f"<ferroproc.Reactor running={self.running}>"


#: The default reactor.
reactor = Reactor()
