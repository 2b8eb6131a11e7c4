"""Cancelling stops the child (decision 18): the utilities' Deferreds, however
they are cancelled, under every host.

The witness is the process table, never the library's word: each child
records its pid (and its grandchild's) in files once it runs, and a test
passes only when those processes are gone: the child reaped by us (no
zombie left either), the grandchild no longer running. The conftest's
``no_leaks`` then checks that nothing else was left behind.

The Deferred fails with ``CancelledError`` at once (``addTimeout``: its
``TimeoutError``), while the child may still be in its grace: the tests with
a child that ignores SIGTERM see it still running right after the cancel,
then gone once the reactor has sent SIGKILL and reaped it.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import signal
import time
from collections.abc import Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import alive, iterate_until, our_children

from ferroproc import reactor, utils
from ferroproc.defer import CancelledError, Deferred, ensureDeferred, inlineCallbacks
from ferroproc.defer import TimeoutError as DeferredTimeoutError
from ferroproc.failure import Failure
from ferroproc.pipeline import getPipelineOutput

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def record(value: str, path: Path) -> str:
    """Shell code that writes ``value`` to ``path`` whole (a reader never
    sees the file half written)."""
    return f"echo {value} > {path}.tmp; mv {path}.tmp {path}"


class Child:
    """A ``sh -c`` child that writes its pid to ``pid`` once it runs, then
    sleeps; with ``grandchild``, it first starts ``sleep`` in the background
    (pid in ``grandchild``) and waits for it; with ``ignoreTerm``, it and
    its grandchild ignore SIGTERM (only SIGKILL ends them)."""

    def __init__(self, tmp: Path, *, ignoreTerm: bool = False, grandchild: bool = False) -> None:
        self.pidFile = tmp / "pid"
        self.grandchildFile = tmp / "grandchild" if grandchild else None
        script = "trap '' TERM; " if ignoreTerm else ""
        if self.grandchildFile is not None:
            script += f"sleep 60 & {record('$!', self.grandchildFile)}; "
        script += f"{record('$$', self.pidFile)}; "
        script += "wait" if grandchild else "exec sleep 60"
        self.args = ["-c", script]

    def started(self) -> bool:
        files = [self.pidFile] if self.grandchildFile is None else [self.pidFile, self.grandchildFile]
        return all(f.exists() for f in files)

    @property
    def pid(self) -> int:
        return int(self.pidFile.read_text())

    @property
    def grandchild(self) -> int | None:
        return None if self.grandchildFile is None else int(self.grandchildFile.read_text())

    def gone(self) -> bool:
        """The child is reaped (not even a zombie of ours) and the
        grandchild, if any, no longer runs."""
        if self.pid in {pid for pid, _ in our_children()}:
            return False
        grandchild = self.grandchild
        return grandchild is None or not alive(grandchild)

    def running(self) -> bool:
        """The child still runs (not a zombie)."""
        return alive(self.pid)


def failure_now(d: Deferred[Any]) -> Failure:
    """The failure ``d`` has fired with already (cancelling fires at once)."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    assert isinstance(box[0], Failure), f"expected a failure, got {box[0]!r}"
    return box[0]


def turn_until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    assert iterate_until(pred, timeout), f"timed out after {timeout}s waiting for {pred}"


def exit_seen() -> bool:
    """The reactor's only process has exited (its protocol got
    ``processExited``: the transport's pid is gone) but not ended."""
    processes = reactor._engine.processes()
    return len(processes) == 1 and processes[0].pid is None


# -- the four utilities, under ferroproc's reactor ---------------------------------

UTILITIES: dict[str, Callable[..., Deferred[Any]]] = {
    "getProcessOutput": utils.getProcessOutput,
    "getProcessValue": utils.getProcessValue,
    "getProcessOutputAndValue": utils.getProcessOutputAndValue,
    "getProcessResult": utils.getProcessResult,
}


@pytest.fixture(params=list(UTILITIES))
def utility(request: pytest.FixtureRequest) -> Callable[..., Deferred[Any]]:
    return UTILITIES[request.param]


