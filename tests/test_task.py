"""ferroproc.task (react, deferLater, LoopingCall, Clock) and Deferred.addTimeout.

Exact timing is checked with ``task.Clock``; the real reactor and real
children are used where it matters: ``react`` running a program in a child
Python (its exit code), a LoopingCall that spawns a child per tick, and
``addTimeout`` on a Deferred waiting for ``sleep 10``.
"""

from __future__ import annotations

import logging
import os
import signal
import textwrap
from collections.abc import Callable, Generator
from typing import Any

import pytest
from helpers import PY, iterate_until, our_children, run_reactor

from ferroproc import reactor, task, utils
from ferroproc.defer import CancelledError, Deferred, TimeoutError, inlineCallbacks, succeed
from ferroproc.error import AlreadyCalled, AlreadyCancelled, ProcessDone
from ferroproc.failure import Failure
from ferroproc.interfaces import IDelayedCall, IReactorTime

Gen = Generator[Any, Any, Any]


def outcome(d: Deferred[Any]) -> Any:
    """What a fired Deferred holds now (result or Failure), handled."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, f"{d!r} has not fired"
    return box[0]


# -- react ----------------------------------------------------------------------

REACT_PROGRAM = textwrap.dedent(
    """
    import sys
    from ferroproc import defer, task, utils

    @defer.inlineCallbacks
    def main(reactor, mode, status):
        code = yield utils.getProcessValue("/bin/sh", ["-c", "exit " + status])
        if mode == "exit":
            raise SystemExit(code)
        if code != 0:
            raise RuntimeError(f"child exited {code}")
        print(f"child exited {code}", flush=True)

    task.react(main, sys.argv[1:])
    """
)


@pytest.mark.parametrize(
    ("mode", "status", "exitCode"),
    [("check", "0", 0), ("check", "3", 1), ("exit", "0", 0), ("exit", "5", 5)],
)
def test_react_program_exits_with_the_outcome_of_main(mode: str, status: str, exitCode: int) -> None:
    d = utils.getProcessOutputAndValue(PY, ["-c", REACT_PROGRAM, mode, status], env=None)
    out, err, code = run_reactor(d, timeout=30)
    assert code == exitCode, err.decode()
    if mode == "check" and status == "0":
        assert out == b"child exited 0\n"
    if mode == "check" and status != "0":
        # The failure is logged with its traceback (logging's last-resort
        # handler writes it to stderr).
        assert b"main function encountered error" in err
        assert b"RuntimeError: child exited 3" in err
    else:
        assert err == b""


def triggers() -> dict[Any, Any]:
    return {key: list(calls) for key, calls in reactor._triggers.items() if calls}


def test_react_success_exits_0_and_passes_argv() -> None:
    seen: list[Any] = []

    def main(r: Any, *argv: str) -> Deferred[None]:
        seen.append((r, argv))
        return utils.getProcessOutput("/bin/echo", list(argv)).addCallback(seen.append)

    before = triggers()
    with pytest.raises(SystemExit) as exited:
        task.react(main, ["a", "b"], _reactor=reactor)
    assert exited.value.code == 0
    assert seen == [(reactor, ("a", "b")), b"a b\n"]
    assert not reactor.running
    assert triggers() == before, "react left its shutdown trigger on the reactor"


def test_react_failure_is_logged_and_exits_1(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ferroproc")

    @inlineCallbacks
    def main(r: Any) -> Gen:
        code = yield utils.getProcessValue("/bin/sh", ["-c", "exit 2"])
        raise ValueError(f"status {code}")

    with pytest.raises(SystemExit) as exited:
        task.react(main, _reactor=reactor)
    assert exited.value.code == 1
    records = [r.getMessage() for r in caplog.records if r.name == "ferroproc"]
    assert len(records) == 1
    assert records[0].startswith("main function encountered error\n")
    assert "ValueError: status 2" in records[0]


def test_react_system_exit_code_is_used_without_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ferroproc")

    async def main(r: Any) -> None:
        code = await utils.getProcessValue("/bin/sh", ["-c", "exit 7"])
        raise SystemExit(code)

    with pytest.raises(SystemExit) as exited:
        task.react(main, _reactor=reactor)
    assert exited.value.code == 7
    assert not [r for r in caplog.records if r.name == "ferroproc"]


def test_react_main_that_has_already_fired_still_runs_and_stops_the_reactor() -> None:
    ran: list[bool] = []
    reactor.callWhenRunning(lambda: ran.append(reactor.running))
    with pytest.raises(SystemExit) as exited:
        task.react(lambda r: succeed("done"), _reactor=reactor)
    assert exited.value.code == 0
    assert ran == [True]
    assert not reactor.running


def test_react_main_raising_propagates_before_the_reactor_runs() -> None:
    def main(r: Any) -> Deferred[None]:
        raise KeyError("no such thing")

    before = triggers()
    with pytest.raises(KeyError):
        task.react(main, _reactor=reactor)
    assert triggers() == before


# -- deferLater -----------------------------------------------------------------


def test_deferLater_fires_at_the_time_with_the_result() -> None:
    clock = task.Clock()
    d = task.deferLater(clock, 2.5, lambda a, b=0: a * 10 + b, 4, b=2)
    clock.advance(2.4)
    assert not d.called
    clock.advance(0.1)
    assert outcome(d) == 42
    assert task.deferLater(clock, 0).called is False
    clock.advance(0)
    assert clock.getDelayedCalls() == []


def test_deferLater_without_a_callable_fires_with_none() -> None:
    clock = task.Clock()
    d = task.deferLater(clock, 1)
    clock.advance(1)
    assert outcome(d) is None


def test_deferLater_error_and_deferred_results() -> None:
    clock = task.Clock()
    failing = task.deferLater(clock, 1, lambda: 1 / 0)
    inner: Deferred[str] = Deferred()
    waiting = task.deferLater(clock, 1, lambda: inner)
    clock.advance(1)
    assert outcome(failing).check(ZeroDivisionError)
    assert not waiting.called or isinstance(waiting.result, Deferred)
    inner.callback("later")
    assert outcome(waiting) == "later"


def test_deferLater_cancel_unschedules_the_call() -> None:
    clock = task.Clock()
    called: list[int] = []
    d = task.deferLater(clock, 1, called.append, 1)
    d.cancel()
    assert clock.getDelayedCalls() == []
    assert outcome(d).check(CancelledError)
    clock.advance(5)
    assert called == []


def test_deferLater_with_the_reactor_runs_a_child() -> None:
    d = task.deferLater(reactor, 0.01, utils.getProcessOutput, "/bin/echo", ["later"])
    assert run_reactor(d, timeout=10) == b"later\n"


# -- LoopingCall with a Clock ------------------------------------------------------


def clocked(f: Callable[..., object], *a: Any) -> tuple[task.LoopingCall, task.Clock]:
    loop = task.LoopingCall(f, *a)
    loop.clock = clock = task.Clock()
    return loop, clock


def test_loop_runs_on_the_interval_grid() -> None:
    times: list[float] = []
    loop, clock = clocked(lambda: times.append(clock.seconds()))
    d = loop.start(1.0)
    assert loop.running and loop.interval == 1.0 and loop.starttime == 0.0
    clock.pump([0.5, 0.5, 1.0, 0.25, 0.75])
    assert times == [0.0, 1.0, 2.0, 3.0]
    loop.stop()
    assert not loop.running
    assert outcome(d) is loop
    assert clock.getDelayedCalls() == []


def test_loop_not_now_waits_one_interval() -> None:
    times: list[float] = []
    loop, clock = clocked(lambda: times.append(clock.seconds()))
    loop.start(2.0, now=False)
    assert times == []
    clock.advance(2.0)
    assert times == [2.0]
    loop.stop()


def test_late_call_skips_the_missed_points() -> None:
    times: list[float] = []
    loop, clock = clocked(lambda: times.append(clock.seconds()))
    loop.start(1.0)
    clock.advance(3.5)
    assert times == [0.0, 3.5]
    assert [c.getTime() for c in clock.getDelayedCalls()] == [4.0]
    loop.stop()


def test_withCount_reports_missed_intervals() -> None:
    counts: list[int] = []
    loop = task.LoopingCall.withCount(counts.append)
    loop.clock = clock = task.Clock()
    loop.start(1.0)
    clock.advance(1.0)
    clock.advance(3.0)
    clock.advance(1.0)
    assert counts == [1, 1, 3, 1]
    loop.stop()


def test_interval_zero_runs_as_often_as_the_clock_allows() -> None:
    calls: list[int] = []

    def tick() -> None:
        calls.append(len(calls))
        if len(calls) == 3:
            loop.stop()

    loop, clock = clocked(tick)
    d = loop.start(0, now=False)
    clock.advance(0)
    assert calls == [0, 1, 2]
    assert outcome(d) is loop


def test_error_in_f_ends_the_loop_and_fails_the_start_deferred() -> None:
    calls: list[int] = []

    def f() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("third call")

    loop, clock = clocked(f)
    d = loop.start(1.0)
    clock.pump([1.0, 1.0, 1.0, 1.0])
    assert len(calls) == 3
    assert not loop.running
    assert clock.getDelayedCalls() == []
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(RuntimeError)


def test_deferred_from_f_is_waited_for() -> None:
    pending: list[Deferred[None]] = []
    times: list[float] = []

    def f() -> Deferred[None]:
        times.append(clock.seconds())
        pending.append(Deferred())
        return pending[-1]

    loop, clock = clocked(f)
    d = loop.start(1.0)
    clock.advance(5.0)
    assert times == [0.0]  # still waiting for the first Deferred
    assert clock.getDelayedCalls() == []
    pending[0].callback(None)  # at 5.0: the next call goes on the grid, at 6.0
    clock.advance(1.0)
    assert times == [0.0, 6.0]
    loop.stop()  # f's Deferred has not fired: the loop ends when it does
    assert not d.called
    pending[1].callback(None)
    assert outcome(d) is loop
    assert clock.getDelayedCalls() == []


def test_failing_deferred_from_f_fails_the_loop() -> None:
    inner: Deferred[None] = Deferred()
    loop, _ = clocked(lambda: inner)
    d = loop.start(1.0)
    inner.errback(OSError("child failed"))
    assert not loop.running
    assert outcome(d).check(OSError)


def test_stop_inside_f_and_start_again() -> None:
    calls: list[float] = []

    def f() -> None:
        calls.append(clock.seconds())
        if len(calls) == 2:
            loop.stop()

    loop, clock = clocked(f)
    d1 = loop.start(1.0)
    clock.advance(1.0)
    assert outcome(d1) is loop
    d2 = loop.start(1.0, now=False)
    clock.advance(1.0)
    assert calls == [0.0, 1.0, 2.0]
    loop.stop()
    assert outcome(d2) is loop


def test_reset_restarts_the_interval() -> None:
    times: list[float] = []
    loop, clock = clocked(lambda: times.append(clock.seconds()))
    loop.start(2.0)
    clock.advance(1.5)
    loop.reset()
    clock.advance(1.0)
    assert times == [0.0]
    clock.advance(1.0)
    assert times == [0.0, 3.5]
    loop.stop()


def test_misuse_is_refused() -> None:
    loop, _ = clocked(lambda: None)
    with pytest.raises(ValueError, match="interval must be >= 0"):
        loop.start(-1)
    with pytest.raises(AssertionError):
        loop.stop()
    loop.start(1.0)
    with pytest.raises(AssertionError):
        loop.start(1.0)
    loop.stop()


def test_loop_defaults_and_repr() -> None:
    def poll(path: str, *, limit: int) -> None:
        pass

    loop = task.LoopingCall(poll, "/run/x", limit=3)
    assert loop.clock is reactor
    assert (loop.f, loop.a, loop.kw) == (poll, ("/run/x",), {"limit": 3})
    assert loop.interval is None and not loop.running and loop.call is None
    assert repr(loop) == ("LoopingCall<None>(test_loop_defaults_and_repr.<locals>.poll, *('/run/x',), **{'limit': 3})")


# -- LoopingCall with the reactor -----------------------------------------------------


def test_loop_on_the_reactor_runs_one_child_per_tick_without_overlap() -> None:
    state = {"active": 0, "most": 0, "ticks": 0}

    def done(code: int | None) -> None:
        state["active"] -= 1
        assert code == 0
        if state["ticks"] == 3:
            loop.stop()

    def tick() -> Deferred[None]:
        state["ticks"] += 1
        state["active"] += 1
        state["most"] = max(state["most"], state["active"])
        return utils.getProcessValue(PY, ["-c", "pass"]).addCallback(done)

    loop = task.LoopingCall(tick)
    d = loop.start(0.01)
    assert run_reactor(d, timeout=30) is loop
    assert state == {"active": 0, "most": 1, "ticks": 3}


# -- Clock --------------------------------------------------------------------------


def test_clock_runs_due_calls_in_time_then_scheduling_order() -> None:
    clock = task.Clock()
    order: list[str] = []
    clock.callLater(2, order.append, "c")
    clock.callLater(1, order.append, "a1")
    clock.callLater(1, order.append, "a2")
    clock.callLater(1.5, lambda: clock.callLater(0, order.append, "b"))
    assert clock.seconds() == 0.0
    clock.advance(1)
    assert order == ["a1", "a2"]
    clock.advance(1)
    # advance() sets the time first: the call made at 1.5 is due at 2.0,
    # after "c", which was scheduled for 2.0 earlier.
    assert order == ["a1", "a2", "c", "b"]
    assert clock.seconds() == 2.0 and clock.getDelayedCalls() == []


def test_clock_call_cancel_reset_delay() -> None:
    clock = task.Clock()
    ran: list[str] = []
    call = clock.callLater(5, ran.append, "x")
    assert call.active() and call.getTime() == 5
    call.delay(2)
    assert call.getTime() == 7
    clock.advance(1)
    call.reset(1)
    assert call.getTime() == 2
    clock.advance(1)
    assert ran == ["x"] and not call.active() and call.called
    with pytest.raises(AlreadyCalled):
        call.cancel()
    other = clock.callLater(1, ran.append, "y")
    other.cancel()
    assert other.cancelled and clock.getDelayedCalls() == []
    for change in (other.cancel, lambda: other.reset(1), lambda: other.delay(1)):
        with pytest.raises(AlreadyCancelled):
            change()


def test_clock_error_propagates_and_later_calls_stay_pending() -> None:
    clock = task.Clock()
    clock.callLater(1, lambda: 1 / 0)
    later = clock.callLater(2, lambda: None)
    with pytest.raises(ZeroDivisionError):
        clock.advance(3)
    assert clock.getDelayedCalls() == [later]
    clock.advance(0)
    assert not later.active()


def test_clock_provides_the_time_interfaces() -> None:
    clock = task.Clock()
    assert isinstance(clock, IReactorTime)
    assert isinstance(clock.callLater(1, print), IDelayedCall)


# -- Deferred.addTimeout ---------------------------------------------------------------


def test_timeout_cancels_and_becomes_TimeoutError() -> None:
    clock = task.Clock()
    seenBefore: list[Any] = []
    d: Deferred[str] = Deferred()
    d.addErrback(lambda f: seenBefore.append(f.type) or f)
    assert d.addTimeout(5, clock) is d
    clock.advance(4.9)
    assert not d.called
    clock.advance(0.1)
    failure = outcome(d)
    assert failure.check(TimeoutError)
    assert str(failure.value) == "Deferred timed out after 5 seconds"
    # Callbacks added before addTimeout see the cancellation itself.
    assert seenBefore == [CancelledError]
    assert not isinstance(failure.value, OSError)


def test_firing_first_cancels_the_timer() -> None:
    clock = task.Clock()
    d: Deferred[str] = Deferred()
    d.addTimeout(5, clock)
    assert len(clock.getDelayedCalls()) == 1
    d.callback("in time")
    assert clock.getDelayedCalls() == []
    assert outcome(d) == "in time"
    ready = succeed("already").addTimeout(5, clock)
    assert clock.getDelayedCalls() == []
    assert outcome(ready) == "already"


def test_other_cancel_is_not_a_timeout_and_canceller_results_pass() -> None:
    clock = task.Clock()
    converted: list[Any] = []
    d: Deferred[str] = Deferred()
    d.addTimeout(5, clock, onTimeoutCancel=lambda r, t: converted.append(r))
    d.cancel()
    assert outcome(d).check(CancelledError)
    assert converted == [] and clock.getDelayedCalls() == []

    answered: Deferred[str] = Deferred(lambda d: d.callback("answered on cancel"))
    answered.addTimeout(1, clock)
    clock.advance(1)
    assert outcome(answered) == "answered on cancel"


def test_onTimeoutCancel_replaces_the_conversion() -> None:
    clock = task.Clock()
    calls: list[Any] = []

    def onTimeout(result: Failure, timeout: float) -> str:
        calls.append((result.type, timeout))
        return "fallback"

    d: Deferred[str] = Deferred()
    d.addTimeout(0.5, clock, onTimeout)
    clock.advance(0.5)
    assert outcome(d) == "fallback"
    assert calls == [(CancelledError, 0.5)]


def test_timeout_on_a_sleeping_child_then_kill_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ferroproc")
    before = {pid for pid, _ in our_children()}
    d = utils.getProcessOutput("/bin/sleep", ["10"]).addTimeout(0.2, reactor)
    with pytest.raises(TimeoutError):
        run_reactor(d, timeout=10)
    # getProcessOutput's Deferred has no canceller: the child is still there.
    sleepers = [pid for pid, _ in our_children() if pid not in before]
    assert len(sleepers) == 1
    os.kill(sleepers[0], signal.SIGKILL)
    assert iterate_until(lambda: not [p for p, _ in our_children() if p not in before], 10)
    # Its late end is dropped quietly by the cancelled Deferred.
    assert not [r for r in caplog.records if r.name == "ferroproc"]


class RecordingClock:
    """The reactor's time, remembering the timers asked for."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def seconds(self) -> float:
        return reactor.seconds()

    def callLater(self, delay: float, f: Callable[..., object], *args: Any, **kw: Any) -> Any:
        call = reactor.callLater(delay, f, *args, **kw)
        self.calls.append(call)
        return call


