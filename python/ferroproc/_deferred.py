"""The Deferred itself, and what builds on it directly: the private module
behind :mod:`ferroproc.defer` (which documents it). ``inlineCallbacks`` is in
:mod:`ferroproc._inlinecallbacks`."""

from __future__ import annotations

import sys
from _thread import _local
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from contextvars import copy_context
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    NoReturn,
    ParamSpec,
    Protocol,
    TypeVar,
    cast,
    overload,
)

from ferroproc._logger import logError, logText
from ferroproc.failure import Failure

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop, Future

    from ferroproc.interfaces import IReactorTime

__all__ = [
    "AlreadyCalledError",
    "CancelledError",
    "Deferred",
    "DeferredList",
    "FirstError",
    "NotACoroutineError",
    "TimeoutError",
    "ensureDeferred",
    "fail",
    "gatherResults",
    "maybeDeferred",
    "succeed",
]

_T = TypeVar("_T")
_U = TypeVar("_U")
_P = ParamSpec("_P")

# One entry of a callback chain:
# (callback, args, kwargs, errback, args, kwargs).
_ChainEntry = tuple[
    Callable[..., object],
    tuple[Any, ...],
    Mapping[str, Any],
    Callable[..., object],
    tuple[Any, ...],
    Mapping[str, Any],
]
_NO_KWARGS: Mapping[str, Any] = {}


class AlreadyCalledError(Exception):
    """``callback`` or ``errback`` was called on a Deferred that already fired."""


class CancelledError(Exception):
    """The Deferred was cancelled (see :meth:`Deferred.cancel`)."""


class TimeoutError(Exception):
    """An operation took too long: :meth:`Deferred.addTimeout` fails with it.

    ``addTimeout`` raises it as ``TimeoutError(timeout, "Deferred")``, the
    arguments Twisted uses; its message is then ``Deferred timed out after 5
    seconds``. Unlike the built-in ``TimeoutError`` it is not an ``OSError``
    (Twisted's is not either).
    """

    def __str__(self) -> str:
        args = self.args
        if len(args) == 2 and isinstance(args[0], (int, float)) and isinstance(args[1], str):
            return f"{args[1]} timed out after {args[0]} seconds"
        return Exception.__str__(self)


class NotACoroutineError(TypeError):
    """:func:`ensureDeferred` or ``Deferred.fromCoroutine`` got something that
    is neither a coroutine nor a generator."""


class FirstError(Exception):
    """The first failure among the Deferreds of a ``DeferredList``.

    Used when ``fireOnOneErrback`` is set (and so by :func:`gatherResults`).

    Attributes:
        subFailure: the :class:`~ferroproc.failure.Failure` of that Deferred.
        index: its position in the list.
    """

    def __init__(self, failure: Failure, index: int) -> None:
        Exception.__init__(self, failure, index)
        self.subFailure = failure
        self.index = index

    def __repr__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure.value!r}]"

    def __str__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure}]"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FirstError):
            return self.index == other.index and self.subFailure is other.subFailure
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.index, id(self.subFailure)))


def _passthrough(result: _T) -> _T:
    """The missing half of a callback/errback pair: hand the result on."""
    return result


def _continueChain(result: object) -> NoReturn:
    """Marker entry: the Deferred in ``args[0]`` waits for this one's result.

    ``_runCallbacks`` recognises it and never calls it.
    """
    raise AssertionError("_continueChain is a marker and is never called")


class _UnhandledFailureReporter:
    """Logs a failure that was never handled when it is garbage collected.

    A Deferred whose callbacks are done while its result is a Failure keeps
    one of these; it is disarmed when an errback handles the failure or the
    result is passed on to another Deferred. Keeping ``__del__`` here rather
    than on the Deferred keeps Deferreds themselves cheap to collect.
    """

    __slots__ = ("failure",)

    def __init__(self) -> None:
        self.failure: Failure | None = None

    def __del__(self) -> None:
        failure = self.failure
        if failure is None:
            return
        # Never lost, even while the interpreter shuts down (see _logger).
        logText("Unhandled error in Deferred:\n" + failure.getTraceback().rstrip("\n"))