def test_cancel_stops_the_child(utility: Callable[..., Deferred[Any]], tmp_path: Path) -> None:
    child = Child(tmp_path)
    d = utility("sh", child.args, env=None)
    turn_until(child.started)
    d.cancel()
    assert failure_now(d).check(CancelledError)
    turn_until(child.gone)


def test_add_timeout_stops_the_child(utility: Callable[..., Deferred[Any]], tmp_path: Path) -> None:
    child = Child(tmp_path)
    d = utility("sh", child.args, env=None)
    turn_until(child.started)
    d.addTimeout(0.05, reactor)
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    turn_until(lambda: bool(outcome))
    assert isinstance(outcome[0], Failure) and outcome[0].check(DeferredTimeoutError)
    turn_until(child.gone)


def test_cancel_fires_at_once_and_sigkill_follows_the_grace(
    utility: Callable[..., Deferred[Any]], tmp_path: Path
) -> None:
    child = Child(tmp_path, ignoreTerm=True)
    d = utility("sh", child.args, env=None, killGrace=0.3)
    turn_until(child.started)
    d.cancel()
    assert failure_now(d).check(CancelledError)
    assert child.running(), "SIGTERM is ignored: only the grace's SIGKILL may end it"
    turn_until(child.gone)


@pytest.mark.parametrize("ignoreTerm", [False, True], ids=["term", "kill"])
@pytest.mark.parametrize("group", ["processGroup", "newSession"])
def test_cancel_stops_the_whole_group(tmp_path: Path, group: str, ignoreTerm: bool) -> None:
    child = Child(tmp_path, grandchild=True, ignoreTerm=ignoreTerm)
    d = utils.getProcessResult("sh", child.args, env=None, killGrace=0.3, **{group: True})  # type: ignore[arg-type]
    turn_until(child.started)
    d.cancel()
    assert failure_now(d).check(CancelledError)
    turn_until(child.gone)


def test_cancel_after_the_exit_stops_the_group_left_holding_the_pipes(tmp_path: Path) -> None:
    # The child has exited; its grandchild, in the group it led, holds the
    # pipes and ignores SIGTERM. The leader is held unreaped while the pipes
    # are open, so the group can still be signalled: SIGTERM, then SIGKILL.
    marker = tmp_path / "grandchild"
    script = f"trap '' TERM; sleep 60 & {record('$!', marker)}"
    d = utils.getProcessResult("sh", ["-c", script], env=None, killGrace=0.3, processGroup=True)
    turn_until(lambda: marker.exists() and exit_seen())
    grandchild = int(marker.read_text())
    d.cancel()
    assert failure_now(d).check(CancelledError)
    turn_until(lambda: not alive(grandchild) and not our_children())


def test_cancel_after_the_exit_closes_pipes_a_stranger_holds(tmp_path: Path) -> None:
    # Without a group, what holds the pipes after the child's exit is not
    # ours to signal (decision 17): our ends are closed, the child is reaped.
    marker = tmp_path / "grandchild"
    script = f"sleep 60 & {record('$!', marker)}"
    d = utils.getProcessOutputAndValue("sh", ["-c", script], env=None)
    turn_until(marker.exists)
    grandchild = int(marker.read_text())
    try:
        turn_until(exit_seen)
        d.cancel()
        assert failure_now(d).check(CancelledError)
        # Our ends closed, so the process left the reactor, although the
        # grandchild still holds the child's ends.
        turn_until(lambda: not reactor._engine.processes() and not our_children())
        assert alive(grandchild), "a process that is not ours was signalled"
    finally:
        os.kill(grandchild, signal.SIGKILL)


def test_cancel_after_the_result_changes_nothing() -> None:
    d = utils.getProcessOutput("echo", ["done"], env=None)
    out: list[Any] = []
    d.addBoth(out.append)
    turn_until(lambda: bool(out))
    d.cancel()
    assert out == [b"done\n"]


