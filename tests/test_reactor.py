"""The reactor around the processes: callLater, callWhenRunning,
callFromThread, stop, and Ctrl-C in a program running the reactor."""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

import pytest
from engine_support import Recorder
from helpers import CHILDREN, PY, run_reactor

from ferroproc import reactor
from ferroproc.defer import Deferred
from ferroproc.error import AlreadyCalled, AlreadyCancelled, ProcessDone, ReactorNotRunning

CTRLC = str(CHILDREN / "engine_ctrlc.py")


# -- callLater -----------------------------------------------------------------


def test_call_later_runs_in_time_then_fifo_order() -> None:
    order: list[str] = []
    calls = [
        reactor.callLater(0.03, order.append, "c"),
        reactor.callLater(0, order.append, "a1"),
        reactor.callLater(0.01, order.append, "b"),
        reactor.callLater(0, order.append, "a2"),
        reactor.callLater(0, order.append, "a3"),
    ]
    run_reactor(lambda: len(order) == 5)
    assert order == ["a1", "a2", "a3", "b", "c"]
    assert not any(c.active() for c in calls)


def test_call_later_passes_args_and_kwargs() -> None:
    got: list[Any] = []
    reactor.callLater(0, lambda *a, **kw: got.append((a, kw)), 1, "two", three=3)
    run_reactor(lambda: bool(got))
    assert got == [((1, "two"), {"three": 3})]


def test_call_later_get_time_and_seconds() -> None:
    before = reactor.seconds()
    dc = reactor.callLater(5, lambda: None)
    try:
        assert abs(reactor.seconds() - time.time()) < 1
        assert before + 5 <= dc.getTime() <= reactor.seconds() + 5
        dc.delay(2)
        assert before + 7 <= dc.getTime() <= reactor.seconds() + 7
        dc.reset(60)
        assert reactor.seconds() + 59 <= dc.getTime() <= reactor.seconds() + 60
    finally:
        dc.cancel()


def test_cancel_and_active() -> None:
    ran: list[int] = []
    dc = reactor.callLater(0, ran.append, 1)
    assert dc.active()
    dc.cancel()
    assert not dc.active()
    run_reactor(lambda: True)
    assert ran == []
    for op in (dc.cancel, lambda: dc.delay(1), lambda: dc.reset(1)):
        with pytest.raises(AlreadyCancelled):
            op()


def test_already_called() -> None:
    ran: list[int] = []
    dc = reactor.callLater(0, ran.append, 1)
    run_reactor(lambda: bool(ran))
    assert not dc.active()
    for op in (dc.cancel, lambda: dc.delay(1), lambda: dc.reset(1)):
        with pytest.raises(AlreadyCalled):
            op()


def test_delay_and_reset_reorder_calls() -> None:
    order: list[str] = []
    first = reactor.callLater(0.01, order.append, "first")
    second = reactor.callLater(0.02, order.append, "second")
    first.delay(0.03)  # now at 0.04
    reset_me = reactor.callLater(30, order.append, "reset")
    reset_me.reset(0)
    run_reactor(lambda: len(order) == 3)
    assert order == ["reset", "second", "first"]
    assert not second.active()


def test_cancel_from_an_earlier_call() -> None:
    order: list[str] = []
    later = reactor.callLater(0.01, order.append, "later")
    reactor.callLater(0, lambda: (later.cancel(), order.append("canceller")))
    reactor.callLater(0.02, order.append, "end")
    run_reactor(lambda: "end" in order)
    assert order == ["canceller", "end"]


# -- callWhenRunning, stop -------------------------------------------------------


def test_call_when_running() -> None:
    got: list[Any] = []
    assert not reactor.running
    reactor.callWhenRunning(got.append, "queued")
    assert got == [], "not called before run()"

    def while_running() -> None:
        reactor.callWhenRunning(got.append, "immediate")
        got.append("after")

    reactor.callWhenRunning(while_running)
    run_reactor(lambda: len(got) == 3)
    assert got == ["queued", "immediate", "after"]


def test_stop_when_not_running() -> None:
    assert not reactor.running
    with pytest.raises(ReactorNotRunning):
        reactor.stop()


def test_run_again_after_stop() -> None:
    for _ in range(3):
        d: Deferred[None] = Deferred()
        reactor.callLater(0, d.callback, None)
        run_reactor(d)


# -- callFromThread --------------------------------------------------------------


def test_call_from_thread_wakes_a_sleeping_reactor() -> None:
    d: Deferred[Any] = Deferred()
    sent: dict[str, float] = {}

    def worker() -> None:
        # Give the reactor time to go to sleep (its only timer is 10 s away).
        time.sleep(0.2)
        sent["at"] = time.monotonic()
        reactor.callFromThread(lambda: d.callback(threading.current_thread()))

    thread = threading.Thread(target=worker)
    reactor.callWhenRunning(thread.start)
    ran_on = run_reactor(d, timeout=10)
    woke_after = time.monotonic() - sent["at"]
    thread.join()
    assert ran_on is threading.main_thread(), "the call runs on the reactor's thread"
    assert woke_after < 1.0, f"the reactor slept on for {woke_after:.2f}s"