def test_child_finishing_in_time_cancels_the_timer() -> None:
    clock = RecordingClock()
    d = utils.getProcessOutput("/bin/echo", ["quick"]).addTimeout(30, clock)
    assert run_reactor(d, timeout=10) == b"quick\n"
    assert len(clock.calls) == 1 and not clock.calls[0].active()


def test_timeout_with_a_canceller_that_kills_the_child() -> None:
    from ferroproc.protocol import ProcessProtocol

    class Sleeper(ProcessProtocol):
        def __init__(self) -> None:
            self.d: Deferred[None] = Deferred(lambda _: self.transport.signalProcess("KILL"))
            self.ended: Deferred[None] = Deferred()

        def processEnded(self, reason: Failure) -> None:
            if not self.d.called:
                self.d.errback(reason)
            self.ended.errback(reason)

    sleeper = Sleeper()
    reactor.spawnProcess(sleeper, "/bin/sleep", ["sleep", "10"])
    with pytest.raises(TimeoutError):
        run_reactor(sleeper.d.addTimeout(0.2, reactor), timeout=10)
    with pytest.raises(Exception) as ended:
        run_reactor(sleeper.ended, timeout=10)
    assert not isinstance(ended.value, ProcessDone)
    assert ended.value.signal == signal.SIGKILL  # type: ignore[attr-defined]


def test_sys_modules_stay_lean() -> None:
    """task and the new defer names import nothing heavy."""
    code = (
        "import sys; import ferroproc.task, ferroproc.defer; "
        "print(sorted(m for m in ('asyncio', 'inspect', 'traceback', 'logging') if m in sys.modules))"
    )
    d = utils.getProcessOutput(PY, ["-c", code], env=None)
    assert run_reactor(d, timeout=30) == b"[]\n"
