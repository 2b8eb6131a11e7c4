"""defer.inlineCallbacks and returnValue: Twisted's semantics, on real children
where it matters (yielding getProcessOutput/getProcessValue in sequence, a
child's failure raised at the yield, cancelling a wait on a running child)."""

from __future__ import annotations

import contextvars
import gc
import signal
import sys
import traceback
import warnings
import weakref
from collections.abc import Generator
from typing import Any

import pytest
from helpers import PY, run_reactor

from ferroproc import reactor, task, utils
from ferroproc.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    fail,
    gatherResults,
    inlineCallbacks,
    returnValue,
    succeed,
)
from ferroproc.error import ProcessDone, ProcessTerminated
from ferroproc.failure import Failure
from ferroproc.protocol import ProcessProtocol

Gen = Generator[Any, Any, Any]


def result_of(d: Deferred[Any]) -> Any:
    """The result of a Deferred that must have fired with a success."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, f"{d!r} has not fired"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def failure_of(d: Deferred[Any]) -> Failure:
    """The failure of a Deferred that must have failed (and is handled now)."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, f"{d!r} has not fired"
    assert isinstance(box[0], Failure), f"expected a failure, got {box[0]!r}"
    return box[0]


def has_no_result(d: Deferred[Any]) -> bool:
    return not d.called or isinstance(d.result, Deferred)


# -- results, failures, return ----------------------------------------------


def test_return_returnValue_and_falling_off_the_end() -> None:
    @inlineCallbacks
    def plain(d: Deferred[int]) -> Gen:
        x = yield d
        return x + 1

    @inlineCallbacks
    def legacy(d: Deferred[int]) -> Gen:
        x = yield d
        returnValue(x * 10)

    @inlineCallbacks
    def nothing() -> Gen:
        yield 1

    d1: Deferred[int] = Deferred()
    out1 = plain(d1)
    assert has_no_result(out1)
    d1.callback(41)
    assert result_of(out1) == 42
    assert result_of(legacy(succeed(4))) == 40
    assert result_of(nothing()) is None


def test_plain_value_is_sent_back_at_once() -> None:
    @inlineCallbacks
    def gen() -> Gen:
        a = yield 5
        b = yield "text"
        return (a, b)

    assert result_of(gen()) == (5, "text")


def test_failure_is_raised_at_the_yield_and_can_be_caught() -> None:
    @inlineCallbacks
    def gen(d: Deferred[Any]) -> Gen:
        try:
            yield d
        except ZeroDivisionError as e:
            return f"caught {e}"
        return "not caught"

    d: Deferred[Any] = Deferred()
    out = gen(d)
    d.errback(ZeroDivisionError("OMG"))
    assert result_of(out) == "caught OMG"
    # And from a Deferred that had failed before it was yielded.
    assert result_of(gen(fail(ZeroDivisionError("early")))) == "caught early"


def test_exception_escaping_the_generator_fails_the_deferred() -> None:
    @inlineCallbacks
    def raises() -> Gen:
        yield succeed(None)
        raise KeyError("boom")

    @inlineCallbacks
    def passes_on(d: Deferred[Any]) -> Gen:
        yield d

    assert failure_of(raises()).check(KeyError)
    d: Deferred[Any] = Deferred()
    out = passes_on(d)
    d.errback(ValueError("from d"))
    f = failure_of(out)
    assert f.check(ValueError) and str(f.value) == "from d"


def test_runs_synchronously_up_to_the_first_pending_yield() -> None:
    steps: list[str] = []
    pending: Deferred[str] = Deferred()

    @inlineCallbacks
    def gen() -> Gen:
        steps.append("start")
        yield succeed(1)
        steps.append("after ready")
        got = yield pending
        steps.append(f"after pending {got}")

    out = gen()
    assert steps == ["start", "after ready"]
    assert has_no_result(out)
    pending.callback("x")
    assert steps == ["start", "after ready", "after pending x"]
    assert result_of(out) is None


