"""ferroproc.jobs: what stops jobs — time limits, cancel, halt policies —
and that it stops the job's whole process group (checked in the process
table, not taken from the runner's word); retries; the memory gate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from helpers import iterate_until, run_reactor, wait_dead
from jobs_support import grandchild_job, kill_if_alive, run, sh, wait_for_files

from ferroproc.jobs import HaltPolicy, Runner


def test_a_timeout_kills_the_jobs_grandchildren(tmp_path: Path) -> None:
    pidfiles = [tmp_path / f"g{i}" for i in range(3)]
    jobs = [grandchild_job(p, timeout=0.5) for p in pidfiles] + [sh("true", timeout=5)]
    try:
        summary, results = run(jobs, concurrency=4, killGrace=1)
        pids = [int(p.read_text()) for p in pidfiles]
        assert all(wait_dead(pid, 5) for pid in pids), "a grandchild outlived its job's timeout"
    finally:
        kill_if_alive(int(p.read_text()) for p in pidfiles if p.exists())
    by = {r.seq: r for r in results}
    for seq in (1, 2, 3):
        assert by[seq].timedOut and not by[seq].ok and by[seq].signal == 15 and not by[seq].cancelled
        assert 0.4 < by[seq].runtime < 4
    assert by[4].ok and not by[4].timedOut
    assert (summary.failed, summary.succeeded) == (3, 1)


def test_a_grandchild_holding_the_output_cannot_keep_a_timed_out_job_alive(tmp_path: Path) -> None:
    # The job's shell ignores SIGTERM and its grandchild holds stdout open:
    # SIGKILL to the group after the grace, and our ends of the pipes close.
    pidfile = tmp_path / "g"
    job = sh(f"trap '' TERM; sleep 300 & echo $! > {pidfile}; wait", timeout=0.3)
    start = time.monotonic()
    try:
        _, (result,) = run([job], killGrace=0.3)
        assert wait_dead(int(pidfile.read_text()), 5)
    finally:
        kill_if_alive([int(pidfile.read_text())] if pidfile.exists() else [])
    assert result.timedOut and result.signal == 9
    assert time.monotonic() - start < 5


def test_an_idle_timeout_counts_from_the_last_output() -> None:
    chatty = sh("for i in 1 2 3 4 5 6; do echo $i; sleep 0.1; done")
    silent = sh("echo start; sleep 30")
    _, results = run([chatty, silent], idleTimeout=0.5, killGrace=0, concurrency=2)
    by = {r.seq: r for r in results}
    assert by[1].ok and by[1].out.count(b"\n") == 6
    assert by[2].timedOut and by[2].out == b"start\n" and by[2].signal == 9


def test_the_leftovers_of_a_job_that_exited_are_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "g"
    try:
        _, (result,) = run([grandchild_job(pidfile, "exit 0")])
        assert result.ok
        assert wait_dead(int(pidfile.read_text()), 5), "killGroupOnExit is the default"
    finally:
        kill_if_alive([int(pidfile.read_text())] if pidfile.exists() else [])


def test_cancel_stops_every_group_and_fires_the_summary_once_all_are_reaped(tmp_path: Path) -> None:
    pidfiles = [tmp_path / f"g{i}" for i in range(4)]
    log = tmp_path / "log"
    jobs = [grandchild_job(p) for p in pidfiles] + [sh("true")] * 5
    runner = Runner(concurrency=4, killGrace=2, joblog=log)
    results: list[Any] = []
    d = runner.run(jobs, results.append)
    try:
        pids = wait_for_files(pidfiles)
        runner.cancel()
        assert not d.called, "the summary waits for the jobs to be reaped"
        summary = run_reactor(d, 10)
        assert all(wait_dead(pid, 5) for pid in pids)
    finally:
        kill_if_alive(int(p.read_text()) for p in pidfiles if p.exists())
    assert summary.cancelled and summary.failed == 4 and summary.succeeded == 0
    assert sorted(r.seq for r in results) == [1, 2, 3, 4]
    assert all(r.cancelled and not r.timedOut and r.signal == 15 for r in results)
    lines = log.read_text().splitlines()[1:]
    assert sorted(int(line.split("\t")[0]) for line in lines) == [1, 2, 3, 4]
    assert all(line.split("\t")[6:8] == ["-1", "15"] for line in lines)
    assert runner.running == 0


def test_cancelling_the_deferred_cancels_the_run_and_it_fires_with_the_summary(tmp_path: Path) -> None:
    pidfile = tmp_path / "g"
    d = Runner(killGrace=0).run([grandchild_job(pidfile)])
    try:
        (pid,) = wait_for_files([pidfile])
        d.cancel()
        summary = run_reactor(d, 10)
        assert wait_dead(pid, 5)
    finally:
        kill_if_alive([int(pidfile.read_text())] if pidfile.exists() else [])
    assert summary.cancelled and summary.failed == 1


def test_halt_now_on_the_first_failure_kills_the_others(tmp_path: Path) -> None:
    pidfiles = [tmp_path / f"g{i}" for i in range(3)]
    every = " && ".join(f"[ -e {p} ]" for p in pidfiles)
    jobs = [grandchild_job(p) for p in pidfiles] + [sh(f"until {every}; do sleep 0.01; done; exit 4")]
    jobs += [sh("true")] * 20
    try:
        summary, results = run(jobs, concurrency=4, halt="now,fail=1", killGrace=1)
        assert all(wait_dead(int(p.read_text()), 5) for p in pidfiles)
    finally:
        kill_if_alive(int(p.read_text()) for p in pidfiles if p.exists())
    by = {r.seq: r for r in results}
    assert sorted(by) == [1, 2, 3, 4], "no job starts once halted"
    assert by[4].exitCode == 4 and not by[4].cancelled
    assert all(by[s].cancelled and by[s].signal == 15 for s in (1, 2, 3))
    assert summary.halted and not summary.cancelled
    assert summary.exitStatus == 4, "fail=1: the failing job's own status"


def test_halt_soon_lets_running_jobs_finish_and_starts_no_more(tmp_path: Path) -> None:
    marker = tmp_path / "failed"
    jobs = [sh(f"touch {marker}; exit 1"), sh(f"while [ ! -e {marker} ]; do sleep 0.01; done; sleep 0.2; exit 0")]
    jobs += [sh("true")] * 10
    summary, results = run(jobs, concurrency=2, halt="soon,fail=1")
    by = {r.seq: r for r in results}
    assert sorted(by) == [1, 2]
    assert by[2].ok and not by[2].cancelled
    assert summary.halted and summary.exitStatus == 1


@pytest.mark.parametrize(
    ("policy", "exits", "reported", "status"),
    [
        ("now,success=1", [1, 1, 0, 0, 0], [1, 2, 3], 0),
        ("soon,done=2", [0, 1, 0, 0, 0], [1, 2], 1),
        ("soon,fail=3", [1, 0, 1, 1, 1], [1, 2, 3, 4], 3),
        ("soon,fail=40%", [1, 0, 1, 0, 0], [1, 2, 3], 40),
        ("soon,fail=50%", [1, 0, 1, 0, 0], [1, 2, 3, 4, 5], 2),
    ],
)
def test_halt_policies_count_as_gnu_parallel_does(
    policy: str, exits: list[int], reported: list[int], status: int
) -> None:
    summary, results = run([sh(f"exit {e}") for e in exits], concurrency=1, halt=policy)
    assert [r.seq for r in results] == reported
    assert summary.exitStatus == status


def test_halt_policy_parsing() -> None:
    assert HaltPolicy.parse("now,fail=1") == HaltPolicy("now", "fail", 1, None)
    assert HaltPolicy.parse("soon,success=25%") == HaltPolicy("soon", "success", None, 25.0)
    assert HaltPolicy.parse("2") == HaltPolicy("now", "fail", 1, None)
    assert HaltPolicy.parse("-1") == HaltPolicy("soon", "success", 1, None)
    assert HaltPolicy.parse("5%") == HaltPolicy("soon", "fail", None, 5.0)
    assert HaltPolicy.parse("never") is None and HaltPolicy.parse("0") is None
    assert str(HaltPolicy.parse("soon,done=2.5%")) == "soon,done=2.5%"
    for bad in ("now", "now,fail", "now,fail=x", "now,fail=1.5", "soon,done=0%", "soon,fail=101%"):
        with pytest.raises(ValueError, match="halt"):
            HaltPolicy.parse(bad)
    with pytest.raises(ValueError, match="exactly one of number and percent"):
        Runner(halt=HaltPolicy("now", "fail", 1, 5.0))


def test_retries_report_each_job_once_with_its_attempts(tmp_path: Path) -> None:
    # Job i fails i - 1 times, then succeeds.
    jobs = [
        sh(f"n=$(cat {tmp_path}/c{i} 2>/dev/null || echo 0); echo $((n+1)) > {tmp_path}/c{i}; [ $n -ge {i - 1} ]")
        for i in range(1, 6)
    ]
    summary, results = run(jobs, concurrency=3, retries=2, retryDelay=0.05)
    by = {r.seq: r for r in results}
    assert len(results) == 5 and sorted(by) == [1, 2, 3, 4, 5]
    assert [by[i].attempts for i in range(1, 6)] == [1, 2, 3, 3, 3]
    assert [by[i].ok for i in range(1, 6)] == [True, True, True, False, False]
    assert (summary.succeeded, summary.failed) == (3, 2)


def test_retry_delay_is_waited(tmp_path: Path) -> None:
    start = time.monotonic()
    _, (result,) = run([sh("exit 1")], retries=2, retryDelay=0.3)
    assert result.attempts == 3
    assert time.monotonic() - start >= 0.6


def test_the_memory_gate_holds_jobs_back(tmp_path: Path) -> None:
    total = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    runner = Runner(memfree=total * 2)
    d = runner.run([sh("true")] * 3)
    state = runner._run
    assert state is not None
    kicks = [0]
    original = state._kick

    def counted() -> None:
        kicks[0] += 1
        original()

    state._kick = counted  # type: ignore[method-assign]
    assert iterate_until(lambda: kicks[0] >= 2, 10), "the gate looks again"
    assert runner.started == 0, "no job starts while memory is short"
    runner.cancel()
    summary = run_reactor(d, 10)
    assert summary.cancelled and summary.succeeded == summary.failed == 0
    ok, _ = run([sh("true")] * 3, memfree="1k")
    assert ok.succeeded == 3


def test_a_job_waiting_for_its_retry_is_reported_when_the_run_stops(tmp_path: Path) -> None:
    # Job 1 fails and waits 30 s for its retry; job 2 then succeeds, which
    # halts the run: job 1 never runs again, and is reported once, with its
    # failed attempt.
    marker = tmp_path / "first-failed"
    jobs = [sh(f"echo tried; touch {marker}; exit 5"), sh(f"while [ ! -e {marker} ]; do sleep 0.01; done; exit 0")]
    summary, results = run(jobs, concurrency=2, retries=3, retryDelay=30, halt="soon,success=1")
    by = {r.seq: r for r in results}
    assert sorted(by) == [1, 2] and len(results) == 2
    assert (by[1].exitCode, by[1].attempts, by[1].out) == (5, 1, b"tried\n")
    assert summary.halted and (summary.succeeded, summary.failed) == (1, 1)


def test_a_cancel_reports_jobs_waiting_for_their_retry(tmp_path: Path) -> None:
    runner = Runner(retries=2, retryDelay=30)
    results: list[Any] = []
    d = runner.run([sh("exit 3")], results.append)
    assert iterate_until(lambda: runner.started == 1 and runner.running == 0, 10)
    runner.cancel()
    summary = run_reactor(d, 10)
    assert [(r.seq, r.exitCode, r.attempts, r.cancelled) for r in results] == [(1, 3, 1, False)]
    assert summary.cancelled and summary.failed == 1


def test_cancel_from_another_thread_is_handed_to_the_runs_thread(tmp_path: Path) -> None:
    import threading

    pidfile = tmp_path / "g"
    runner = Runner(killGrace=0)
    d = runner.run([grandchild_job(pidfile)])
    try:
        (pid,) = wait_for_files([pidfile])
        t = threading.Thread(target=runner.cancel)
        t.start()
        t.join()
        summary = run_reactor(d, 10)
        assert wait_dead(pid, 5)
    finally:
        kill_if_alive([int(pidfile.read_text())] if pidfile.exists() else [])
    assert summary.cancelled
