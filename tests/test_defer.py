"""ferroproc.defer: Deferred semantics as in Twisted, plus await support."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import itertools
import logging
import threading
from collections.abc import Generator
from typing import Any

import pytest

from ferroproc.defer import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    DeferredList,
    FirstError,
    NotACoroutineError,
    ensureDeferred,
    fail,
    gatherResults,
    maybeDeferred,
    succeed,
)
from ferroproc.failure import Failure, NoCurrentExceptionError


def unhandled_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "ferroproc" and r.getMessage().startswith("Unhandled error in Deferred:")
    ]


@pytest.fixture
def caplog_ferroproc(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.ERROR, logger="ferroproc")
    gc.collect()
    caplog.clear()
    return caplog


# -- firing and the callback chain ---------------------------------------


def test_callbacks_run_in_order_and_pass_results() -> None:
    seen: list[object] = []
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r: seen.append(("a", r)) or r + 1)
    d.addCallback(lambda r: seen.append(("b", r)) or r * 10)
    assert not d.called
    d.callback(1)
    assert d.called
    assert d.result == 20
    assert seen == [("a", 1), ("b", 2)]


def test_result_is_missing_before_firing() -> None:
    d: Deferred[int] = Deferred()
    with pytest.raises(AttributeError):
        d.result  # noqa: B018


def test_callback_arguments_and_keywords() -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r, a, b=0: (r, a, b), 2, b=3)
    d.callback(1)
    assert d.result == (1, 2, 3)


def test_add_callbacks_full_signature() -> None:
    d: Deferred[int] = Deferred()
    d.addCallbacks(
        lambda r, x, y=None: ("ok", r, x, y),
        lambda f, x, y=None: ("err", f, x, y),
        callbackArgs=(1,),
        callbackKeywords={"y": 2},
        errbackArgs=(3,),
        errbackKeywords={"y": 4},
    )
    d.callback(0)
    assert d.result == ("ok", 0, 1, 2)

    d2: Deferred[int] = Deferred()
    d2.addCallbacks(
        lambda r, x, y=None: ("ok", r, x, y),
        lambda f, x, y=None: ("err", f.getErrorMessage(), x, y),
        callbackArgs=(1,),
        callbackKeywords={"y": 2},
        errbackArgs=(3,),
        errbackKeywords={"y": 4},
    )
    d2.errback(KeyError("k"))
    assert d2.result == ("err", "'k'", 3, 4)


def test_not_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="callback 42 is not callable"):
        Deferred().addCallbacks(42)  # type: ignore[arg-type]


def test_exception_in_callback_goes_to_errback_and_back() -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r: 1 / 0)
    d.addCallback(lambda r: pytest.fail("callback after an error"))
    d.addErrback(lambda f: f.trap(ZeroDivisionError) and "recovered")
    d.addCallback(lambda r: r + "!")
    d.callback(1)
    assert d.result == "recovered!"


def test_errback_returning_failure_stays_on_errback_side() -> None:
    d: Deferred[int] = Deferred()
    d.addErrback(lambda f: f)
    d.addCallback(lambda r: pytest.fail("should not run"))
    d.addErrback(lambda f: f.value)
    d.errback(KeyError("k"))
    assert isinstance(d.result, KeyError)


def test_callback_returning_failure_switches_to_errback() -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r: Failure(KeyError("k")))
    d.addErrback(lambda f: f.check(KeyError))
    d.callback(0)
    assert d.result is KeyError


def test_trap_passes_other_errors_on() -> None:
    d: Deferred[int] = Deferred()
    d.addErrback(lambda f: f.trap(KeyError))
    d.addErrback(lambda f: ("second", f.type))
    d.errback(ValueError("v"))
    assert d.result == ("second", ValueError)


def test_add_both_runs_for_both() -> None:
    ok: Deferred[int] = Deferred()
    ok.addBoth(lambda r, tag: (tag, r), "x")
    ok.callback(5)
    assert ok.result == ("x", 5)
    bad: Deferred[int] = Deferred()
    bad.addBoth(lambda r, tag: (tag, isinstance(r, Failure)), "y")
    bad.errback(ValueError())
    assert bad.result == ("y", True)


def test_callbacks_added_after_firing_run_at_once() -> None:
    d = succeed(3)
    d.addCallback(lambda r: r * 2)
    assert d.result == 6


def test_callback_adding_callbacks_to_its_own_deferred() -> None:
    d: Deferred[int] = Deferred()
    order: list[str] = []

    def first(r: int) -> int:
        order.append("first")
        d.addCallback(lambda r2: order.append("added") or r2 + 100)
        return r + 1

    d.addCallback(first)
    d.addCallback(lambda r: order.append("second") or r * 2)
    d.callback(1)
    assert order == ["first", "second", "added"]
    assert d.result == 104


def test_errback_forms() -> None:
    exc = KeyError("k")
    d1: Deferred[None] = Deferred()
    d1.addErrback(lambda f: f)
    d1.errback(exc)
    assert isinstance(d1.result, Failure) and d1.result.value is exc

    f = Failure(ValueError("v"))
    d2: Deferred[None] = Deferred()
    d2.addErrback(lambda f: f)
    d2.errback(f)
    assert d2.result is f

    d3: Deferred[None] = Deferred()
    d3.addErrback(lambda f: f.value)
    try:
        raise OSError("inside except")
    except OSError:
        d3.errback()
    assert isinstance(d3.result, OSError)

    with pytest.raises(NoCurrentExceptionError):
        Deferred().errback()


def test_already_called() -> None:
    d: Deferred[int] = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError):
        d.callback(2)
    with pytest.raises(AlreadyCalledError):
        d.errback(ValueError())


def test_callback_with_a_deferred_is_refused() -> None:
    with pytest.raises(TypeError, match="must not be a Deferred"):
        Deferred().callback(Deferred())


def test_long_callback_chain() -> None:
    d: Deferred[int] = Deferred()
    for _ in range(100_000):
        d.addCallback(lambda r: r + 1)
    d.callback(0)
    assert d.result == 100_000


def test_generic_subscription() -> None:
    d = Deferred[int]()
    d.callback(1)
    assert d.result == 1


def test_repr() -> None:
    d: Deferred[int] = Deferred()
    assert repr(d) == f"<Deferred at 0x{id(d):x}>"
    d.callback(5)
    assert repr(d).endswith(" current result: 5>")
    inner: Deferred[int] = Deferred()
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda _: inner)
    outer.callback(0)
    assert f"waiting on Deferred at 0x{id(inner):x}" in repr(outer)
    inner.callback(1)


# -- chaining --------------------------------------------------------------


def test_chaining_waits_for_inner_deferred() -> None:
    inner: Deferred[int] = Deferred()
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda _: inner)
    outer.addCallback(lambda r: r + 1)
    outer.callback(0)
    assert outer.paused == 1
    assert outer.result is inner
    inner.callback(41)
    assert outer.result == 42
    assert outer.paused == 0
    # The inner Deferred handed its result over.
    assert inner.result is None


def test_chaining_with_already_fired_inner_takes_its_result() -> None:
    inner = succeed("ready")
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda _: inner)
    outer.callback(0)
    assert outer.result == "ready"
    assert inner.result is None


def test_chained_failure_propagates_and_is_not_reported_twice(
    caplog_ferroproc: pytest.LogCaptureFixture,
) -> None:
    inner: Deferred[int] = Deferred()
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda _, inner=inner: inner)
    outer.addErrback(lambda f: f.trap(KeyError) and "handled")
    outer.callback(0)
    inner.errback(KeyError("k"))
    assert outer.result == "handled"
    del inner, outer
    gc.collect()
    assert unhandled_records(caplog_ferroproc) == []


def test_deep_chain_of_deferreds_does_not_recurse() -> None:
    ds: list[Deferred[Any]] = [Deferred() for _ in range(50_000)]
    for current, following in itertools.pairwise(ds):
        current.addCallback(lambda _, following=following: following)
    for d in ds[:-1]:
        d.callback(None)
    ds[-1].callback("deep")
    assert ds[0].result == "deep"


def test_callback_returning_its_own_deferred_fails() -> None:
    d: Deferred[Any] = Deferred()
    d.addCallback(lambda _: d)
    d.addErrback(lambda f: f.value)
    d.callback(0)
    assert isinstance(d.result, TypeError)


def test_chain_deferred() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    a.chainDeferred(b)
    a.callback(7)
    assert b.result == 7
    assert a.result is None


# -- pause ---------------------------------------------------------------------


def test_pause_and_unpause() -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r: r + 1)
    d.pause()
    d.pause()
    d.callback(1)
    assert d.result == 1
    d.unpause()
    assert d.result == 1
    d.unpause()
    assert d.result == 2


# -- cancel ------------------------------------------------------------------


def test_cancel_without_canceller() -> None:
    d: Deferred[int] = Deferred()
    d.addErrback(lambda f: f.check(CancelledError))
    d.cancel()
    assert d.result is CancelledError
    # The original source firing later is silently ignored, once.
    d.callback(1)
    with pytest.raises(AlreadyCalledError):
        d.callback(2)


def test_cancel_with_canceller_that_fires() -> None:
    calls: list[Deferred[Any]] = []

    def canceller(d: Deferred[Any]) -> None:
        calls.append(d)
        d.callback("stopped")

    d: Deferred[str] = Deferred(canceller)
    d.cancel()
    assert calls == [d]
    assert d.result == "stopped"


def test_cancel_with_canceller_that_does_not_fire() -> None:
    d: Deferred[str] = Deferred(lambda d: None)
    d.addErrback(lambda f: f.type)
    d.cancel()
    assert d.result is CancelledError
    with pytest.raises(AlreadyCalledError):
        d.callback("late")


def test_cancel_after_firing_does_nothing() -> None:
    d = succeed(1)
    d.cancel()
    assert d.result == 1


def test_cancel_forwards_to_the_deferred_waited_on() -> None:
    inner: Deferred[int] = Deferred()
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda _: inner)
    outer.addErrback(lambda f: f.type)
    outer.callback(0)
    outer.cancel()
    assert inner.called
    assert outer.result is CancelledError


# -- unhandled errors ------------------------------------------------------


def test_unhandled_error_is_logged_on_collection(
    caplog_ferroproc: pytest.LogCaptureFixture,
) -> None:
    def make() -> None:
        d: Deferred[int] = Deferred()
        d.addCallback(lambda r: 1 / r)
        d.callback(0)

    make()
    gc.collect()
    records = unhandled_records(caplog_ferroproc)
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    message = records[0].getMessage()
    assert "Traceback (most recent call last):" in message
    assert "ZeroDivisionError: division by zero" in message


def test_unhandled_error_in_a_cycle_is_logged_by_gc(
    caplog_ferroproc: pytest.LogCaptureFixture,
) -> None:
    d: Deferred[Any] = Deferred()
    d.addCallback(lambda r, me: 1 / 0, d)  # the Deferred refers to itself
    d.callback(0)
    del d
    gc.collect()
    assert len(unhandled_records(caplog_ferroproc)) == 1


def test_handled_error_is_not_logged(caplog_ferroproc: pytest.LogCaptureFixture) -> None:
    d: Deferred[int] = Deferred()
    d.errback(ValueError("x"))
    d.addErrback(lambda f: None)
    del d
    gc.collect()
    assert unhandled_records(caplog_ferroproc) == []


def test_error_handled_later_is_not_logged(caplog_ferroproc: pytest.LogCaptureFixture) -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r: 1 / 0)
    d.callback(0)
    gc.collect()
    assert unhandled_records(caplog_ferroproc) == []
    d.addErrback(lambda f: None)
    del d
    gc.collect()
    assert unhandled_records(caplog_ferroproc) == []


def test_failed_deferred_keeps_no_traceback_object() -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r: 1 / 0)
    d.callback(0)
    failure = d.result
    assert isinstance(failure, Failure)
    assert failure.tb is None
    assert "ZeroDivisionError" in failure.getTraceback()
    d.addErrback(lambda f: None)


# -- module functions ------------------------------------------------------


def test_succeed_and_fail() -> None:
    assert succeed("x").result == "x"
    d = fail(KeyError("k"))
    assert isinstance(d.result, Failure) and d.result.check(KeyError)
    d.addErrback(lambda f: None)
    try:
        raise OSError("now")
    except OSError:
        d2 = fail()
    assert d2.result.check(OSError)
    d2.addErrback(lambda f: None)


def test_maybe_deferred() -> None:
    assert maybeDeferred(lambda a, b=0: a + b, 1, b=2).result == 3

    existing: Deferred[int] = Deferred()
    assert maybeDeferred(lambda: existing) is existing

    raised = maybeDeferred(lambda: 1 / 0)
    assert raised.result.check(ZeroDivisionError)
    raised.addErrback(lambda f: None)

    failure = Failure(KeyError("k"))
    returned = maybeDeferred(lambda: failure)
    assert returned.result is failure
    returned.addErrback(lambda f: None)

    async def coro() -> str:
        return "from coroutine"

    assert maybeDeferred(coro).result == "from coroutine"


# -- DeferredList and gatherResults -----------------------------------------


def test_deferred_list_results_in_order(caplog_ferroproc: pytest.LogCaptureFixture) -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    c: Deferred[int] = Deferred()
    dl = DeferredList([a, b, c])
    c.callback(3)
    a.callback(1)
    assert not dl.called
    b.errback(KeyError("k"))
    assert dl.called
    assert dl.result[0] == (True, 1)
    assert dl.result[1][0] is False and dl.result[1][1].check(KeyError)
    assert dl.result[2] == (True, 3)
    # Without consumeErrors the failure stays in b, unhandled.
    del a, b, c, dl
    gc.collect()
    assert len(unhandled_records(caplog_ferroproc)) == 1


def test_deferred_list_consume_errors(caplog_ferroproc: pytest.LogCaptureFixture) -> None:
    a: Deferred[int] = Deferred()
    dl = DeferredList([a], consumeErrors=True)
    a.errback(KeyError("k"))
    assert dl.result[0][0] is False
    assert a.result is None
    del a, dl
    gc.collect()
    assert unhandled_records(caplog_ferroproc) == []


def test_deferred_list_empty() -> None:
    assert DeferredList([]).result == []
    assert not DeferredList([], fireOnOneCallback=True).called


def test_deferred_list_already_fired_members() -> None:
    dl = DeferredList([succeed(1), succeed(2)])
    assert dl.result == [(True, 1), (True, 2)]


def test_deferred_list_fire_on_one_callback() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    dl = DeferredList([a, b], fireOnOneCallback=True)
    b.callback("second")
    assert dl.result == ("second", 1)
    a.callback("first")  # later results do not refire
    assert dl.result == ("second", 1)


def test_deferred_list_fire_on_one_errback() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    dl = DeferredList([a, b], fireOnOneErrback=True, consumeErrors=True)
    dl.addErrback(lambda f: f)
    b.errback(KeyError("k"))
    failure = dl.result
    assert isinstance(failure, Failure)
    assert failure.check(FirstError)
    first = failure.value
    assert first.index == 1
    assert first.subFailure.check(KeyError)
    assert repr(first) == "FirstError[#1, KeyError('k')]"
    assert first == FirstError(first.subFailure, 1)
    dl.addErrback(lambda f: None)


def test_deferred_list_cancel_cancels_members() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    dl = DeferredList([a, b], consumeErrors=True)
    dl.cancel()
    assert a.called and b.called
    assert dl.called
    assert [ok for ok, _ in dl.result] == [False, False]


def test_gather_results() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    d = gatherResults([a, b])
    b.callback(2)
    a.callback(1)
    assert d.result == [1, 2]


def test_gather_results_failure(caplog_ferroproc: pytest.LogCaptureFixture) -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    d = gatherResults([a, b], consumeErrors=True)
    a.errback(KeyError("k"))
    assert d.result.check(FirstError)
    assert d.result.value.subFailure.check(KeyError)
    d.addErrback(lambda f: None)
    b.callback(2)
    del a, b, d
    gc.collect()
    assert unhandled_records(caplog_ferroproc) == []


# -- coroutines: ensureDeferred / fromCoroutine -----------------------------


def test_ensure_deferred_awaits_deferreds() -> None:
    later: Deferred[int] = Deferred()

    async def work() -> int:
        a = await succeed(1)
        b = await later
        return a + b

    d = ensureDeferred(work())
    assert not d.called
    later.callback(2)
    assert d.result == 3
    # Awaiting consumed the result, as in Twisted.
    assert later.result is None


def test_from_coroutine_is_the_same() -> None:
    async def work() -> str:
        return "done"

    assert Deferred.fromCoroutine(work()).result == "done"


def test_ensure_deferred_passes_deferreds_through() -> None:
    d: Deferred[int] = Deferred()
    assert ensureDeferred(d) is d


def test_ensure_deferred_rejects_other_objects() -> None:
    with pytest.raises(NotACoroutineError):
        ensureDeferred(42)  # type: ignore[arg-type]
    assert issubclass(NotACoroutineError, TypeError)


def test_coroutine_exception_becomes_failure() -> None:
    async def work() -> None:
        raise KeyError("inside")

    d = ensureDeferred(work())
    assert d.result.check(KeyError)
    d.addErrback(lambda f: None)


def test_failed_deferred_raises_inside_coroutine(
    caplog_ferroproc: pytest.LogCaptureFixture,
) -> None:
    later: Deferred[int] = Deferred()

    async def work(later: Deferred[int]) -> str:
        try:
            await fail(ValueError("already"))
        except ValueError as e:
            first = str(e)
        try:
            await later
        except KeyError as e:
            return f"{first} / {e.args[0]}"
        return "no error"

    d = ensureDeferred(work(later))
    later.errback(KeyError("later"))
    assert d.result == "already / later"
    del d, later
    gc.collect()
    assert unhandled_records(caplog_ferroproc) == []


def test_many_ready_awaits_do_not_recurse() -> None:
    async def work() -> int:
        total = 0
        for i in range(20_000):
            total += await succeed(i)
        return total

    assert ensureDeferred(work()).result == sum(range(20_000))


def test_many_pending_awaits_fired_in_sequence() -> None:
    pending: list[Deferred[int]] = [Deferred() for _ in range(5_000)]

    async def work() -> int:
        total = 0
        for d in pending:
            total += await d
        return total

    result = ensureDeferred(work())
    for i, d in enumerate(pending):
        d.callback(i)
    assert result.result == sum(range(5_000))


def test_cancel_propagates_to_awaited_deferred() -> None:
    waited: Deferred[int] = Deferred()

    async def work() -> str:
        try:
            await waited
        except CancelledError:
            return "cancelled inside"
        return "not cancelled"

    d = ensureDeferred(work())
    d.cancel()
    assert waited.called
    assert d.result == "cancelled inside"


def test_cancel_uncaught_in_coroutine() -> None:
    waited: Deferred[int] = Deferred()

    async def work() -> None:
        await waited

    d = ensureDeferred(work())
    d.addErrback(lambda f: f.type)
    d.cancel()
    assert d.result is CancelledError


def test_context_variables_persist_across_awaits() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")
    later: Deferred[None] = Deferred()

    async def work() -> tuple[str, str]:
        var.set("inner")
        before = var.get()
        await later
        return before, var.get()

    d = ensureDeferred(work())
    later.callback(None)
    assert d.result == ("inner", "inner")
    assert var.get() == "outer"


def test_generator_yielding_deferreds() -> None:
    later: Deferred[int] = Deferred()

    def gen() -> Generator[Deferred[int], Any, int]:
        a = yield succeed(1)
        b = yield later
        return a + b

    d = ensureDeferred(gen())
    later.callback(2)
    assert d.result == 3


# -- asyncio -----------------------------------------------------------------


def test_await_in_asyncio_fired_later() -> None:
    async def main() -> int:
        d: Deferred[int] = Deferred()
        asyncio.get_running_loop().call_later(0.01, d.callback, 5)
        return await d

    assert asyncio.run(main()) == 5


def test_await_in_asyncio_already_fired() -> None:
    async def main() -> int:
        return await succeed(7)

    assert asyncio.run(main()) == 7


def test_await_in_asyncio_failure() -> None:
    async def main() -> str:
        d: Deferred[int] = Deferred()
        asyncio.get_running_loop().call_soon(d.errback, KeyError("k"))
        try:
            await d
        except KeyError as e:
            return repr(e)
        return "no error"

    assert asyncio.run(main()) == "KeyError('k')"


def test_await_in_asyncio_fired_from_another_thread() -> None:
    async def main() -> str:
        d: Deferred[str] = Deferred()
        thread = threading.Thread(target=d.callback, args=("from thread",))
        thread.start()
        try:
            return await asyncio.wait_for(d, timeout=10)
        finally:
            thread.join()

    assert asyncio.run(main()) == "from thread"


def test_asyncio_cancellation_cancels_deferred() -> None:
    cancelled: list[Deferred[int]] = []
    d: Deferred[int] = Deferred(cancelled.append)

    async def waiter() -> None:
        await d

    async def main() -> None:
        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cancelled == [d]
    assert d.called


def test_ensure_deferred_inside_asyncio_task() -> None:
    async def inner(d: Deferred[int]) -> int:
        return (await d) * 2

    async def main() -> int:
        d: Deferred[int] = Deferred()
        wrapped = ensureDeferred(inner(d))
        asyncio.get_running_loop().call_soon(d.callback, 21)
        return await wrapped

    assert asyncio.run(main()) == 42


def test_as_future_and_from_future() -> None:
    async def main() -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        future = d.asFuture(loop)
        d.callback(3)
        first = await future

        f2: asyncio.Future[str] = loop.create_future()
        d2 = Deferred.fromFuture(f2)
        f2.set_result("future result")
        await asyncio.sleep(0)
        return first, d2.result

    assert asyncio.run(main()) == (3, "future result")


def test_from_future_cancel() -> None:
    async def main() -> bool:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        d = Deferred.fromFuture(future)
        d.addErrback(lambda f: f.check(CancelledError) is not None)
        d.cancel()
        await asyncio.sleep(0)
        assert future.cancelled()
        return bool(d.result)

    assert asyncio.run(main())


def test_awaited_under_twisteds_own_coroutine_driver() -> None:
    """Twisted's ensureDeferred hands back what is not a Twisted Deferred: a
    ferroproc Deferred awaited there is bridged (it used to be yielded again
    and again, hanging the program)."""
    tdefer = pytest.importorskip("twisted.internet.defer")
    first: Deferred[int] = Deferred()
    bad: Deferred[int] = Deferred()

    async def work() -> tuple[int, str]:
        value = await first
        try:
            await bad
        except ValueError as e:
            return value, str(e)
        return value, "no error"

    td = tdefer.ensureDeferred(work())
    assert not td.called
    first.callback(1)
    bad.errback(ValueError("no"))
    assert td.called and td.result == (1, "no")
    assert first.result is None and bad.result is None, "the coroutine took both results"


def test_cancelling_twisteds_coroutine_cancels_the_deferred_it_awaits() -> None:
    tdefer = pytest.importorskip("twisted.internet.defer")
    cancelled: list[Deferred[int]] = []
    d: Deferred[int] = Deferred(cancelled.append)

    async def work() -> int:
        return await d

    td = tdefer.ensureDeferred(work())
    outcome: list[Any] = []
    td.addBoth(outcome.append)
    td.cancel()
    assert cancelled == [d] and d.called
    assert len(outcome) == 1 and outcome[0].check(tdefer.CancelledError)


def test_awaited_under_twisteds_driver_inside_a_running_loop() -> None:
    """Twisted's asyncio reactor runs its coroutine driver from the loop's
    callbacks, outside any task: the Deferred goes to Twisted's driver there,
    not to asyncio's."""
    tdefer = pytest.importorskip("twisted.internet.defer")

    async def work(d: Deferred[int]) -> int:
        return (await d) + 1

    async def main() -> int:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        done: asyncio.Future[int] = loop.create_future()

        def start() -> None:
            tdefer.ensureDeferred(work(d)).addBoth(done.set_result)

        loop.call_soon(start)
        loop.call_soon(d.callback, 41)
        return await asyncio.wait_for(done, 10)

    assert asyncio.run(main()) == 42


def test_defer_module_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import ferroproc.defer; "
        "bad = {'traceback', 'inspect', 'asyncio'} & set(sys.modules); "
        "print(sorted(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": ":".join(p for p in sys.path if p)},
    ).stdout
    assert out.strip() == "[]"


def test_an_unhandled_failure_still_alive_at_exit_is_reported() -> None:
    """Collected while the interpreter shuts down (nothing can be imported
    any more), it is still printed, as Twisted prints it."""
    import subprocess
    import sys

    code = (
        "from ferroproc import defer\n"
        "d = defer.Deferred()\n"
        "def boom(_): raise ValueError('boom at exit')\n"
        "d.addCallback(boom)\n"
        "d.callback(1)\n"
        "keep = d\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "Unhandled error in Deferred" in out.stderr, out.stderr
    assert "ValueError: boom at exit" in out.stderr, out.stderr