def test_call_from_thread_many_threads() -> None:
    got: list[int] = []
    threads = [threading.Thread(target=lambda i=i: reactor.callFromThread(got.append, i)) for i in range(20)]
    reactor.callWhenRunning(lambda: [t.start() for t in threads])
    run_reactor(lambda: len(got) == 20)
    for t in threads:
        t.join()
    assert sorted(got) == list(range(20))


# -- Ctrl-C ----------------------------------------------------------------------


def test_ctrl_c_stops_a_running_reactor_cleanly() -> None:
    class P(Recorder):
        def outReceived(self, data: bytes) -> None:
            super().outReceived(data)
            if self.output() == b"running\n":
                self.sent_at = time.monotonic()
                self.transport.signalProcess("INT")

    proto = P()
    reactor.spawnProcess(proto, PY, [PY, CTRLC], env=None)
    run_reactor(proto.ended, timeout=15)
    assert proto.output() == b"running\nafter run\n", proto.output(2).decode(errors="replace")
    assert proto.ended_reason.check(ProcessDone), proto.output(2).decode(errors="replace")
    assert proto.output(2) == b"", "no traceback"
    assert time.monotonic() - proto.sent_at < 5


def test_call_from_thread_while_stopped_runs_on_next_run() -> None:
    got: list[str] = []
    thread = threading.Thread(target=reactor.callFromThread, args=(got.append, "queued"))
    thread.start()
    thread.join()
    assert got == []
    run_reactor(lambda: bool(got))
    assert got == ["queued"]


def test_children_survive_a_stopped_reactor() -> None:
    """A child still running when run() returns is handled when it runs again."""
    proto = Recorder(stdin=b"", close_stdin=False)
    transport = reactor.spawnProcess(proto, "/bin/cat", ["cat"])
    transport.write(b"first ")
    run_reactor(lambda: proto.output() == b"first ")
    # Stopped: write, close; nothing is delivered until the next run.
    transport.write(b"second")
    transport.closeStdin()
    run_reactor(proto.ended)
    assert proto.output() == b"first second"
    assert proto.ended_reason.check(ProcessDone)


# -- timers: non-finite and huge delays, compaction (hardening 5, 6, 24) ------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_delays_are_value_errors_naming_the_parameter(bad: float) -> None:
    call = reactor.callLater(10, lambda: None)
    try:
        with pytest.raises(ValueError, match="callLater: delay"):
            reactor.callLater(bad, lambda: None)
        with pytest.raises(ValueError, match="reset: secondsFromNow"):
            call.reset(bad)
        with pytest.raises(ValueError, match="delay: secondsLater"):
            call.delay(bad)
        with pytest.raises(ValueError, match="runOnce: timeout"):
            reactor.iterate(bad)
        assert call.active() and call.getTime() < reactor.seconds() + 11
    finally:
        call.cancel()


def test_huge_finite_delays_are_timers_that_never_come_due() -> None:
    fired: list[str] = []
    far = reactor.callLater(1e20, fired.append, "never")
    moved = reactor.callLater(0, fired.append, "moved")
    moved.reset(1e300)
    moved.delay(1e300)
    soon = reactor.callLater(0.01, fired.append, "soon")
    reactor.iterate(1e20)  # returns at the first due timer, not in 1e20 s
    run_reactor(lambda: "soon" in fired, 5)
    assert fired == ["soon"] and not soon.active()
    assert far.active() and moved.active()
    far.cancel()
    moved.cancel()


def test_looping_call_with_a_huge_interval() -> None:
    from ferroproc.task import LoopingCall

    calls: list[int] = []
    loop = LoopingCall(calls.append, 1)
    loop.start(1e20)  # runs now, then never again
    reactor.iterate(0)
    assert calls == [1]
    loop.stop()


def test_rescheduling_does_not_grow_memory() -> None:
    """2 M resets used to leave 2 M heap entries behind (+46 MiB)."""
    call = reactor.callLater(100, lambda: None)
    other = reactor.callLater(200, lambda: None)
    before = _rss()
    for i in range(500_000):
        call.reset(100 + i % 7)
    for _ in range(50_000):
        reactor.callLater(50, lambda: None).cancel()
    grown = _rss() - before
    call.cancel()
    other.cancel()
    assert grown < 8 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


_RELEASED_ON_THE_STOP_PATH = """
import weakref
from ferroproc import reactor

holder = []
finalized = []

def first():
    # Cancels the call due next, which the turn has already taken off the
    # queue, then stops the reactor the hard way.
    holder.pop().cancel()
    raise KeyboardInterrupt

reactor.callLater(0, first)
later = reactor.callLater(0, print, "never runs")
# When the last reference to it goes, Python code runs, and it needs the
# timers (as any callback that calls callLater).
weakref.finalize(later, lambda: finalized.append(reactor.callLater(60, print).cancel()))
holder.append(later)
del later
try:
    reactor.run(installSignalHandlers=False)
except KeyboardInterrupt:
    print("stopped")
print("released:", len(finalized))
"""


def test_a_call_dropped_while_stopping_is_released_after_the_timers_lock() -> None:
    """A turn stopped by KeyboardInterrupt puts its remaining due calls
    back; one cancelled meanwhile is let go, and its last reference may run
    Python code that takes the timers (this deadlocked under the lock)."""
    import subprocess

    try:
        r = subprocess.run([PY, "-c", _RELEASED_ON_THE_STOP_PATH], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("deadlocked: the call was released under the timers lock")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["stopped", "released:", "1"]