def test_ten_thousand_ready_yields_do_not_recurse() -> None:
    depth: list[int] = []

    def stack_depth() -> int:
        frame, n = sys._getframe(), 0
        while frame is not None:
            frame, n = frame.f_back, n + 1  # type: ignore[assignment]
        return n

    @inlineCallbacks
    def gen() -> Gen:
        total = 0
        for i in range(10_000):
            total += yield succeed(i)
            total += yield 1
            if i % 2500 == 0:
                depth.append(stack_depth())
        return total

    assert 10_000 > sys.getrecursionlimit()
    assert result_of(gen()) == sum(range(10_000)) + 10_000
    assert len(set(depth)) == 1, f"the stack grew: {depth}"


def test_nested_generators_resume_in_order() -> None:
    order: list[tuple[str, int]] = []
    waiting: list[tuple[Deferred[int], int]] = []

    @inlineCallbacks
    def f1(x: int) -> Gen:
        order.append(("f1 enter", x))
        d: Deferred[int] = Deferred()
        waiting.append((d, x))
        x = yield d
        order.append(("f1 exit", x + 1))
        return x + 1

    @inlineCallbacks
    def f2(x: int) -> Gen:
        order.append(("f2 enter", x))
        x = yield f1(x)
        x = yield f1(x)
        order.append(("f2 exit", x + 2))
        return x + 2

    out = f2(1)
    while waiting:
        d, x = waiting.pop(0)
        d.callback(x)
    assert result_of(out) == 5
    assert order == [
        ("f2 enter", 1),
        ("f1 enter", 1),
        ("f1 exit", 2),
        ("f1 enter", 2),
        ("f1 exit", 3),
        ("f2 exit", 5),
    ]


def test_yielded_coroutine_is_awaited() -> None:
    async def double(d: Deferred[int]) -> int:
        return 2 * await d

    @inlineCallbacks
    def gen(d: Deferred[int]) -> Gen:
        return (yield double(d))

    d: Deferred[int] = Deferred()
    out = gen(d)
    d.callback(21)
    assert result_of(out) == 42


def test_returning_a_deferred_fails_with_a_named_type_error() -> None:
    @inlineCallbacks
    def gen() -> Gen:
        yield None
        returnValue(succeed(1))

    f = failure_of(gen())
    assert f.check(TypeError)
    assert "'test_returning_a_deferred_fails_with_a_named_type_error.<locals>.gen'" in str(f.value)


# -- the decorator -------------------------------------------------------------


def test_wraps_keeps_name_and_doc() -> None:
    @inlineCallbacks
    def fetchVersion(reactor: object) -> Gen:
        """Ask the child for its version."""
        yield None

    assert fetchVersion.__name__ == "fetchVersion"
    assert fetchVersion.__doc__ == "Ask the child for its version."
    assert fetchVersion.__wrapped__ is not None  # type: ignore[attr-defined]


def test_non_generator_functions_are_refused() -> None:
    def returns() -> int:
        return 5

    def uses_return_value() -> None:
        returnValue(5)

    async def coroutine() -> int:
        return 5

    with pytest.raises(TypeError, match=r"inlineCallbacks requires .*returns.* instead got 5"):
        inlineCallbacks(returns)()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"inlineCallbacks .*returnValue being used in a non-generator"):
        inlineCallbacks(uses_return_value)()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="coroutine function: use ensureDeferred"):
        inlineCallbacks(coroutine)()  # type: ignore[arg-type]


def test_returnValue_is_not_swallowed_by_except_exception() -> None:
    @inlineCallbacks
    def gen() -> Gen:
        yield None
        try:
            returnValue("kept")
        except Exception:  # noqa: BLE001 - the point of the test
            return "swallowed"

    assert result_of(gen()) == "kept"


def test_returnValue_from_a_helper_warns_and_still_returns() -> None:
    def mistakenHelper() -> None:
        returnValue(1)

    @inlineCallbacks
    def inline() -> Gen:
        yield None
        mistakenHelper()
        return 2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert result_of(inline()) == 1
    messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert messages == [
        "returnValue() in 'mistakenHelper' causing 'inline' to exit: "
        "returnValue should only be invoked by functions decorated with inlineCallbacks"
    ]


def test_runs_in_a_copy_of_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    pending: Deferred[None] = Deferred()

    @inlineCallbacks
    def gen() -> Gen:
        seen = [var.get()]
        var.set("inside")
        yield pending
        seen.append(var.get())
        return seen

    var.set("caller")
    out = gen()
    assert var.get() == "caller"
    var.set("changed later")
    pending.callback(None)
    assert result_of(out) == ["caller", "inside"]


