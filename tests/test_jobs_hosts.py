"""ferroproc.jobs on each host: ferroproc's reactor (the other test_jobs
files), inside running asyncio loops (asyncio's, ferroproc's EventLoop,
uvloop) with ``await`` and ``async for``, and under a Twisted reactor; and
what a runner killed with SIGKILL leaves behind."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_dead
from jobs_support import ENV, alive_in_table, grandchild_job, kill_if_alive, sh

import ferroproc.asyncio as fa
from ferroproc.jobs import Job, JobResult, Runner, runJobs

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _nothing() -> None:
    pass


def _loops() -> list[Any]:
    out = [pytest.param(asyncio.run, id="asyncio"), pytest.param(fa.run, id="ferroproc-loop")]
    if HAVE_UVLOOP:
        import uvloop

        uvloop.run(_nothing())  # its process-wide pipe, opened before no_leaks looks
        out.append(pytest.param(uvloop.run, id="uvloop"))
    return out


AioRun = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=_loops())
def aiorun(request: pytest.FixtureRequest) -> AioRun:
    return request.param  # type: ignore[no-any-return]


def test_awaiting_a_run_inside_asyncio(aiorun: AioRun) -> None:
    async def main() -> tuple[Any, list[JobResult]]:
        got: list[JobResult] = []
        summary = await runJobs([sh(f"echo {i}") for i in range(30)], concurrency=4, onResult=got.append)
        return summary, got

    summary, got = aiorun(main())
    assert summary.succeeded == 30
    assert sorted(r.out for r in got) == sorted(f"{i}\n".encode() for i in range(30))


def test_streaming_results_with_async_for(aiorun: AioRun, tmp_path: Path) -> None:
    async def main() -> list[JobResult]:
        out = []
        async for r in Runner(concurrency=3, keepOrder=True).stream(sh(f"echo {i}") for i in range(10)):
            out.append(r)
        return out

    results = aiorun(main())
    assert [r.seq for r in results] == list(range(1, 11))


def test_a_slow_reader_holds_the_run_back(aiorun: AioRun) -> None:
    pulled = [0]

    def jobs() -> Any:
        for _ in range(2000):
            pulled[0] += 1
            yield Job(("true",), env=ENV)

    async def main() -> tuple[int, int]:
        runner = Runner(concurrency=4)
        stream = runner.stream(jobs())
        first = await stream.__anext__()
        await asyncio.sleep(0.5)  # a reader busy elsewhere: results must not pile up
        held = pulled[0]
        count = 1
        async for _ in stream:
            count += 1
        assert first.seq >= 1
        return held, count

    held, count = aiorun(main())
    assert count == 2000
    assert held < 600, f"read {held} jobs ahead of a reader that took 1"


def test_leaving_the_loop_early_cancels_and_reaps(aiorun: AioRun, tmp_path: Path) -> None:
    pidfile = tmp_path / "g"

    async def main() -> int:
        jobs = [sh("true"), grandchild_job(pidfile)]
        async for r in Runner(concurrency=2, killGrace=1).stream(jobs):
            if r.seq == 1:
                while not pidfile.exists():
                    await asyncio.sleep(0.01)
                break
        return int(pidfile.read_text())

    try:
        pid = aiorun(main())
        assert wait_dead(pid, 5)
    finally:
        kill_if_alive([int(pidfile.read_text())] if pidfile.exists() else [])


async def _wait(d: Any) -> Any:
    return await d


def test_cancelling_the_awaiting_task_stops_the_jobs(aiorun: AioRun, tmp_path: Path) -> None:
    pidfiles = [tmp_path / "a", tmp_path / "b"]

    async def main() -> Any:
        runner = Runner(concurrency=2, killGrace=1)
        d = runner.run([grandchild_job(p) for p in pidfiles])
        ended = asyncio.get_running_loop().create_future()
        d.addBoth(lambda s: (ended.set_result(s), s)[1])
        task = asyncio.ensure_future(_wait(d))
        while not all(p.exists() for p in pidfiles):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The run's Deferred still fires with the summary once all are reaped.
        return await ended

    try:
        summary = aiorun(main())
        assert summary.cancelled and summary.failed == 2
        assert all(wait_dead(int(p.read_text()), 5) for p in pidfiles)
    finally:
        kill_if_alive(int(p.read_text()) for p in pidfiles if p.exists())


def test_timeouts_and_retry_delays_under_asyncio(aiorun: AioRun) -> None:
    async def main() -> list[JobResult]:
        got: list[JobResult] = []
        await runJobs(
            [sh("sleep 10", timeout=0.2), sh("exit 1")], retries=1, retryDelay=0.1, killGrace=0, onResult=got.append
        )
        return sorted(got)

    slow, failing = aiorun(main())
    assert slow.timedOut and slow.attempts == 2 and slow.signal == 9
    assert failing.attempts == 2 and failing.exitCode == 1


# -- Twisted -------------------------------------------------------------------------------


def _dispose(r: Any) -> None:
    """Release a test reactor's fds and its engine's (as test_twisted_host does)."""
    vars(r).pop("_ferroprocEngineReader", None)
    for reader in list(getattr(r, "_internalReaders", ())):
        r.removeReader(reader)
        reader.connectionLost(None)
    r.disconnectAll()
    for call in r.getDelayedCalls():
        call.cancel()
    closer = getattr(getattr(r, "_poller", None), "close", None)
    if closer is not None:
        closer()


def test_under_a_twisted_reactor(tmp_path: Path) -> None:
    pytest.importorskip("twisted")
    from twisted.internet.epollreactor import EPollReactor

    import ferroproc.twisted  # noqa: F401 - the engine reader the runner uses

    r = EPollReactor()
    pidfile = tmp_path / "g"
    got: list[JobResult] = []
    outcome: list[Any] = []
    runner = Runner(concurrency=3, reactor=r, retries=1, retryDelay=0.1, killGrace=0.5)
    d = runner.run(
        [sh(f"echo {i}") for i in range(20)] + [sh("exit 1"), grandchild_job(pidfile, timeout=0.3)], got.append
    )
    d.addBoth(lambda s: (outcome.append(s), r.stop()))
    guard = r.callLater(30, r.stop)
    try:
        r.run(installSignalHandlers=False)
        assert wait_dead(int(pidfile.read_text()), 5)
    finally:
        if guard.active():
            guard.cancel()
        kill_if_alive([int(pidfile.read_text())] if pidfile.exists() else [])
        del runner, d
        gc.collect()
        _dispose(r)
    (summary,) = outcome
    assert summary.succeeded == 20 and summary.failed == 2
    by = {x.seq: x for x in got}
    assert by[21].attempts == 2 and by[22].timedOut


# -- a runner killed with SIGKILL ---------------------------------------------------------------

RUNNER_SCRIPT = textwrap.dedent(
    """
    import sys
    from ferroproc import jobs, reactor
    pidfile, grandfile = sys.argv[1], sys.argv[2]
    script = f"echo $$ > {pidfile}; sleep 300 & echo $! > {grandfile}.tmp; mv {grandfile}.tmp {grandfile}; wait"
    job = jobs.Job.shell(script, env={"PATH": "/usr/bin:/bin"})
    jobs.runJobs([job])
    reactor.run()
    """
)


def test_a_runner_killed_with_sigkill_leaves_no_job_leader(tmp_path: Path) -> None:
    pidfile, grandfile = tmp_path / "leader", tmp_path / "grandchild"
    proc = subprocess.Popen([sys.executable, "-c", RUNNER_SCRIPT, str(pidfile), str(grandfile)])
    leader = grandchild = 0
    try:
        deadline = time.monotonic() + 20
        while not (grandfile.exists() and grandfile.read_text().strip()):
            assert proc.poll() is None, "the runner ended early"
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.01)
        leader, grandchild = int(pidfile.read_text()), int(grandfile.read_text())
        assert alive_in_table(leader)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_dead(leader, 10), "the job's program outlived its runner (parentDeathSignal)"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # What holds for the job's own children (documented in ferroproc.jobs):
        # the parent-death signal reaches the job's program only; they are
        # reparented and live on unless the job used a cgroup. Not ours to
        # leave running after the test.
        kill_if_alive([p for p in (leader, grandchild) if p])


def test_a_failed_run_raises_at_the_end_of_async_for(aiorun: AioRun) -> None:
    async def main() -> list[int]:
        seen = []
        with pytest.raises(TypeError, match="job 3"):
            async for r in Runner(concurrency=1).stream([sh("true"), sh("true"), 3]):  # type: ignore[list-item]
                seen.append(r.seq)
        return seen

    seen = aiorun(main())
    assert 1 in seen and 3 not in seen
