"""Scheduling helpers: run a program, call later, call repeatedly, fake time.

The ferroproc counterpart of ``twisted.internet.task``:

* :func:`react` runs ``main(reactor, *argv)`` until the Deferred it returns
  fires, then exits the process (0 on success, 1 on failure);
* :func:`deferLater` is a Deferred that fires after a delay;
* :class:`LoopingCall` calls a function every *n* seconds, waiting for the
  Deferred it returns before scheduling the next call;
* :class:`Clock` is a clock that moves only when told to, for tests.

Example: run three commands in turn and exit with the last one's status::

    import sys
    from ferroproc import defer, task, utils

    @defer.inlineCallbacks
    def main(reactor):
        for command in (["make"], ["make", "test"], ["make", "install"]):
            code = yield utils.getProcessValue("/usr/bin/env", command, env=None)
            if code != 0:
                raise SystemExit(code)

    task.react(main)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, Protocol, TypeVar, cast, overload

from ferroproc._logger import logText
from ferroproc.defer import Deferred, ensureDeferred, maybeDeferred
from ferroproc.error import AlreadyCalled, AlreadyCancelled
from ferroproc.failure import Failure

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ferroproc.interfaces import IDelayedCall, IReactorTime

__all__ = ["Clock", "LoopingCall", "deferLater", "react"]

_T = TypeVar("_T")
_P = ParamSpec("_P")


class _ReactorToRun(Protocol):
    """What :func:`react` needs of a reactor (ferroproc's, or Twisted's)."""

    def run(self) -> None: ...
    def stop(self) -> None: ...
    def callWhenRunning(self, callable: Callable[..., object], *args: Any, **kw: Any) -> object: ...
    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[..., object], *args: Any, **kw: Any
    ) -> Any: ...
    def removeSystemEventTrigger(self, triggerID: Any) -> None: ...


# -- LoopingCall --------------------------------------------------------------


class LoopingCall:
    """Call ``f(*a, **kw)`` every ``interval`` seconds (Twisted's ``LoopingCall``).

    :meth:`start` begins the loop and returns a Deferred that fires with
    this LoopingCall once :meth:`stop` has been called, or fails with the
    error if ``f`` raises (or returns a Deferred that fails); either error
    ends the loop. If ``f`` returns a Deferred, the next call is not
    scheduled until it has fired, so calls never overlap.

    Calls are kept on a fixed grid of ``starttime + k * interval``: a call
    that runs late is followed by the next point on the grid, and points
    missed entirely are skipped (see :meth:`withCount` to learn how many).

    Attributes:
        f, a, kw: the function and its arguments.
        clock: what schedules the calls (``callLater``/``seconds``); the
            ferroproc reactor by default. Set it before :meth:`start`, e.g.
            to a :class:`Clock` in tests.
        running: True from :meth:`start` until :meth:`stop` or an error.
        interval: the interval given to :meth:`start` (None before).
        starttime: ``clock.seconds()`` when it was started (None before).
        call: the scheduled next call, or None while ``f`` runs.

    Example: print the load average until Ctrl-C::

        loop = task.LoopingCall(lambda: print(open("/proc/loadavg").read()))
        loop.start(5.0)
        reactor.run()
    """

    def __init__(self, f: Callable[_P, object], *a: _P.args, **kw: _P.kwargs) -> None:
        from ferroproc._reactor import reactor

        self.f: Callable[..., object] = f
        self.a: tuple[Any, ...] = a
        self.kw: dict[str, Any] = kw
        self.clock: IReactorTime = reactor
        self.call: IDelayedCall | None = None
        self.running = False
        self.interval: float | None = None
        self.starttime: float | None = None
        self._deferred: Deferred[LoopingCall] | None = None
        self._runAtStart = False
        self._realLastTime: float | None = None

    @classmethod
    def withCount(cls, countCallable: Callable[[int], object]) -> LoopingCall:
        """A LoopingCall that passes ``countCallable`` how many intervals passed.

        The count is normally 1; it is more when calls were missed because
        the reactor was busy, or ``f``'s Deferred took longer than an
        interval. With an interval of 0 it is always 1.
        """

        def counter() -> object:
            now = loop.clock.seconds()
            interval = loop.interval
            if not interval:
                loop._realLastTime = now
                return countCallable(1)
            lastTime = loop._realLastTime
            if lastTime is None:
                assert loop.starttime is not None
                lastTime = loop.starttime
                if loop._runAtStart:
                    lastTime -= interval
            count = loop._intervalOf(now) - loop._intervalOf(lastTime)
            if count > 0:
                loop._realLastTime = now
                return countCallable(count)
            return None

        # cast: mypy cannot bind __init__'s ParamSpec through ``cls``.
        loop: LoopingCall = cast(Any, cls)(counter)
        return loop

    def _intervalOf(self, t: float) -> int:
        """How many whole intervals separate ``t`` from the start."""
        assert self.starttime is not None and self.interval
        return int((t - self.starttime) / self.interval)

    def start(self, interval: float, now: bool = True) -> Deferred[LoopingCall]:
        """Call ``f`` every ``interval`` seconds, the first time now (or
        after one interval if ``now`` is false).

        Returns a Deferred that fires with this LoopingCall after
        :meth:`stop`, or fails with ``f``'s error.

        Raises ``ValueError`` for a negative interval and ``AssertionError``
        if already running (Twisted's exception).
        """
        if self.running:
            raise AssertionError("LoopingCall.start: already running (stop() it first)")
        if not interval >= 0:
            raise ValueError(f"LoopingCall.start: interval must be >= 0, not {interval!r}")
        self.running = True
        # The loop may fail at once (f raises), which clears _deferred.
        deferred = self._deferred = Deferred()
        self.starttime = self.clock.seconds()
        self.interval = interval
        self._runAtStart = now
        if now:
            self()
        else:
            self._scheduleFrom(self.starttime)
        return deferred

    def stop(self) -> None:
        """Stop calling ``f``; the Deferred from :meth:`start` fires.

        If ``f`` is running (or its Deferred has not fired) the Deferred
        fires when it is done. Raises ``AssertionError`` if not running.
        """
        if not self.running:
            raise AssertionError("LoopingCall.stop: not running")
        self.running = False
        if self.call is not None:
            self.call.cancel()
            self.call = None
            self._fire(self)

    def reset(self) -> None:
        """Skip the next call: start counting ``interval`` again from now.

        Raises ``AssertionError`` if not running.
        """
        if not self.running:
            raise AssertionError("LoopingCall.reset: not running")
        if self.call is not None:
            self.call.cancel()
            self.call = None
            self.starttime = self.clock.seconds()
            self._scheduleFrom(self.starttime)

    def __call__(self) -> None:
        """Run ``f`` once now and schedule the next call when it is done."""

        def done(result: object) -> None:
            if self.running:
                self._scheduleFrom(self.clock.seconds())
            else:
                self._fire(self)

        def failed(failure: Failure) -> None:
            self.running = False
            self._fire(failure)

        self.call = None
        d = maybeDeferred(self.f, *self.a, **self.kw)
        d.addCallback(done)
        d.addErrback(failed)

    def _fire(self, result: LoopingCall | Failure) -> None:
        deferred, self._deferred = self._deferred, None
        if deferred is None:
            return
        if isinstance(result, Failure):
            deferred.errback(result)
        else:
            deferred.callback(result)

    def _scheduleFrom(self, when: float) -> None:
        """Schedule the next call at the next point of the grid after ``when``."""
        assert self.interval is not None and self.starttime is not None
        interval = self.interval
        if interval == 0:
            delay = 0.0
        else:
            untilNext = interval - ((when - self.starttime) % interval)
            # Too small to move ``when`` (float rounding): we are on a grid
            # point already, so the next one is a whole interval away.
            delay = interval if when == when + untilNext else untilNext
        self.call = self.clock.callLater(delay, self)

    def __repr__(self) -> str:
        f = self.f
        name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f)
        return f"LoopingCall<{self.interval!r}>({name}, *{self.a!r}, **{self.kw!r})"


# -- deferLater ---------------------------------------------------------------


@overload
def deferLater(clock: IReactorTime, delay: float, callable: None = None) -> Deferred[None]: ...


@overload
def deferLater(
    clock: IReactorTime, delay: float, callable: Callable[_P, Deferred[_T]], *args: _P.args, **kw: _P.kwargs
) -> Deferred[_T]: ...


@overload
def deferLater(
    clock: IReactorTime, delay: float, callable: Callable[_P, _T], *args: _P.args, **kw: _P.kwargs
) -> Deferred[_T]: ...


def deferLater(
    clock: IReactorTime, delay: float, callable: Callable[..., Any] | None = None, *args: Any, **kw: Any
) -> Deferred[Any]:
    """Return a Deferred that fires ``delay`` seconds from now.

    It fires with ``callable(*args, **kw)`` called then (None without a
    callable); an exception from it fails the Deferred, and a Deferred it
    returns is waited for. ``clock`` schedules it: the reactor, or a
    :class:`Clock`. Cancelling the Deferred before then unschedules the
    call and fails it with :class:`~ferroproc.defer.CancelledError`.

    Example: poll a child's status file a second from now::

        d = task.deferLater(reactor, 1.0, readStatus, "/run/child.status")
    """

    def cancelCall(_: Deferred[Any]) -> None:
        delayedCall.cancel()

    def callIt(_: object) -> object:
        if callable is None:
            return None
        return callable(*args, **kw)

    d: Deferred[Any] = Deferred(cancelCall)
    d.addCallback(callIt)
    delayedCall = clock.callLater(delay, d.callback, None)
    return d


# -- react --------------------------------------------------------------------


def react(
    main: Callable[..., Deferred[Any] | Coroutine[Any, Any, Any]],
    argv: Sequence[object] = (),
    _reactor: _ReactorToRun | None = None,
) -> NoReturn:
    """Run ``main(reactor, *argv)`` and the reactor until it is done, then exit.

    ``main`` returns a Deferred (an :func:`~ferroproc.defer.inlineCallbacks`
    function does) or a coroutine. When it fires, the reactor is stopped and
    the process exits through ``sys.exit``:

    * with 0 on success;
    * with the code of a ``SystemExit`` it failed with (``raise
      SystemExit(3)`` exits with 3);
    * with 1 on any other failure, after logging it (with its traceback) as
      an error on the ``"ferroproc"`` logger.

    If the reactor stops for another reason first (Ctrl-C, ``reactor.stop()``)
    the exit code is 0, as in Twisted. An exception raised by ``main`` itself
    (rather than through its Deferred) propagates out of ``react`` before the
    reactor runs. ``_reactor`` is for tests: the reactor to run instead of
    ``ferroproc.reactor``.

    Example::

        def main(reactor):
            d = utils.getProcessOutput("/bin/uname", ["-a"])
            return d.addCallback(lambda out: print(out.decode(), end=""))

        task.react(main)
    """
    if _reactor is None:
        from ferroproc._reactor import reactor as defaultReactor

        reactor: _ReactorToRun = defaultReactor
    else:
        reactor = _reactor
    finished = ensureDeferred(main(reactor, *argv))
    code: str | int | None = 0
    stopping = False

    def onShutdown() -> None:
        nonlocal stopping
        stopping = True

    trigger = reactor.addSystemEventTrigger("before", "shutdown", onShutdown)

    def stop(result: object, stopReactor: bool) -> None:
        nonlocal code
        if stopReactor:
            try:
                reactor.stop()
            except Exception as e:
                # ReactorNotRunning, ferroproc's or Twisted's: it stopped already.
                if type(e).__name__ != "ReactorNotRunning":
                    raise
        if isinstance(result, Failure):
            if result.check(SystemExit) is not None:
                code = result.value.code
            else:
                logText("main function encountered error\n" + result.getTraceback().rstrip("\n"))
                code = 1

    def finish(result: object) -> None:
        if stopping:
            stop(result, False)
        else:
            reactor.callWhenRunning(stop, result, True)

    finished.addBoth(finish)
    try:
        reactor.run()
    finally:
        # ferroproc's reactor can run again: leave nothing of ours on it.
        try:
            reactor.removeSystemEventTrigger(trigger)
        except (ValueError, KeyError):
            pass
    sys.exit(code)


# -- Clock --------------------------------------------------------------------


class _ClockCall:
    """A call scheduled on a :class:`Clock` (an ``IDelayedCall``).

    ``time``, ``func``, ``args``, ``kw``, ``called`` and ``cancelled`` are
    Twisted's ``DelayedCall`` attributes.
    """

    __slots__ = ("args", "called", "cancelled", "clock", "func", "kw", "time")

    def __init__(
        self, clock: Clock, time: float, func: Callable[..., object], args: tuple[Any, ...], kw: dict[str, Any]
    ) -> None:
        self.clock = clock
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self.called = False
        self.cancelled = False

    def getTime(self) -> float:
        """When the call will run, in the clock's ``seconds()``."""
        return self.time

    def _checkPending(self) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()

    def cancel(self) -> None:
        """Unschedule the call; raises ``AlreadyCalled``/``AlreadyCancelled``."""
        self._checkPending()
        self.cancelled = True
        self.clock.calls.remove(self)

    def delay(self, secondsLater: float) -> None:
        """Run ``secondsLater`` seconds later than currently scheduled."""
        self._checkPending()
        self.time += secondsLater

    def reset(self, secondsFromNow: float) -> None:
        """Run ``secondsFromNow`` seconds from the clock's now instead."""
        self._checkPending()
        self.time = self.clock.seconds() + secondsFromNow

    def active(self) -> bool:
        """True until the call has run or been cancelled."""
        return not (self.called or self.cancelled)

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", None) or repr(self.func)
        state = "called" if self.called else "cancelled" if self.cancelled else f"at {self.time}"
        return f"<Clock call {name} {state}>"


class Clock:
    """A clock that moves only when told to: ``callLater`` for tests.

    Give it to code in place of the reactor wherever the code only needs
    ``seconds()`` and ``callLater`` (:class:`LoopingCall`'s ``clock``,
    :func:`deferLater`, :meth:`Deferred.addTimeout
    <ferroproc.defer.Deferred.addTimeout>`), then :meth:`advance` time and
    check what ran. Time starts at 0.0. Calls due at the same time run in
    the order they were scheduled.

    Example::

        clock = task.Clock()
        d = task.deferLater(clock, 5.0, lambda: "done")
        clock.advance(4.9)
        assert not d.called
        clock.advance(0.1)
        assert d.result == "done"

    Attributes:
        rightNow: the current time (what :meth:`seconds` returns).
        calls: the pending calls, soonest first.
    """

    rightNow: float = 0.0

    def __init__(self) -> None:
        self.calls: list[_ClockCall] = []

    def seconds(self) -> float:
        """The clock's current time (0.0 until advanced)."""
        return self.rightNow

    def _sortCalls(self) -> None:
        self.calls.sort(key=_ClockCall.getTime)

    def callLater(self, delay: float, callable: Callable[_P, object], *args: _P.args, **kw: _P.kwargs) -> _ClockCall:
        """Call ``callable(*args, **kw)`` when the clock reaches ``seconds() +
        delay``; returns the call (``cancel``, ``reset``, ``delay``,
        ``active``, ``getTime``)."""
        call = _ClockCall(self, self.seconds() + delay, callable, args, kw)
        self.calls.append(call)
        self._sortCalls()
        return call

    def getDelayedCalls(self) -> list[_ClockCall]:
        """The calls not yet run or cancelled, soonest first."""
        return self.calls

    def advance(self, amount: float) -> None:
        """Move time forward by ``amount`` seconds and run the calls now due.

        Calls scheduled by those calls run too if they are due. An exception
        from a call propagates (the calls after it stay pending).
        """
        self.rightNow += amount
        self._sortCalls()
        while self.calls and self.calls[0].getTime() <= self.seconds():
            call = self.calls.pop(0)
            call.called = True
            call.func(*call.args, **call.kw)
            self._sortCalls()

    def pump(self, timings: Iterable[float]) -> None:
        """:meth:`advance` by each amount of ``timings`` in turn."""
        for amount in timings:
            self.advance(amount)
