"""ferroproc.jobs: stopping a run on the host's word — ``cancel(grace=)``
(a second cancel brings the SIGKILL forward, also for a job a time limit is
stopping) and ``drain()`` (start nothing more, let the running jobs end).
What ends is checked in the process table, not taken from the runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import iterate_until, run_reactor, wait_dead
from jobs_support import (
    kill_if_alive,
    settle_engines,  # noqa: F401 - no_leaks calls it
    sh,
    wait_for_files,
)

from ferroproc.jobs import Runner


def stubborn(pidfile: Path, termfile: Path, **fields: Any) -> Any:
    """A job whose shell notes each SIGTERM in ``termfile`` and goes on
    waiting for its grandchild (``sleep 300``, its pid in ``pidfile``)."""
    script = (
        f"trap 'echo TERM >> {termfile}' TERM; sleep 300 & echo $! > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; "
        "while :; do wait; done"
    )
    return sh(script, **fields)


def test_cancel_without_a_grace_kills_the_group_at_once(tmp_path: Path) -> None:
    pidfile, termfile = tmp_path / "g", tmp_path / "term"
    runner = Runner(killGrace=300)
    results: list[Any] = []
    d = runner.run([stubborn(pidfile, termfile)], results.append)
    try:
        (pid,) = wait_for_files([pidfile])
        runner.cancel(grace=0)
        summary = run_reactor(d, 10)
        assert wait_dead(pid, 5), "the grandchild outlived the cancel"
    finally:
        kill_if_alive([int(pidfile.read_text())] if pidfile.exists() else [])
    (result,) = results
    assert result.signal == 9 and result.cancelled and not result.timedOut
    assert not termfile.exists(), "no SIGTERM first"
    assert summary.cancelled and summary.failed == 1


def test_a_second_cancel_with_a_shorter_grace_brings_the_kill_forward(tmp_path: Path) -> None:
    pidfiles = [tmp_path / f"g{i}" for i in range(2)]
    termfiles = [tmp_path / f"term{i}" for i in range(2)]
    runner = Runner(concurrency=2, killGrace=300)
    results: list[Any] = []
    d = runner.run([stubborn(p, t) for p, t in zip(pidfiles, termfiles, strict=True)], results.append)
    try:
        pids = wait_for_files(pidfiles)
        runner.cancel()
        assert iterate_until(lambda: all(t.exists() for t in termfiles), 10), "SIGTERM first"
        assert not d.called and runner.running == 2, "they ignore it; the grace is 300 s"
        runner.cancel()
        assert not d.called and runner.running == 2, "the same grace again changes nothing"
        runner.cancel(grace=0)
        summary = run_reactor(d, 10)
        assert all(wait_dead(pid, 5) for pid in pids)
    finally:
        kill_if_alive(int(p.read_text()) for p in pidfiles if p.exists())
    assert sorted(r.seq for r in results) == [1, 2]
    assert all(r.signal == 9 and r.cancelled and not r.timedOut for r in results)
    assert summary.cancelled and summary.failed == 2


def test_a_cancel_hastens_a_time_limits_kill_and_the_job_still_timed_out(tmp_path: Path) -> None:
    pidfile, termfile = tmp_path / "g", tmp_path / "term"
    runner = Runner(killGrace=300)
    results: list[Any] = []
    d = runner.run([stubborn(pidfile, termfile, timeout=0.2)], results.append)
    try:
        (pid,) = wait_for_files([pidfile])
        assert iterate_until(termfile.exists, 10), "the time limit's SIGTERM"
        runner.cancel(grace=0)
        summary = run_reactor(d, 10)
        assert wait_dead(pid, 5)
    finally:
        kill_if_alive([int(pidfile.read_text())] if pidfile.exists() else [])
    (result,) = results
    assert result.timedOut and result.signal == 9 and not result.cancelled
    assert summary.cancelled and summary.failed == 1


@pytest.mark.parametrize("grace", [-1, float("nan"), float("inf"), "1", True])
def test_cancel_rejects_a_bad_grace(grace: Any) -> None:
    with pytest.raises(ValueError, match="grace"):
        Runner().cancel(grace=grace)


def test_drain_starts_no_more_jobs_and_lets_the_running_ones_end(tmp_path: Path) -> None:
    go = tmp_path / "go"
    runner = Runner(concurrency=2, retries=3)
    results: list[Any] = []
    wait = f"while [ ! -e {go} ]; do sleep 0.01; done"
    jobs = [sh(f"{wait}; exit 0"), sh(f"{wait}; exit 5")]
    jobs += [sh("true")] * 10
    d = runner.run(jobs, results.append)
    assert iterate_until(lambda: runner.started == 2, 10)
    runner.drain()
    go.touch()
    summary = run_reactor(d, 10)
    by = {r.seq: r for r in results}
    assert sorted(by) == [1, 2], "nothing started after the drain"
    assert by[1].ok and not by[1].cancelled
    assert (by[2].exitCode, by[2].attempts, by[2].cancelled) == (5, 1, False), "no retry once draining"
    assert summary.cancelled and (summary.succeeded, summary.failed) == (1, 1)


def test_a_cancel_after_a_drain_stops_the_running_jobs(tmp_path: Path) -> None:
    pidfile, termfile = tmp_path / "g", tmp_path / "term"
    runner = Runner(concurrency=1, killGrace=300)
    results: list[Any] = []
    d = runner.run([stubborn(pidfile, termfile), sh("true")], results.append)
    try:
        (pid,) = wait_for_files([pidfile])
        runner.drain()
        assert not d.called and runner.running == 1
        runner.cancel(grace=0)
        summary = run_reactor(d, 10)
        assert wait_dead(pid, 5)
    finally:
        kill_if_alive([int(pidfile.read_text())] if pidfile.exists() else [])
    assert [(r.seq, r.signal, r.cancelled) for r in results] == [(1, 9, True)]
    assert summary.cancelled