def test_no_reference_cycle_keeps_arguments_alive() -> None:
    class Payload:
        pass

    @inlineCallbacks
    def echo(a: Payload) -> Gen:
        yield a
        return a

    obj = Payload()
    objRef = weakref.ref(obj)
    out = echo(obj)
    assert result_of(out) is obj
    outRef = weakref.ref(out)
    gc.disable()
    try:
        del obj, out
        assert objRef() is None
        assert outRef() is None
    finally:
        gc.enable()


# -- tracebacks ---------------------------------------------------------------


def test_internal_stop_iteration_and_return_do_not_leak_into_tracebacks() -> None:
    clock = task.Clock()

    @inlineCallbacks
    def returns_normally() -> Gen:
        yield task.deferLater(clock, 0)
        return 6

    @inlineCallbacks
    def returns_legacy() -> Gen:
        yield task.deferLater(clock, 0)
        returnValue(6)

    @inlineCallbacks
    def raises(inner: Any) -> Gen:
        try:
            yield inner()
            raise ValueError("boom after the inner one returned")
        except ValueError:
            return traceback.format_exc()

    outs = [raises(returns_normally), raises(returns_legacy)]
    clock.advance(0)
    for out in outs:
        tb = result_of(out)
        assert "StopIteration" not in tb
        assert "_DefGen_Return" not in tb
        assert "During handling of the above exception" not in tb
        assert "ValueError: boom after the inner one returned" in tb


def test_traceback_names_every_generator_in_the_chain() -> None:
    @inlineCallbacks
    def erroring() -> Gen:
        yield "forcing a generator"
        raise Exception("Error Marker")

    @inlineCallbacks
    def calling3() -> Gen:
        yield erroring()

    @inlineCallbacks
    def calling2() -> Gen:
        yield calling3()

    @inlineCallbacks
    def calling() -> Gen:
        yield calling2()

    tb = failure_of(calling()).getTraceback()
    for name in ("erroring", "calling3", "calling2", "calling"):
        assert f"in {name}\n" in tb
    assert "Error Marker" in tb


# -- cancellation ------------------------------------------------------------


def test_cancel_cascades_to_the_awaited_deferred() -> None:
    seen: list[Any] = []
    awaited: Deferred[Any] = Deferred()
    awaited.addErrback(lambda f: seen.append(f.check(CancelledError)) or f)

    @inlineCallbacks
    def gen() -> Gen:
        yield awaited

    out = gen()
    out.cancel()
    assert seen == [CancelledError]
    assert failure_of(out).check(CancelledError)


def test_cancel_through_stacked_generators() -> None:
    inner: Deferred[Any] = Deferred()
    first: Deferred[int] = Deferred()

    @inlineCallbacks
    def stacked() -> Gen:
        return (yield inner)

    @inlineCallbacks
    def outer() -> Gen:
        yield first
        return (yield stacked())

    out = outer()
    first.callback(1)
    out.cancel()
    assert inner.called
    assert failure_of(out).check(CancelledError)


def test_generator_may_translate_the_cancellation() -> None:
    class DontFail(Exception):
        pass

    awaited: Deferred[Any] = Deferred(lambda d: d.errback(DontFail(4321)))

    @inlineCallbacks
    def gen() -> Gen:
        try:
            yield awaited
        except DontFail as e:
            return e.args[0] - 1

    out = gen()
    out.cancel()
    assert result_of(out) == 4320


def test_cancel_waits_for_the_awaited_deferreds_own_chain() -> None:
    more: Deferred[int] = Deferred()

    def deferMore(f: Failure) -> Deferred[int]:
        f.trap(CancelledError)
        return more

    awaited: Deferred[int] = Deferred()
    awaited.addErrback(deferMore)

    @inlineCallbacks
    def gen() -> Gen:
        return (yield awaited) + 1

    out = gen()
    out.cancel()
    assert has_no_result(out)
    more.callback(6543)
    assert result_of(out) == 6544