# -- chains: coroutines and inlineCallbacks, under ferroproc's reactor --------------


def test_cancelling_a_coroutine_stops_the_child_it_awaits(tmp_path: Path) -> None:
    child = Child(tmp_path, grandchild=True)
    caught: list[BaseException] = []

    async def work() -> Any:
        try:
            return await utils.getProcessResult("sh", child.args, env=None, processGroup=True)
        except CancelledError as e:
            caught.append(e)
            raise

    outer = ensureDeferred(work())
    turn_until(child.started)
    outer.cancel()
    assert failure_now(outer).check(CancelledError)
    assert caught, "the coroutine saw the CancelledError at its await"
    turn_until(child.gone)


def test_cancelling_inline_callbacks_stops_the_child_it_waits_for(tmp_path: Path) -> None:
    child = Child(tmp_path)

    @inlineCallbacks
    def work() -> Generator[Deferred[Any], Any, Any]:
        out = yield utils.getProcessOutput("sh", child.args, env=None)
        return out

    outer = work()
    turn_until(child.started)
    outer.cancel()
    assert failure_now(outer).check(CancelledError)
    turn_until(child.gone)


def test_a_timeout_on_a_chain_stops_the_child(tmp_path: Path) -> None:
    child = Child(tmp_path)

    async def work() -> Any:
        return await utils.getProcessValue("sh", child.args, env=None)

    outer = ensureDeferred(work()).addTimeout(0.2, reactor)
    outcome: list[Any] = []
    outer.addBoth(outcome.append)
    turn_until(lambda: bool(outcome))
    assert isinstance(outcome[0], Failure) and outcome[0].check(DeferredTimeoutError)
    turn_until(child.gone)


# -- asyncio: asyncio's loop, ferroproc's and uvloop ----------------------------------


async def _nothing() -> None:
    pass


def _runners() -> list[Any]:
    import ferroproc.asyncio as fa

    out = [pytest.param(asyncio.run, id="asyncio"), pytest.param(fa.run, id="ferroproc-loop")]
    if HAVE_UVLOOP:
        import uvloop

        # uvloop keeps a pipe open for the process's life once a loop ran:
        # open it now, so that no_leaks does not count it against a test.
        uvloop.run(_nothing())
        out.append(pytest.param(uvloop.run, id="uvloop"))
    return out


Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=_runners())
def run(request: pytest.FixtureRequest) -> Runner:
    return request.param  # type: ignore[no-any-return]


async def until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (the loop running, so it drives the reactor) until ``pred()``."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {pred}"
        await asyncio.sleep(0.01)


def test_asyncio_wait_for_stops_the_child(run: Runner, tmp_path: Path) -> None:
    """The issue's case: ``asyncio.wait_for`` on a utility times out."""
    child = Child(tmp_path)

    async def main() -> None:
        d = utils.getProcessOutputAndValue("sh", child.args, env=None)
        await until(child.started)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(d, 0.05)
        await until(child.gone)

    run(main())


def test_asyncio_task_cancel_stops_the_group(run: Runner, tmp_path: Path) -> None:
    child = Child(tmp_path, grandchild=True, ignoreTerm=True)

    async def main() -> None:
        async def job() -> Any:
            return await utils.getProcessResult("sh", child.args, env=None, newSession=True, killGrace=0.3)

        task = asyncio.ensure_future(job())
        await until(child.started)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert child.running(), "the task's CancelledError does not wait for the grace"
        await until(child.gone)

    run(main())


def test_asyncio_wait_for_stops_a_pipeline(run: Runner, tmp_path: Path) -> None:
    child = Child(tmp_path)

    async def main() -> None:
        d = getPipelineOutput([["sh", *child.args], ["cat"]], env=None)
        await until(child.started)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(d, 0.05)
        await until(child.gone)

    run(main())


# -- Twisted's reactors (ferroproc.twisted) -------------------------------------------


