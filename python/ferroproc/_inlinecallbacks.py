"""``inlineCallbacks`` and ``returnValue``: generators that yield Deferreds
(Twisted's older way to write what ``async def`` writes now). Documented in
:mod:`ferroproc.defer`, which exports them."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine, Generator
from contextvars import copy_context
from functools import wraps
from types import CoroutineType, GeneratorType, TracebackType
from typing import Any, NoReturn, ParamSpec, TypeVar

from ferroproc._deferred import _WAITING, Deferred, _waitFor
from ferroproc.failure import Failure

__all__ = ["inlineCallbacks", "returnValue"]

_T = TypeVar("_T")
_P = ParamSpec("_P")


class _DefGen_Return(BaseException):  # noqa: N801 - Twisted's name; code catches it by name
    """Raised by :func:`returnValue` to end an ``inlineCallbacks`` generator.

    A ``BaseException``, so that ``except Exception:`` in the generator does
    not swallow it. ``value`` is the result the Deferred fires with.
    """

    def __init__(self, value: object) -> None:
        BaseException.__init__(self, value)
        self.value = value


def returnValue(val: object) -> NoReturn:
    """End an :func:`inlineCallbacks` generator; its Deferred fires with ``val``.

    The same as ``return val`` in the generator, which is the better way
    today; kept because code written for Twisted uses it everywhere. It
    works by raising an exception derived from ``BaseException``, so a bare
    ``except:`` around it would catch it. Called from a helper function
    rather than from the generator itself, it still ends the generator, with
    a ``DeprecationWarning`` (as in Twisted).
    """
    raise _DefGen_Return(val)


class _InlineCallbacksCancelled(Exception):
    """Internal: the outer Deferred of an inlineCallbacks run is being cancelled."""


def _warnNonLocalReturn(error: _DefGen_Return) -> None:
    """Warn when ``returnValue`` was called below the generator's own frame.

    The traceback starts at :meth:`_InlineCallbacks._run`, then the
    generator's frame, then ``returnValue``'s: any frame between the
    generator and ``returnValue`` is a helper that ended the generator.
    """
    generatorTrace = error.__traceback__.tb_next if error.__traceback__ else None
    if generatorTrace is None or generatorTrace.tb_next is None:
        return
    if generatorTrace.tb_next.tb_next is None:
        return
    callerTrace: TracebackType = generatorTrace
    while callerTrace.tb_next is not None and callerTrace.tb_next.tb_next is not None:
        callerTrace = callerTrace.tb_next
    import warnings

    warnings.warn_explicit(
        f"returnValue() in {callerTrace.tb_frame.f_code.co_name!r} causing "
        f"{generatorTrace.tb_frame.f_code.co_name!r} to exit: returnValue should "
        "only be invoked by functions decorated with inlineCallbacks",
        DeprecationWarning,
        callerTrace.tb_frame.f_code.co_filename,
        callerTrace.tb_lineno,
    )


class _InlineCallbacks:
    """Runs one ``inlineCallbacks`` generator to the end.

    The generator is stepped in a loop: a yielded Deferred that already has
    its result (or a plain value) is sent back in the same loop iteration,
    so any number of ready yields uses no extra stack. Only a Deferred that
    has not fired yet suspends the run; its callback resumes the loop.

    Cancelling :attr:`deferred` works as in Twisted: the Deferred being
    waited on is cancelled, the generator sees the resulting exception at
    its ``yield``, and the outer Deferred fires with whatever the generator
    then does (it may catch the exception and go on).
    """

    __slots__ = ("context", "deferred", "gen", "waitingOn")

    def __init__(self, gen: GeneratorType[Any, Any, Any]) -> None:
        self.gen = gen
        self.context = copy_context()
        self.waitingOn: Deferred[Any] | None = None
        self.deferred: Deferred[Any] = Deferred(self._cancel)

    def _run(self, value: object) -> None:
        """Step the generator, starting by sending (or throwing) ``value``."""
        gen = self.gen
        context = self.context
        while True:
            thrown: Failure | None = None
            try:
                if isinstance(value, Failure):
                    thrown = value
                    yielded = context.run(gen.throw, value._exceptionToRaise())
                else:
                    yielded = context.run(gen.send, value)
            except StopIteration as stop:
                outcome: object = stop.value
            except _DefGen_Return as ret:
                _warnNonLocalReturn(ret)
                outcome = ret.value
            except BaseException:  # noqa: BLE001 - the generator's error is its result
                outcome = self._failure(thrown)
            else:
                if isinstance(yielded, CoroutineType):
                    # Twisted (24.7+) awaits a coroutine yielded here.
                    yielded = Deferred.fromCoroutine(yielded)
                if not isinstance(yielded, Deferred):
                    value = yielded
                    continue
                self.waitingOn = yielded
                value = _waitFor(self, yielded, self._run)
                if value is _WAITING:
                    return
                self.waitingOn = None
                continue
            # Outside the except blocks: callbacks that run now must not see
            # StopIteration/_DefGen_Return as the exception being handled.
            self._finish(outcome)
            return

    @staticmethod
    def _failure(thrown: Failure | None) -> Failure:
        """The failure for the exception escaping the generator right now.

        When it is the exception we threw in and that failure had already
        dropped its traceback (a Deferred that failed before it was
        yielded), its frames are kept after the generator's own.
        """
        failure = Failure()
        if (
            thrown is not None
            and thrown.tb is None
            and thrown._frames
            and failure.value is thrown.value
            and failure._frames is None
        ):
            failure._frames = failure._frameInfo() + thrown._frames
        return failure

    def _finish(self, outcome: object) -> None:
        """Fire the Deferred with the generator's result or failure."""
        self.waitingOn = None
        deferred = self.deferred
        # The canceller refers back to this object: drop it so the Deferred,
        # the generator and its arguments are freed without the cycle collector.
        deferred._canceller = None
        if deferred.called:
            # Cancelled while the generator was running, not waiting.
            return
        if isinstance(outcome, Failure):
            deferred.errback(outcome)
        elif isinstance(outcome, Deferred):
            deferred.errback(
                Failure(
                    TypeError(
                        f"inlineCallbacks: generator {self.gen.__qualname__!r} returned a "
                        "Deferred; yield it and return its result instead"
                    )
                )
            )
        else:
            deferred.callback(outcome)

    def _cancel(self, outer: Deferred[Any]) -> None:
        """Canceller of the outer Deferred: cancel what the generator waits on.

        As in Twisted, the outer Deferred is fired at once with an internal
        failure, handled by an errback put first in its chain that returns
        a fresh Deferred: the chain then waits for the generator, which
        fires that fresh Deferred with its real outcome.
        """
        if self.waitingOn is None:
            # The generator is running (it cancelled its own Deferred):
            # nothing to cascade to, so plain cancellation applies.
            return
        pending = outer.callbacks
        outer.callbacks = deque()
        outer.addErrback(self._handleCancel)
        outer.callbacks.extend(pending)
        outer.errback(Failure(_InlineCallbacksCancelled()))

    def _handleCancel(self, failure: Failure) -> Deferred[Any]:
        failure.trap(_InlineCallbacksCancelled)
        replacement: Deferred[Any] = Deferred(self._cancel)
        self.deferred = replacement
        awaited = self.waitingOn
        if awaited is not None:
            awaited.cancel()
        return replacement


