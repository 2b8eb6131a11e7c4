"""ferroproc.jobs: running jobs and reporting each exactly once — results,
order, the lazily read input, the job's fields, spawn failures, bad input."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import iterate_until, run_reactor
from jobs_support import ENV, run, sh

from ferroproc import reactor
from ferroproc.jobs import Job, JobResult, Runner, runJobs


def test_every_job_reported_exactly_once_with_its_output() -> None:
    jobs = [Job(("echo", f"job {i}"), env=ENV) for i in range(1, 41)]
    summary, results = run(jobs, concurrency=4)
    assert sorted(r.seq for r in results) == list(range(1, 41))
    for r in results:
        assert r.out == f"job {r.seq}\n".encode()
        assert r.job is jobs[r.seq - 1]
        assert (r.exitCode, r.signal, r.ok, r.attempts, r.status) == (0, None, True, 1, 0)
        assert r.received == len(r.out) and r.sent == 0 and not r.truncated
        assert r.resourceUsage is not None and r.runtime >= 0 and r.startTime > 0
    assert summary.total == 40 and summary.succeeded == 40 and summary.failed == 0
    assert summary.exitStatus == 0 and not summary.halted and not summary.cancelled


def test_failures_signals_and_exit_status() -> None:
    jobs = [sh("exit 3"), sh("kill -9 $$"), sh("true"), sh("echo oops >&2; exit 1")]
    summary, results = run(jobs, concurrency=2)
    by = {r.seq: r for r in results}
    assert (by[1].exitCode, by[1].signal, by[1].status, by[1].ok) == (3, None, 3, False)
    assert (by[2].exitCode, by[2].signal, by[2].status) == (None, signal.SIGKILL, 128 + 9)
    assert by[3].ok
    assert by[4].err == b"oops\n"
    assert (summary.succeeded, summary.failed, summary.exitStatus) == (1, 3, 3)


def test_keep_order_reports_in_input_order() -> None:
    # Later jobs end first: job i sleeps (10 - i) / 50 s.
    jobs = [sh(f"sleep 0.{(10 - i) * 2:02d}; echo {i}") for i in range(1, 11)]
    _, results = run(jobs, concurrency=10, keepOrder=True)
    assert [r.seq for r in results] == list(range(1, 11))
    assert [r.out for r in results] == [f"{i}\n".encode() for i in range(1, 11)]


def test_plain_sequences_are_jobs_and_argv0_is_looked_up_on_path() -> None:
    summary, results = run([["echo", "a"], ("echo", b"b"), [b"/bin/echo", "c"]], concurrency=1)
    assert [r.out for r in sorted(results)] == [b"a\n", b"b\n", b"c\n"]
    assert results[0].job == Job(("echo", "a"))
    assert summary.succeeded == 3


def test_env_path_stdin_and_options(tmp_path: Path) -> None:
    jobs = [
        Job(("sh", "-c", "echo $FOO"), env={"FOO": "bar", "PATH": "/bin:/usr/bin"}),
        Job(("pwd",), path=tmp_path, env=ENV),
        Job(("cat",), stdinBytes=b"fed to stdin", env=ENV),
        Job(("sh", "-c", "umask; ulimit -n"), options={"umask": 0o027, "rlimits": {"nofile": 77}}, env=ENV),
        Job(("sh", "-c", "cat; echo done"), env=ENV),
    ]
    _, results = run(jobs, concurrency=2)
    by = {r.seq: r for r in results}
    assert by[1].out == b"bar\n"
    assert by[2].out == f"{tmp_path}\n".encode()
    assert (by[3].out, by[3].sent) == (b"fed to stdin", 12)
    assert by[4].out == b"0027\n77\n"
    assert by[5].out == b"done\n", "without stdinBytes, stdin is /dev/null"


def test_env_none_passes_our_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERROPROC_JOBS_TEST", "from-the-parent")
    _, results = run([Job(("sh", "-c", "echo $FERROPROC_JOBS_TEST"))])
    assert results[0].out == b"from-the-parent\n"


def test_each_job_leads_its_own_process_group() -> None:
    _, results = run([sh("ps -o pid=,pgid= -p $$")] * 3, concurrency=3)
    for r in results:
        pid, pgid = r.out.split()
        assert pid == pgid
    _, shared = run([sh("ps -o pgid= -p $$")], processGroup=False)
    assert int(shared[0].out) == os.getpgrp()


def test_a_program_that_cannot_start_ends_as_a_shell_would_say() -> None:
    summary, results = run([Job(("no-such-program-xyz",), env=ENV), Job(("/etc/passwd",), env=ENV), sh("true")])
    by = {r.seq: r for r in results}
    assert by[1].exitCode == 127 and b"no-such-program-xyz" in by[1].err and b"not found" in by[1].err
    assert by[2].exitCode == 126 and b"/etc/passwd" in by[2].err
    assert by[1].resourceUsage is None and by[1].attempts == 1
    assert by[3].ok
    assert (summary.succeeded, summary.failed) == (1, 2)


def test_the_input_is_read_lazily() -> None:
    pulled = [0]

    def jobs() -> Iterator[Job]:
        for i in range(500):
            pulled[0] += 1
            yield sh("sleep 5" if i == 0 else "true")

    runner = Runner(concurrency=2, killGrace=0)
    d = runner.run(jobs())
    # The first job blocks a slot: the other slot runs the rest one by one.
    assert iterate_until(lambda: runner.done >= 100, 20)
    assert pulled[0] <= runner.done + 1 + 2 * 18, "read far ahead of what runs"
    runner.cancel()
    summary = run_reactor(d, 20)
    assert summary.cancelled and pulled[0] < 500


def test_a_bad_job_stops_the_run_and_fails_it_naming_the_job(tmp_path: Path) -> None:
    d = Runner(concurrency=2).run([sh("true"), sh("true"), ["ok", 3], sh("true")])
    with pytest.raises(TypeError, match=r"job 3: argv\[1\] must be str or bytes, not int"):
        run_reactor(d, 10)
    with pytest.raises(TypeError, match="not a single str"):
        run_reactor(Runner().run(["echo hello"]), 10)
    with pytest.raises(ValueError, match=r"job 1: argv.*NUL"):
        run_reactor(Runner().run([["echo", "a\0b"]]), 10)
    with pytest.raises(TypeError, match=r"job 1: options: 'timeout' is not one of spawnProcess's ChildOptions"):
        run_reactor(Runner().run([Job(("true",), options={"timeout": 3})]), 10)
    with pytest.raises(ValueError, match="job 1: nice must be"):
        run_reactor(Runner().run([Job(("true",), options={"nice": 99})]), 10)
    with pytest.raises(ValueError, match="job 2: timeout must be positive"):
        run_reactor(Runner().run([sh("true"), sh("true", timeout=-1)]), 10)


def test_an_exception_from_the_input_fails_the_run() -> None:
    def jobs() -> Iterator[Job]:
        yield sh("true")
        raise KeyError("the input broke")

    with pytest.raises(KeyError, match="the input raised KeyError after job 1"):
        run_reactor(Runner().run(jobs()), 10)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"concurrency": 0}, ValueError, "concurrency must be an int of at least 1"),
        ({"timeout": 0}, ValueError, "timeout must be positive"),
        ({"killGrace": float("nan")}, ValueError, "killGrace must be a finite number"),
        ({"retries": -1}, ValueError, "retries must be an int >= 0"),
        ({"halt": "later,fail=1"}, ValueError, "is not a halt policy"),
        ({"halt": "now,fail=0"}, ValueError, "at least 1"),
        ({"memfree": "lots"}, ValueError, "memfree: 'lots' is not a size"),
        ({"maxBytes": -1}, ValueError, "maxBytes must be"),
        ({"resume": True}, ValueError, "resume needs a joblog"),
        ({"resume": "yes", "joblog": "x"}, ValueError, "resume must be"),
        ({"stdout": 999}, ValueError, "stdout: fd 999 is not open"),
        ({"results": "d", "idleTimeout": 1}, ValueError, "idleTimeout needs the output captured"),
        ({"parentDeathSignal": "SIGNOPE"}, ValueError, "parentDeathSignal 'SIGNOPE' is not a signal"),
        ({"reactor": object()}, TypeError, "reactor must be ferroproc's reactor or a Twisted reactor"),
    ],
)
def test_bad_runner_options_are_named(options: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Runner(**options)  # type: ignore[arg-type]


def test_jobs_must_be_iterable_and_one_run_at_a_time() -> None:
    runner = Runner()
    with pytest.raises(TypeError, match="jobs must be an iterable"):
        runner.run(42)  # type: ignore[arg-type]
    d = runner.run([sh("sleep 0.2")])
    with pytest.raises(RuntimeError, match="already running"):
        runner.run([])
    run_reactor(d, 10)
    assert run_reactor(runner.run([]), 10).total == 0, "a runner runs again once done"


def test_an_empty_input_fires_at_once() -> None:
    d = runJobs([])
    assert d.called
    summary = run_reactor(d, 5)
    assert (summary.total, summary.succeeded, summary.failed) == (0, 0, 0)


def test_callback_errors_are_logged_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []

    def onResult(r: JobResult) -> None:
        seen.append(r.seq)
        raise RuntimeError("callback broke")

    summary = run_reactor(runJobs([sh("true")] * 3, onResult=onResult, concurrency=1), 10)
    assert sorted(seen) == [1, 2, 3] and summary.succeeded == 3
    assert "callback broke" in caplog.text


def test_counters_follow_the_run() -> None:
    runner = Runner(concurrency=3)
    d = runner.run([sh("sleep 0.3")] * 3 + [sh("exit 1")])
    assert (runner.running, runner.started) == (3, 3)
    summary = run_reactor(d, 10)
    assert (runner.running, runner.started, runner.done, runner.failed) == (0, 4, 4, 1)
    assert summary.failed == 1


def test_no_thread_is_left() -> None:
    before = threading.active_count()
    tasks = len(os.listdir("/proc/self/task"))
    run([sh("true")] * 20, concurrency=5)
    assert threading.active_count() == before
    assert len(os.listdir("/proc/self/task")) == tasks


def test_jobs_run_on_the_reactor_thread_only() -> None:
    errors: list[BaseException] = []
    runner = Runner()
    d = runner.run([sh("sleep 0.3")])

    def other() -> None:
        try:
            Runner().run([sh("true")])
        except BaseException as e:  # noqa: BLE001 - recorded for the check below
            errors.append(e)

    def start_thread() -> None:
        t = threading.Thread(target=other)
        t.start()
        t.join()

    reactor.callLater(0, start_thread)
    run_reactor(d, 10)
    assert errors and "reactor's thread" in str(errors[0])


def test_running_out_of_fds_holds_jobs_back_instead_of_failing_them() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Room for a few jobs' pipes and pidfds (3 fds each), not for 20 at once.
    limit = max(open_fds_now() + 12, 16)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        summary, results = run([sh("sleep 0.05")] * 40, concurrency=20)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert summary.succeeded == 40, [(r.seq, r.exitCode, r.err) for r in results if not r.ok]


def test_a_job_that_cannot_start_with_nothing_else_running_fails() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds_now() + 1, hard))
    try:
        summary, results = run([sh("true")], concurrency=1)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert summary.failed == 1 and results[0].exitCode == 126 and b"Too many open files" in results[0].err


def open_fds_now() -> int:
    """The lowest fd number not in use: new fds start there."""
    used = {int(name) for name in os.listdir("/proc/self/fd")}
    return next(n for n in range(len(used) + 1) if n not in used)