@pytest.fixture(params=["select", "asyncio"])
def twisted_reactor(request: pytest.FixtureRequest) -> Iterator[Any]:
    pytest.importorskip("twisted", reason="Twisted is not installed: pip install 'ferroproc[twisted]'")
    from test_twisted_host import _dispose, _make_reactor

    import ferroproc.twisted

    was = ferroproc.twisted.installed()
    ferroproc.twisted.install()
    r = _make_reactor(request.param)
    try:
        yield r
    finally:
        _dispose(r)
        del r
        gc.collect()
        if not was:
            ferroproc.twisted.uninstall()


def run_twisted(r: Any, scenario: Callable[[], Coroutine[Any, Any, None]], timeout: float = 20.0) -> None:
    """Run Twisted's reactor ``r`` until the coroutine ``scenario()`` (driven
    by ferroproc's ensureDeferred) is done; raise what it raised."""
    out: list[Any] = []

    def start() -> None:
        ensureDeferred(scenario()).addBoth(lambda result: (out.append(result), r.stop()))

    r.callWhenRunning(start)
    guard = r.callLater(timeout, r.stop)
    r.run(installSignalHandlers=False)
    if guard.active():
        guard.cancel()
    assert out, f"Twisted's reactor timed out after {timeout}s"
    if isinstance(out[0], Failure):
        out[0].raiseException()


def twisted_until(r: Any, pred: Callable[[], bool], timeout: float = 10.0) -> Deferred[None]:
    """A ferroproc Deferred that fires once ``pred()`` holds, checked on
    Twisted's reactor ``r``."""
    d: Deferred[None] = Deferred()
    deadline = time.monotonic() + timeout

    def check() -> None:
        if pred():
            d.callback(None)
        elif time.monotonic() > deadline:
            d.errback(AssertionError(f"timed out after {timeout}s waiting for {pred}"))
        else:
            r.callLater(0.01, check)

    check()
    return d


@pytest.mark.parametrize(
    "how", ["cancel", "addTimeout", "coroutine", "inlineCallbacks", "twisted-ensureDeferred", "twisted-inlineCallbacks"]
)
def test_cancel_under_twisted_stops_the_child(twisted_reactor: Any, tmp_path: Path, how: str) -> None:
    """ferroproc's utilities under Twisted's reactor, cancelled directly,
    through ferroproc's chains, and through Twisted's own (whose
    ``CancelledError`` is then Twisted's)."""
    from twisted.internet import defer as tdefer

    r = twisted_reactor
    child = Child(tmp_path, grandchild=True, ignoreTerm=how == "cancel")
    cancelledError: type[BaseException] = tdefer.CancelledError if how.startswith("twisted") else CancelledError

    async def scenario() -> None:
        d: Any = utils.getProcessResult("sh", child.args, env=None, reactor=r, processGroup=True, killGrace=0.3)
        if how.startswith("twisted"):
            awaited = d

            async def awaitIt() -> Any:
                return await awaited

            if how == "twisted-ensureDeferred":
                d = tdefer.ensureDeferred(awaitIt())
            else:

                @tdefer.inlineCallbacks
                def twistedWait() -> Generator[Any, Any, Any]:
                    result = yield awaitIt()  # Twisted waits for a coroutine yielded here
                    return result

                d = twistedWait()
        elif how == "coroutine":

            async def wait() -> Any:
                return await d

            d = ensureDeferred(wait())
        elif how == "inlineCallbacks":
            inner = d

            @inlineCallbacks
            def wait() -> Generator[Deferred[Any], Any, Any]:
                result = yield inner
                return result

            d = wait()
        await twisted_until(r, child.started)
        if how == "addTimeout":
            d.addTimeout(0.05, r)
        outcome: list[Any] = []
        d.addBoth(outcome.append)
        if how == "addTimeout":
            await twisted_until(r, lambda: bool(outcome))
            assert isinstance(outcome[0], Failure) and outcome[0].check(DeferredTimeoutError)
        else:
            d.cancel()
            assert outcome and outcome[0].check(cancelledError), outcome
        await twisted_until(r, child.gone)

    run_twisted(r, scenario)