def test_caught_cancellation_continues_and_a_second_cancel_reaches_the_next_wait() -> None:
    cancelled1: list[Deferred[object]] = []
    cancelled2: list[Deferred[object]] = []
    d1: Deferred[object] = Deferred(cancelled1.append)
    d2: Deferred[object] = Deferred(cancelled2.append)

    @inlineCallbacks
    def gen() -> Gen:
        try:
            yield d1
        except CancelledError:
            pass
        yield d2

    out = gen()
    out.cancel()
    assert cancelled1 == [d1] and cancelled2 == []
    assert has_no_result(out)
    out.cancel()
    assert cancelled2 == [d2]
    assert failure_of(out).check(CancelledError)


# -- real processes --------------------------------------------------------------


def test_children_in_sequence_give_a_combined_result() -> None:
    @inlineCallbacks
    def survey() -> Gen:
        greeting = yield utils.getProcessOutput("/bin/echo", ["hello"])
        code = yield utils.getProcessValue("/bin/sh", ["-c", "exit 3"])
        shout = yield utils.getProcessOutput(
            PY, ["-c", "import sys; print(sys.argv[1].upper(), end='')", greeting.decode().strip()]
        )
        out, err, last = yield utils.getProcessOutputAndValue(
            "/bin/sh", ["-c", 'echo "$1" >&2; exit "$2"', "sh", shout.decode(), str(code + 1)]
        )
        return (greeting, code, shout, out, err, last)

    assert run_reactor(survey(), timeout=20) == (b"hello\n", 3, b"HELLO", b"", b"HELLO\n", 4)


def test_children_in_parallel_with_gatherResults() -> None:
    @inlineCallbacks
    def parallel() -> Gen:
        outputs = yield gatherResults([utils.getProcessOutput("/bin/sh", ["-c", f"echo {n}"]) for n in range(4)])
        return b"".join(outputs)

    assert run_reactor(parallel(), timeout=20) == b"0\n1\n2\n3\n"


def test_child_error_output_is_raised_at_the_yield() -> None:
    @inlineCallbacks
    def gen() -> Gen:
        try:
            yield utils.getProcessOutput("/bin/sh", ["-c", "echo oops >&2"])
        except OSError as e:
            message = str(e)
            # Wait for the child's end before going on (nothing left behind).
            try:
                yield e.processEnded  # type: ignore[attr-defined]
            except ProcessDone:
                return message
        return "no error"

    assert run_reactor(gen(), timeout=20) == "got stderr: b'oops\\n'"


def test_child_killed_by_a_signal_fails_the_generator() -> None:
    @inlineCallbacks
    def gen() -> Gen:
        yield utils.getProcessOutputAndValue("/bin/sh", ["-c", "kill -9 $$"])
        return "unreachable"

    with pytest.raises(Failure) as info:
        run_reactor(gen(), timeout=20)
    # Twisted's getProcessOutputAndValue failure value: (out, err, signal).
    assert info.value.value == (b"", b"", signal.SIGKILL)


class _Sleeper(ProcessProtocol):
    """A child whose Deferred, once cancelled, kills it."""

    def __init__(self) -> None:
        self.result: Deferred[bytes] = Deferred(self._kill)
        self.ended: Deferred[None] = Deferred()

    def _kill(self, _: Deferred[bytes]) -> None:
        self.transport.signalProcess("KILL")

    def processEnded(self, reason: Failure) -> None:
        if not self.result.called:
            self.result.callback(b"finished")
        self.ended.errback(reason)


def test_cancelling_the_generator_kills_the_child_it_waits_for() -> None:
    sleeper = _Sleeper()
    reached: list[str] = []

    @inlineCallbacks
    def gen() -> Gen:
        reactor.spawnProcess(sleeper, "/bin/sleep", ["sleep", "10"])
        try:
            yield sleeper.result
        except CancelledError:
            reached.append("cancelled at the yield")
            raise

    out = gen().addTimeout(0.2, reactor)
    with pytest.raises(TimeoutError):
        run_reactor(out, timeout=10)
    assert reached == ["cancelled at the yield"]
    with pytest.raises(ProcessTerminated) as ended:
        run_reactor(sleeper.ended, timeout=10)
    assert ended.value.signal == signal.SIGKILL