def inlineCallbacks(f: Callable[_P, Generator[Any, Any, _T]]) -> Callable[_P, Deferred[_T]]:
    """Turn a generator function into a function that returns a Deferred.

    Inside the generator, ``yield d`` waits for the Deferred ``d`` without
    blocking the reactor: the generator is resumed with ``d``'s result, or
    the failure's exception is raised at the ``yield``. Anything else
    yielded is sent straight back (a coroutine is awaited). ``return x`` (or
    :func:`returnValue`) fires the returned Deferred with ``x``; an
    exception escaping the generator fails it.

    The generator runs at once, up to its first ``yield`` of a Deferred
    that has not fired, in a copy of the caller's ``contextvars`` context.
    Yielding Deferreds that have already fired costs no stack, however many.

    Cancelling the returned Deferred cancels the Deferred the generator is
    waiting on; the generator sees the resulting exception (normally
    :class:`CancelledError`) at its ``yield`` and the returned Deferred
    fires with whatever the generator does then.

    Raises ``TypeError`` when the decorated function does not return a
    generator. Example::

        from ferroproc import defer, utils

        @defer.inlineCallbacks
        def versions():
            gitOut = yield utils.getProcessOutput("/usr/bin/git", ["--version"])
            code = yield utils.getProcessValue("/usr/bin/make", ["-q"])
            return gitOut.strip(), code
    """

    @wraps(f)
    def unwindGenerator(*args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        try:
            gen = f(*args, **kwargs)
        except _DefGen_Return:
            raise TypeError(
                f"inlineCallbacks requires {f!r} to produce a generator; instead "
                "caught returnValue being used in a non-generator"
            ) from None
        if not isinstance(gen, GeneratorType):
            hint = " (a coroutine function: use ensureDeferred)" if isinstance(gen, Coroutine) else ""
            if isinstance(gen, Coroutine):
                gen.close()
            raise TypeError(f"inlineCallbacks requires {f!r} to produce a generator; instead got {gen!r}{hint}")
        runner = _InlineCallbacks(gen)
        deferred = runner.deferred
        runner._run(None)
        return deferred

    return unwindGenerator