class _DriverState(_local):
    """Per thread: is :func:`ensureDeferred` stepping a coroutine right now?

    ``Deferred.__await__`` reads it to decide whom it is talking to: our
    coroutine driver (hand over the Deferred itself) or an asyncio task
    (hand over an asyncio future).
    """

    active: bool = False
    loop: object = None


_driverState = _DriverState()


def _inAsyncioTask(loop: AbstractEventLoop) -> bool:
    """Whether an asyncio task of ``loop`` is running the calling code (so
    that asyncio is the coroutine's driver: Twisted's asyncio reactor runs
    its own driver from the loop's callbacks, outside any task)."""
    asyncio = sys.modules["asyncio"]
    return asyncio.current_task(loop) is not None


def _runningAsyncioLoop() -> AbstractEventLoop | None:
    """The asyncio loop running in this thread, without importing asyncio."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    loop: AbstractEventLoop | None = asyncio._get_running_loop()
    return loop


class Deferred(Generic[_T]):
    """A result that will arrive later, and the chain of callbacks waiting for it.

    ``Deferred(canceller=None)``: ``canceller``, if given, is called with the
    Deferred by :meth:`cancel` and should stop whatever would have fired it
    (it may fire the Deferred itself).

    Attributes:
        called: True once ``callback`` or ``errback`` has been called.
        paused: how many :meth:`pause` calls are outstanding (or how many
            Deferreds this one is waiting for).
        result: the current result, once called (``AttributeError`` before).
        callbacks: the callback/errback pairs not yet run.

    Errors: firing twice raises :class:`AlreadyCalledError`.
    """

    __slots__ = (
        "__weakref__",
        "_canceller",
        "_chainedTo",
        "_reporter",
        "_runningCallbacks",
        "_suppressAlreadyCalled",
        "callbacks",
        "called",
        "paused",
        "result",
    )

    called: bool
    paused: int
    result: Any
    callbacks: deque[_ChainEntry]

    def __init__(self, canceller: Callable[[Deferred[Any]], None] | None = None) -> None:
        self.called = False
        self.paused = 0
        self.callbacks = deque()
        self._canceller = canceller
        self._runningCallbacks = False
        self._suppressAlreadyCalled = False
        self._chainedTo: Deferred[Any] | None = None
        self._reporter: _UnhandledFailureReporter | None = None

    # -- adding callbacks ---------------------------------------------------

    def addCallbacks(
        self,
        callback: Callable[..., object],
        errback: Callable[..., object] | None = None,
        callbackArgs: tuple[Any, ...] = (),
        callbackKeywords: Mapping[str, Any] | None = None,
        errbackArgs: tuple[Any, ...] = (),
        errbackKeywords: Mapping[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Add a callback and an errback as one step of the chain.

        ``callback(result, *callbackArgs, **callbackKeywords)`` runs if the
        result at this step is a success, ``errback(failure, *errbackArgs,
        **errbackKeywords)`` if it is a :class:`~ferroproc.failure.Failure`
        (a missing errback passes the failure on). If the Deferred has
        already fired, the step runs now. Returns ``self``.

        Raises ``TypeError`` if ``callback`` or ``errback`` is not callable.
        """
        if errback is None:
            errback = _passthrough
        if not callable(callback):
            raise TypeError(f"Deferred.addCallbacks: callback {callback!r} is not callable")
        if not callable(errback):
            raise TypeError(f"Deferred.addCallbacks: errback {errback!r} is not callable")
        self.callbacks.append(
            (
                callback,
                callbackArgs,
                callbackKeywords or _NO_KWARGS,
                errback,
                errbackArgs,
                errbackKeywords or _NO_KWARGS,
            )
        )
        if self.called:
            self._runCallbacks()
        return self

    @overload
    def addCallback(
        self,
        callback: Callable[Concatenate[_T, _P], Deferred[_U]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_U]: ...

    @overload
    def addCallback(
        self,
        callback: Callable[Concatenate[_T, _P], _U | Deferred[_U]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_U]: ...

    def addCallback(self, callback: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add ``callback(result, *args, **kwargs)`` for the success case.

        A failure skips it and goes on to the next errback. Returns ``self``.
        """
        return self.addCallbacks(callback, None, args, kwargs)

    @overload
    def addErrback(
        self,
        errback: Callable[Concatenate[Failure, _P], Deferred[_U]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T | _U]: ...

    @overload
    def addErrback(
        self,
        errback: Callable[Concatenate[Failure, _P], _U | Deferred[_U]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T | _U]: ...

    def addErrback(self, errback: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add ``errback(failure, *args, **kwargs)`` for the failure case.

        A success skips it. The errback handles the failure by returning a
        value, or passes it on by returning the failure or raising (see
        :meth:`~ferroproc.failure.Failure.trap`). Returns ``self``.
        """
        return self.addCallbacks(_passthrough, errback, errbackArgs=args, errbackKeywords=kwargs)

    @overload
    def addBoth(
        self,
        callback: Callable[Concatenate[_T | Failure, _P], Deferred[_U]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_U]: ...

    @overload
    def addBoth(
        self,
        callback: Callable[Concatenate[_T | Failure, _P], _U | Deferred[_U]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_U]: ...

    def addBoth(self, callback: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add ``callback(resultOrFailure, *args, **kwargs)`` for both cases.

        Like ``try/finally``: it runs whatever happened. Returns ``self``.
        """
        return self.addCallbacks(callback, callback, args, kwargs, args, kwargs)

    def chainDeferred(self, d: Deferred[_T]) -> Deferred[None]:
        """Fire ``d`` with this Deferred's result, success or failure.

        The result this chain continues with is None (``d`` took it).
        """
        d._chainedTo = self
        return self.addCallbacks(d.callback, d.errback)

    def addTimeout(
        self,
        timeout: float,
        clock: IReactorTime,
        onTimeoutCancel: Callable[[Any, float], object] | None = None,
    ) -> Deferred[_T]:
        """Cancel this Deferred if it has not fired ``timeout`` seconds from now.

        The timer is ``clock.callLater(timeout, ...)`` (``clock`` is the
        reactor, or a :class:`ferroproc.task.Clock` in tests); it is
        cancelled as soon as the Deferred fires. On time-out the Deferred is
        cancelled (see :meth:`cancel`: its canceller runs, which should stop
        the work), and the :class:`CancelledError` that results becomes a
        :class:`TimeoutError`. The time-out covers the callbacks added
        before this call, not those added after. Returns ``self``.

        ``onTimeoutCancel(result, timeout)``, if given, replaces that
        conversion: it is called only after a time-out (not after another
        ``cancel()``), with the result at that point (usually the
        CancelledError failure), and what it returns or raises is the new
        result.

        Example: stop waiting for a child after ten seconds::

            d = utils.getProcessOutput("/usr/bin/make", ["all"])
            d.addTimeout(10, reactor)

        The Deferreds of :mod:`ferroproc.utils` and :mod:`ferroproc.pipeline`
        have a canceller that stops the child (SIGTERM, then SIGKILL after
        ``killGrace``), so a time-out here ends it too (Twisted's helpers
        leave it running). Their own ``timeout=`` argument stops the child
        the same way but fires only once it has ended, reporting the
        time-out (``ProcessTimeout``, or ``timedOut`` in a result).
        """
        timedOut = False

        def timeItOut() -> None:
            nonlocal timedOut
            timedOut = True
            self.cancel()

        delayedCall = clock.callLater(timeout, timeItOut)

        def convertCancelled(result: object) -> object:
            if not timedOut:
                return result
            if onTimeoutCancel is not None:
                return onTimeoutCancel(result, timeout)
            return _cancelledToTimedOutError(result, timeout)

        def cancelTimeout(result: object) -> object:
            if delayedCall.active():
                delayedCall.cancel()
            return result

        self.addBoth(convertCancelled)
        self.addBoth(cancelTimeout)
        return self

    # -- firing -------------------------------------------------------------

    def callback(self, result: _T | Failure) -> None:
        """Fire with a success value and run the callbacks.

        Raises :class:`AlreadyCalledError` if already fired, and
        ``TypeError`` if ``result`` is a Deferred (return it from a callback
        instead to chain).
        """
        if isinstance(result, Deferred):
            raise TypeError(
                "Deferred.callback: the result must not be a Deferred; "
                "return it from a callback to make the chain wait for it"
            )
        self._startRunCallbacks(result)

    def errback(self, fail: Failure | BaseException | None = None) -> None:
        """Fire with a failure and run the errbacks.

        ``fail`` is a :class:`~ferroproc.failure.Failure`, an exception (wrapped
        in a Failure), or None inside an ``except`` block to use the exception
        being handled. Like Twisted, any other object is wrapped as the
        Failure's value.

        Raises :class:`AlreadyCalledError` if already fired, and
        :class:`~ferroproc.failure.NoCurrentExceptionError` if ``fail`` is
        None outside an ``except`` block.
        """
        if not isinstance(fail, Failure):
            fail = Failure(fail)
        self._startRunCallbacks(fail)

    def _startRunCallbacks(self, result: object) -> None:
        if self.called:
            if self._suppressAlreadyCalled:
                # Cancelled without a canceller: the late firing is expected.
                self._suppressAlreadyCalled = False
                return
            raise AlreadyCalledError(f"{self!r} has already been fired")
        self.called = True
        self.result = result
        self._runCallbacks()

    def pause(self) -> None:
        """Stop running callbacks until :meth:`unpause` is called as often."""
        self.paused += 1

    def unpause(self) -> None:
        """Undo one :meth:`pause`; run pending callbacks when none are left."""
        self.paused -= 1
        if self.paused == 0 and self.called:
            self._runCallbacks()

    def cancel(self) -> None:
        """Cancel the operation this Deferred stands for.

        Before it has fired: the canceller given to the constructor is
        called; if that does not fire the Deferred (or there is none), it
        errbacks with :class:`CancelledError`. Without a canceller, a later
        ``callback``/``errback`` from the original source is silently ignored.
        If it is waiting for another Deferred returned by a callback, that
        Deferred is cancelled instead. Otherwise this does nothing.
        """
        if not self.called:
            canceller = self._canceller
            if canceller is not None:
                canceller(self)
            else:
                self._suppressAlreadyCalled = True
            if not self.called:
                self.errback(Failure(CancelledError()))
        elif isinstance(self.result, Deferred):
            self.result.cancel()

    # -- the callback loop ----------------------------------------------------

    def _runCallbacks(self) -> None:
        """Run the chain until it is empty or has to wait.

        Deferreds waiting on each other are handled with an explicit stack
        (``chain``) instead of recursion: when the Deferred a callback returned
        already has its result, the result is taken over directly; when it has
        not, this Deferred pauses and a marker entry on the inner Deferred
        brings the result back and resumes it here.
        """
        if self._runningCallbacks:
            # A callback added more callbacks; the loop below picks them up.
            return
        chain: list[Deferred[Any]] = [self]
        while chain:
            current = chain[-1]
            if current.paused:
                # Waiting on another Deferred (or paused by the user): the
                # whole chain above waits too.
                return
            finished = True
            current._chainedTo = None
            callbacks = current.callbacks
            while callbacks:
                entry = callbacks.popleft()
                if isinstance(current.result, Failure):
                    function, args, kwargs = entry[3], entry[4], entry[5]
                else:
                    function, args, kwargs = entry[0], entry[1], entry[2]
                if function is _passthrough:
                    continue
                if function is _continueChain:
                    # ``waiter`` returned ``current`` from one of its
                    # callbacks; hand over the result and resume it.
                    waiter: Deferred[Any] = args[0]
                    waiter.result = current.result
                    current.result = None
                    current._disarmReporter()
                    waiter.paused -= 1
                    chain.append(waiter)
                    finished = False
                    break
                current._runningCallbacks = True
                try:
                    if args or kwargs:
                        result = function(current.result, *args, **kwargs)
                    else:
                        result = function(current.result)
                except BaseException:  # noqa: BLE001 - every error goes down the errback chain
                    result = Failure()
                finally:
                    current._runningCallbacks = False
                if isinstance(result, Deferred):
                    if result is current:
                        result = Failure(TypeError(f"callback {function!r} returned the Deferred it was added to"))
                    elif not result.called or result.paused or isinstance(result.result, Deferred):
                        # Not ready: wait for it.
                        current.result = result
                        current.paused += 1
                        current._chainedTo = result
                        result.callbacks.append(
                            (
                                _continueChain,
                                (current,),
                                _NO_KWARGS,
                                _continueChain,
                                (current,),
                                _NO_KWARGS,
                            )
                        )
                        break
                    else:
                        # Ready: take its result over.
                        inner = result
                        result = inner.result
                        inner.result = None
                        inner._disarmReporter()
                current.result = result
            if finished:
                if isinstance(current.result, Failure):
                    current.result.cleanFailure()
                    reporter = current._reporter
                    if reporter is None:
                        reporter = current._reporter = _UnhandledFailureReporter()
                    reporter.failure = current.result
                else:
                    current._disarmReporter()
                chain.pop()

    def _disarmReporter(self) -> None:
        reporter = self._reporter
        if reporter is not None:
            reporter.failure = None

    def _hasResult(self) -> bool:
        """True when fired, not paused and not waiting on another Deferred."""
        return self.called and not self.paused and not isinstance(self.result, Deferred)

    def _takeResult(self) -> _T:
        """The result for an ``await``: returned, or raised if it is a failure."""
        result = self.result
        if isinstance(result, Failure):
            # The awaiting code receives the exception, so it is handled.
            self._disarmReporter()
            raise result._exceptionToRaise()
        return cast(_T, result)

    # -- await and asyncio ---------------------------------------------------

    def __await__(self) -> Generator[Any, Any, _T]:
        """Make ``await d`` work, under :func:`ensureDeferred` or asyncio.

        Under :func:`ensureDeferred` (or another Twisted-style driver) the
        Deferred itself is handed to the driver. In an asyncio task it is
        bridged to an asyncio future on the running loop (see
        :meth:`asFuture`). Under Twisted's own driver (Twisted's
        ``ensureDeferred``, ``Deferred.fromCoroutine``, a coroutine yielded
        from its ``inlineCallbacks``), which hands back what is not a
        Twisted Deferred, it is bridged to a Twisted Deferred: cancelling
        that one cancels this one. A Deferred that already has its result
        needs none of these. A failure is raised as its exception.
        """
        if not self._hasResult():
            loop = _runningAsyncioLoop()
            state = _driverState
            if loop is not None and not (state.active and state.loop is loop) and _inAsyncioTask(loop):
                result: _T = yield from self.asFuture(loop).__await__()
                return result
            while not self._hasResult():
                sent = yield self
                if sent is self and not self._hasResult():
                    # The driver handed the Deferred back: it does not know
                    # ours, and yielding it again would spin for ever.
                    bridged: _T = yield from self._awaitUnderTwisted()
                    return bridged
        return self._takeResult()

    def _awaitUnderTwisted(self) -> Generator[Any, Any, _T]:
        """``await self`` under Twisted's coroutine driver: it waits for a
        Twisted Deferred that fires (with None) once this one has, which
        then hands its result to the coroutine. Cancelling the Twisted
        Deferred (Twisted cancels what a cancelled coroutine awaits) cancels
        this one, and the coroutine gets Twisted's ``CancelledError``, as it
        would from any Twisted Deferred."""
        tdefer = sys.modules.get("twisted.internet.defer")
        if tdefer is None:
            raise TypeError(
                f"await {self!r}: the coroutine's driver gave the Deferred back without waiting for it; "
                "await it under ferroproc's ensureDeferred, Twisted's, or in an asyncio task"
            )
        taken: list[object] = []
        cancelled = False

        def cancel(_: object) -> None:
            nonlocal cancelled
            cancelled = True
            self.cancel()

        waiter = tdefer.Deferred(cancel)

        def wake(result: object) -> None:
            if not cancelled:
                taken.append(result)
                waiter.callback(None)
            # None: the coroutine took the result (or, once cancelled, gets
            # Twisted's CancelledError instead), so it is not left unhandled.

        self.addBoth(wake)
        yield waiter
        result = taken[0]
        if isinstance(result, Failure):
            raise result._exceptionToRaise()
        return cast(_T, result)

    def asFuture(self, loop: AbstractEventLoop) -> Future[_T]:
        """Return an asyncio future on ``loop`` that completes with this Deferred.

        The future takes the result (or the failure's exception), so this
        Deferred's chain continues with None. Cancelling the future cancels
        the Deferred. Safe when the Deferred fires in another thread.
        """
        future: Future[_T] = loop.create_future()
        self.addBoth(_settleFuture, future, loop)
        future.add_done_callback(lambda f: self.cancel() if f.cancelled() else None)
        return future

    @classmethod
    def fromFuture(cls, future: Future[_U]) -> Deferred[_U]:
        """Return a Deferred that fires with an asyncio future's outcome.

        Cancelling the Deferred cancels the future (the Deferred then fails
        with :class:`CancelledError`); a future cancelled elsewhere fails the
        Deferred with :class:`CancelledError` too.
        """

        def cancelFuture(_: Deferred[_U]) -> None:
            future.cancel()

        d: Deferred[_U] = Deferred(cancelFuture)

        def settle(done: Future[_U]) -> None:
            if d.called:
                return
            if done.cancelled():
                d.errback(Failure(CancelledError()))
                return
            exception = done.exception()
            if exception is not None:
                d.errback(Failure(exception))
            else:
                d.callback(done.result())

        future.add_done_callback(settle)
        return d

    @staticmethod
    def fromCoroutine(
        coro: Coroutine[Any, Any, _U] | Generator[Any, Any, _U],
    ) -> Deferred[_U]:
        """Run a coroutine now and return a Deferred for its return value.

        Inside the coroutine ``await someDeferred`` waits for that Deferred;
        no asyncio event loop is involved. An exception escaping the
        coroutine becomes a failure. Cancelling the returned Deferred cancels
        the Deferred the coroutine is waiting on. A generator that yields
        Deferreds (inlineCallbacks style) works too.

        Raises :class:`NotACoroutineError` for anything else.
        """
        if not isinstance(coro, (Coroutine, Generator)):
            raise NotACoroutineError(f"{coro!r} is not a coroutine")
        return _CoroutineDriver(coro).deferred

    def __repr__(self) -> str:
        if self._chainedTo is not None:
            state = f" waiting on Deferred at 0x{id(self._chainedTo):x}"
        elif self.called:
            state = f" current result: {self.result!r}"
        else:
            state = ""
        return f"<{type(self).__name__} at 0x{id(self):x}{state}>"

    __str__ = __repr__


def _cancelledToTimedOutError(result: object, timeout: float) -> object:
    """``addTimeout``'s default: a CancelledError failure becomes a TimeoutError."""
    if isinstance(result, Failure) and result.check(CancelledError):
        raise TimeoutError(timeout, "Deferred")
    return result


def _settleFuture(result: object, future: Future[Any], loop: AbstractEventLoop) -> None:
    """Complete ``future`` with ``result`` from the loop's own thread."""
    if future.done():
        return
    if isinstance(result, Failure):
        exception = result._exceptionToRaise()
        if isinstance(exception, StopIteration):
            # asyncio refuses StopIteration as a future's exception.
            exception = RuntimeError(f"StopIteration raised in a Deferred: {exception!r}")

        def complete() -> None:
            if not future.done():
                future.set_exception(exception)

    else:

        def complete() -> None:
            if not future.done():
                future.set_result(result)

    if _runningAsyncioLoop() is loop:
        complete()
    else:
        loop.call_soon_threadsafe(complete)


class _CoroutineDriver(Generic[_T]):
    """Steps a coroutine, resuming it whenever the Deferred it awaits fires.

    Like Twisted's inlineCallbacks machinery: a Deferred that is already
    fired when yielded is handled in the same loop iteration, so awaiting
    many ready Deferreds does not grow the stack. The coroutine runs in its
    own copy of the ``contextvars`` context.
    """

    __slots__ = ("context", "coro", "deferred", "waitingOn")

    def __init__(self, coro: Coroutine[Any, Any, _T] | Generator[Any, Any, _T]) -> None:
        self.coro = coro
        self.context = copy_context()
        self.waitingOn: Deferred[Any] | None = None
        self.deferred: Deferred[_T] = Deferred(self._cancel)
        self._step(None)

    def _cancel(self, _: Deferred[_T]) -> None:
        waitingOn = self.waitingOn
        if waitingOn is not None:
            waitingOn.cancel()

    def _step(self, value: object) -> None:
        coro = self.coro
        state = _driverState
        while True:
            saved = (state.active, state.loop)
            state.active = True
            state.loop = _runningAsyncioLoop()
            try:
                if isinstance(value, Failure):
                    yielded = self.context.run(coro.throw, value._exceptionToRaise())
                else:
                    yielded = self.context.run(coro.send, value)
            except StopIteration as stop:
                self.waitingOn = None
                if not self.deferred.called:
                    self.deferred.callback(stop.value)
                return
            except BaseException:  # noqa: BLE001 - the coroutine's error is its result
                self.waitingOn = None
                if not self.deferred.called:
                    self.deferred.errback(Failure())
                return
            finally:
                state.active, state.loop = saved

            if not isinstance(yielded, Deferred):
                # Not ours (e.g. asyncio.sleep(0)'s bare yield): send it back,
                # as Twisted does.
                value = yielded
                continue
            self.waitingOn = yielded
            value = _waitFor(self, yielded, self._step)
            if value is _WAITING:
                return
            self.waitingOn = None


_WAITING = object()


class _Driver(Protocol):
    """What :func:`_waitFor` needs of whoever drives a coroutine or an
    ``inlineCallbacks`` generator: the Deferred it waits on."""

    waitingOn: Deferred[Any] | None


def _waitFor(
    driver: _Driver,
    awaited: Deferred[Any],
    resume: Callable[[object], None],
) -> object:
    """Arrange for ``resume(result)`` (with ``driver.waitingOn`` cleared)
    when ``awaited`` fires.

    Returns its result if it fired while the callback was being added (the
    driver's loop then continues without recursing), else ``_WAITING``.
    """
    early: list[object] = []
    adding = True

    def onResult(result: object) -> None:
        if adding:
            early.append(result)
        else:
            driver.waitingOn = None
            resume(result)
        # Returning None: the driver took the result, nothing is left for
        # later callbacks of ``awaited`` (as in Twisted).

    awaited.addBoth(onResult)
    adding = False
    return early[0] if early else _WAITING


def ensureDeferred(
    coro: Coroutine[Any, Any, _T] | Generator[Any, Any, _T] | Deferred[_T],
) -> Deferred[_T]:
    """Return a Deferred for a coroutine (run now) or a Deferred (as is).

    See :meth:`Deferred.fromCoroutine`. Raises :class:`NotACoroutineError`
    for anything else.
    """
    if isinstance(coro, Deferred):
        return coro
    return Deferred.fromCoroutine(coro)


def succeed(result: _T) -> Deferred[_T]:
    """Return a Deferred that has already fired with ``result``."""
    d: Deferred[_T] = Deferred()
    d.called = True
    d.result = result
    return d


def fail(result: Failure | BaseException | None = None) -> Deferred[Any]:
    """Return a Deferred that has already failed.

    ``result`` is a Failure, an exception, or None inside an ``except``
    block (the exception being handled).
    """
    d: Deferred[Any] = Deferred()
    d.errback(result)
    return d


@overload
def maybeDeferred(f: Callable[_P, Deferred[_T]], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]: ...


@overload
def maybeDeferred(f: Callable[_P, Coroutine[Any, Any, _T]], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]: ...


@overload
def maybeDeferred(f: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]: ...


def maybeDeferred(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
    """Call ``f(*args, **kwargs)`` and return its outcome as a Deferred.

    A Deferred is returned as is, a coroutine is run with
    :func:`ensureDeferred`, a Failure or raised exception gives a failed
    Deferred, anything else a fired one.
    """
    try:
        result = f(*args, **kwargs)
    except BaseException:  # noqa: BLE001 - becomes the Deferred's failure
        return fail(Failure())
    if isinstance(result, Deferred):
        return result
    if isinstance(result, Failure):
        return fail(result)
    if isinstance(result, Coroutine):
        return Deferred.fromCoroutine(result)
    return succeed(result)


class DeferredList(Deferred[Any]):
    """A Deferred that fires when the Deferreds in a list have fired.

    ``DeferredList(deferredList, fireOnOneCallback=False,
    fireOnOneErrback=False, consumeErrors=False)``:

    * by default it fires, once all have fired, with a list of
      ``(success, result)`` pairs in the original order (``success`` is
      False and ``result`` a Failure for a failed one); an empty list fires
      at once with ``[]``;
    * ``fireOnOneCallback``: it fires with ``(result, index)`` as soon as one
      succeeds (and never fires if none does);
    * ``fireOnOneErrback``: it fails with :class:`FirstError` as soon as one
      fails;
    * ``consumeErrors``: failures are handled here, so the original
      Deferreds continue with None and nothing is logged as unhandled.

    Cancelling it cancels every Deferred of the list.

    Attributes: ``resultList``, ``finishedCount``, ``fireOnOneCallback``,
    ``fireOnOneErrback``, ``consumeErrors``.
    """

    def __init__(
        self,
        deferredList: Iterable[Deferred[Any]],
        fireOnOneCallback: bool = False,
        fireOnOneErrback: bool = False,
        consumeErrors: bool = False,
    ) -> None:
        self._deferredList = list(deferredList)
        self.resultList: list[Any] = [None] * len(self._deferredList)
        Deferred.__init__(self)
        if not self._deferredList and not fireOnOneCallback:
            self.callback(self.resultList)
        self.fireOnOneCallback = fireOnOneCallback
        self.fireOnOneErrback = fireOnOneErrback
        self.consumeErrors = consumeErrors
        self.finishedCount = 0
        for index, deferred in enumerate(self._deferredList):
            deferred.addCallbacks(
                self._cbDeferred,
                self._cbDeferred,
                callbackArgs=(index, True),
                errbackArgs=(index, False),
            )

    def _cbDeferred(self, result: object, index: int, succeeded: bool) -> object:
        self.resultList[index] = (succeeded, result)
        self.finishedCount += 1
        if not self.called:
            if succeeded and self.fireOnOneCallback:
                self.callback((result, index))
            elif not succeeded and self.fireOnOneErrback:
                self.errback(Failure(FirstError(cast(Failure, result), index)))
            elif self.finishedCount == len(self.resultList):
                self.callback(self.resultList)
        if not succeeded and self.consumeErrors:
            return None
        return result

    def cancel(self) -> None:
        """Cancel every Deferred in the list, then this one if still unfired."""
        if self.called:
            return
        for deferred in self._deferredList:
            try:
                deferred.cancel()
            except Exception as e:  # noqa: BLE001 - one bad canceller must not stop the rest
                logError(f"DeferredList.cancel (cancelling {deferred!r})", e)
        if not self.called:
            Deferred.cancel(self)


def gatherResults(deferredList: Iterable[Deferred[_T]], consumeErrors: bool = False) -> Deferred[list[_T]]:
    """Return a Deferred for the list of results of ``deferredList``.

    It fails with :class:`FirstError` as soon as one of them fails.
    ``consumeErrors`` is as for :class:`DeferredList`.
    """
    d = DeferredList(deferredList, fireOnOneErrback=True, consumeErrors=consumeErrors)
    d.addCallback(_resultsOnly)
    return cast("Deferred[list[_T]]", d)


def _resultsOnly(pairs: list[tuple[bool, Any]]) -> list[Any]:
    return [result for _, result in pairs]
