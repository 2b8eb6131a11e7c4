"""Where a run's jobs run: the engine of the reactor given to the
:class:`~ferroproc.jobs.Runner`, and that reactor's timers.

ferroproc's reactor (running, or inside a running asyncio loop, whose driver
is then told about work given to the engine from outside its turns), or a
Twisted reactor through :mod:`ferroproc.twisted`'s engine reader (which is
told to watch the engine while jobs run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ferroproc._core import Engine

__all__ = ["Host", "hostFor"]


class Host:
    """What a run needs from the loop that drives its engine."""

    def engine(self) -> Engine:
        raise NotImplementedError

    def callLater(self, delay: float, f: Callable[[], object]) -> Any:
        raise NotImplementedError

    def callFromThread(self, f: Callable[[], object]) -> None:
        """Run ``f`` on the thread that drives the engine (safe from any thread)."""
        raise NotImplementedError

    def touched(self) -> None:
        """Work was given to the engine outside one of its turns."""


class _ReactorHost(Host):
    """ferroproc's reactor: running, or inside a running asyncio loop."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def engine(self) -> Engine:
        self.reactor._followAsyncio()
        return cast("Engine", self.reactor._engine)

    def callLater(self, delay: float, f: Callable[[], object]) -> Any:
        return self.reactor.callLater(delay, f)

    def callFromThread(self, f: Callable[[], object]) -> None:
        self.reactor.callFromThread(f)

    def touched(self) -> None:
        driver = self.reactor._driver
        if driver is not None:
            driver.schedule()


class _TwistedHost(Host):
    """A Twisted reactor, through :mod:`ferroproc.twisted`'s engine reader."""

    def __init__(self, reactor: Any) -> None:
        from ferroproc import twisted as _ftwisted

        self.reactor = reactor
        self.reader = _ftwisted._readerFor(reactor)

    def engine(self) -> Engine:
        return self.reader.engine

    def callLater(self, delay: float, f: Callable[[], object]) -> Any:
        return self.reactor.callLater(delay, f)

    def callFromThread(self, f: Callable[[], object]) -> None:
        self.reactor.callFromThread(f)

    def touched(self) -> None:
        self.reader.settle()


def hostFor(reactor: Any) -> Host:
    from ferroproc._reactor import Reactor

    if reactor is None:
        from ferroproc import reactor as default

        return _ReactorHost(default)
    if isinstance(reactor, Reactor):
        return _ReactorHost(reactor)
    if callable(getattr(reactor, "callLater", None)) and callable(getattr(reactor, "addReader", None)):
        return _TwistedHost(reactor)
    raise TypeError(f"reactor must be ferroproc's reactor or a Twisted reactor, not {type(reactor).__name__}")
