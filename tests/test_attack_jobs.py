"""ferroproc.jobs under attack, as an outside adversarial suite would try it:
odd inputs (empty, an input that raises half-way, non-str argv items, an
argv too big for exec, bad env keys, a missing directory or program),
concurrency 1 and far beyond the jobs, time limits on jobs whose
grandchildren ignore SIGTERM, a cancel during the start, halt policies,
keepOrder with failures, resume from a damaged job log, exactly-once
results; then the CLI end to end, in a subprocess.

What is left is read from the process table (/proc) and /proc/self/fd (the
conftest's ``no_leaks``), and threads from ``threading``, never from the
runner's word.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import run_reactor, wait_dead
from jobs_support import alive_in_table, kill_if_alive, settle_engines, sh, wait_for_files

from ferroproc import reactor
from ferroproc.failure import Failure
from ferroproc.jobs import Job, JobResult, JobSummary, Runner

__all__ = ["settle_engines"]  # the no_leaks fixture's hook (conftest.py)

CLI = [sys.executable, "-m", "ferroproc.jobs"]


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """Every run's spawner threads end with it."""
    before = threading.active_count()
    yield
    assert threading.active_count() == before, [t.name for t in threading.enumerate()]


def go(jobs: Any, within: float = 30.0, **options: Any) -> tuple[JobSummary | Failure, list[JobResult]]:
    """Run ``jobs``; the summary (or the run's Failure) and every result."""
    results: list[JobResult] = []
    d = Runner(**options).run(jobs, results.append)
    out: list[Any] = []
    d.addBoth(out.append)
    run_reactor(out.__len__, within)
    return out[0], results


# -- odd inputs ---------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [[], iter([]), (j for j in [])], ids=["list", "iterator", "generator"])
def test_no_jobs_is_an_empty_summary(jobs: Any) -> None:
    summary, results = go(jobs, concurrency=4)
    assert isinstance(summary, JobSummary)
    assert (summary.total, summary.succeeded, summary.failed, results) == (0, 0, 0, [])


def test_an_input_that_raises_half_way_fails_the_run_after_reporting_its_jobs_once(tmp_path: Path) -> None:
    """The jobs started before the input raised are stopped and reported,
    each once (those only taken are not); the run fails with the input's
    error, named; nothing they started is left."""

    def jobs() -> Iterator[Job]:
        for i in range(3):
            yield sh(f"sleep 30 & echo $! > {tmp_path}/g{i}.tmp && mv {tmp_path}/g{i}.tmp {tmp_path}/g{i}; wait")
        raise RuntimeError("boom in input")

    outcome, results = go(jobs(), concurrency=2, killGrace=0.5)
    assert isinstance(outcome, Failure) and isinstance(outcome.value, RuntimeError)
    assert "the input raised RuntimeError after job 3: boom in input" in str(outcome.value)
    seqs = [r.seq for r in results]
    assert len(seqs) == len(set(seqs)) and set(seqs) <= {1, 2}
    for g in tmp_path.glob("g?"):
        assert wait_dead(int(g.read_text()), 10)


@pytest.mark.parametrize(
    ("job", "error", "message"),
    [
        (["echo", 5], TypeError, "job 1: argv[1] must be str or bytes, not int"),
        (["echo", None], TypeError, "job 1: argv[1] must be str or bytes, not NoneType"),
        ([], TypeError, "job 1: argv must be a non-empty tuple"),
        ("echo hi", TypeError, "not a single str (use Job.shell"),
        (5, TypeError, "a job must be a Job or a sequence of arguments, not int"),
        (["tr\0ue"], ValueError, "job 1: argv[0] contains a NUL byte"),
        (Job(("true",), env={"A=B": "x"}), ValueError, "job 1: env key 'A=B' is not a valid variable name"),
        (Job(("true",), env={"": "x"}), ValueError, "job 1: env key '' is not a valid variable name"),
        (Job(("true",), env={"A": 1}), TypeError, "job 1: env['A'] must be str or bytes, not int"),  # type: ignore[dict-item]
        (Job(("true",), options={"nosuch": 1}), TypeError, "'nosuch' is not one of spawnProcess's ChildOptions"),
        (
            Job(("true",), options={"processGroup": 2**40}),
            ValueError,
            "job 1: processGroup must be True, False or a process group id, not 1099511627776",
        ),
        (Job(("true",), timeout=-1), ValueError, "job 1: timeout must be positive"),
        (Job(("cat",), stdinBytes="text"), TypeError, "job 1: stdinBytes must be bytes or None, not str"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_job_fails_the_run_naming_the_job_and_field(job: Any, error: type, message: str) -> None:
    outcome, results = go([job])
    assert isinstance(outcome, Failure), outcome
    assert isinstance(outcome.value, error), outcome.value
    assert message in str(outcome.value)
    assert "failed to extract" not in str(outcome.value)
    assert results == []


@pytest.mark.parametrize(
    ("job", "code", "reason"),
    [
        (["/nonexistent/program"], 127, "not found"),
        (["no-such-program-for-ferroproc"], 127, "not found on PATH"),
        (["/etc/passwd"], 126, "is not executable"),
        (["/tmp"], 126, "is not executable"),
        (["echo", "x" * 200_000], 126, "Argument list too long"),
        (["true", *(["x" * 100_000] * 40)], 126, "Argument list too long"),
    ],
)
def test_a_job_that_cannot_start_ends_as_a_shell_reports_it(job: list[str], code: int, reason: str) -> None:
    summary, results = go([job, ["true"]], concurrency=2)
    assert isinstance(summary, JobSummary) and (summary.failed, summary.succeeded) == (1, 1)
    (bad,) = [r for r in results if r.seq == 1]
    assert (bad.exitCode, bad.signal, bad.resourceUsage) == (code, None, None)
    assert reason.encode() in bad.err


def test_a_missing_working_directory_is_a_job_that_did_not_start() -> None:
    summary, results = go([Job(("true",), path="/nonexistent/dir")])
    assert isinstance(summary, JobSummary) and summary.failed == 1
    assert results[0].exitCode in (126, 127)
    assert b'path: cannot change to directory "/nonexistent/dir"' in results[0].err


@pytest.mark.parametrize("concurrency", [1, 3, 1000, 2**70])
def test_any_concurrency_runs_every_job_exactly_once(concurrency: int) -> None:
    """1, the number of jobs, far more, and more than any count the core
    could hold (an OverflowError before): 200 jobs, each reported once."""
    summary, results = go((["true"] for _ in range(200)), concurrency=concurrency)
    assert isinstance(summary, JobSummary)
    assert (summary.total, summary.succeeded) == (200, 200)
    assert sorted(r.seq for r in results) == list(range(1, 201))


# -- stopping ----------------------------------------------------------------------


def test_a_timeout_kills_jobs_whose_grandchildren_ignore_sigterm(tmp_path: Path) -> None:
    """Job and grandchild ignore SIGTERM: the time limit's SIGKILL after the
    grace takes both (their group), seen in the process table."""
    jobs = [sh(f"trap '' TERM; (trap '' TERM; sleep 300) & echo $! > {tmp_path}/g{i}; wait") for i in range(3)]
    summary, results = go(jobs, concurrency=2, timeout=0.3, killGrace=0.2)
    assert isinstance(summary, JobSummary) and summary.failed == 3
    assert sorted((r.seq, r.signal, r.timedOut) for r in results) == [(i, 9, True) for i in (1, 2, 3)]
    grandchildren = [int((tmp_path / f"g{i}").read_text()) for i in range(3)]
    try:
        for pid in grandchildren:
            assert wait_dead(pid, 10), f"grandchild {pid} survived its job's timeout"
    finally:
        kill_if_alive(grandchildren)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_cancel_right_after_run_leaves_nothing(concurrency: int) -> None:
    """``cancel()`` before the loop has turned once (the jobs are being
    started, on spawner threads with concurrency 4): each started job is
    reported once, as cancelled; no child, thread or fd is left."""
    runner = Runner(concurrency=concurrency, killGrace=0.2)
    results: list[JobResult] = []
    d = runner.run([sh("sleep 30")] * 20, results.append)
    runner.cancel()
    summary = run_reactor(d, 20)
    assert summary.cancelled
    assert 0 < len(results) <= concurrency
    assert len({r.seq for r in results}) == len(results)
    assert all(r.cancelled and not r.ok for r in results)


def test_deferred_cancel_mid_run_stops_the_group(tmp_path: Path) -> None:
    runner = Runner(concurrency=3, killGrace=0.2)
    results: list[JobResult] = []
    d = runner.run((sh(f"sleep 300 & echo $! > {tmp_path}/g{i}; wait") for i in range(10)), results.append)
    pids = wait_for_files([tmp_path / f"g{i}" for i in range(3)])
    d.cancel()
    out: list[Any] = []
    d.addBoth(out.append)
    run_reactor(out.__len__, 20)
    try:
        for pid in pids:
            assert wait_dead(pid, 10)
    finally:
        kill_if_alive(pids)
    assert sorted(r.seq for r in results) == [1, 2, 3]


@pytest.mark.parametrize("halt", ["now,fail=1", "soon,fail=1"])
def test_halt_on_the_first_failure_stops_or_lets_finish_the_running_job(halt: str) -> None:
    """Job 1 fails at once while job 2 runs: ``now`` stops job 2 (143,
    cancelled), ``soon`` lets it finish; no later job starts either way."""
    now = halt.startswith("now")
    jobs = [sh("exit 1"), sh("sleep 30" if now else "sleep 0.3; exit 0"), sh("exit 2"), sh("sleep 30")]
    summary, results = go(jobs, concurrency=2, halt=halt, killGrace=0.2)
    assert isinstance(summary, JobSummary) and summary.halted and summary.haltStatus == 1
    got = sorted((r.seq, r.status, r.cancelled) for r in results)
    assert got == [(1, 1, False), (2, 143, True) if now else (2, 0, False)]


def test_keep_order_with_failures_and_retries_reports_in_input_order() -> None:
    jobs = [sh(f"sleep 0.0{9 - i}; exit {i % 3}") for i in range(8)]
    summary, results = go(jobs, keepOrder=True, concurrency=4, retries=1)
    assert [r.seq for r in results] == list(range(1, 9))
    assert [r.attempts for r in results] == [1 if i % 3 == 0 else 2 for i in range(8)]
    assert isinstance(summary, JobSummary) and (summary.succeeded, summary.failed) == (3, 5)


# -- resume from a damaged job log ------------------------------------------------------


def _log_then_cut(tmp_path: Path, cut: int) -> tuple[Path, bytes]:
    log = tmp_path / "jobs.log"
    summary, _ = go([["echo", str(i)] for i in range(5)], joblog=str(log), concurrency=1)
    assert isinstance(summary, JobSummary) and summary.succeeded == 5
    data = log.read_bytes()
    log.write_bytes(data[:-cut])
    return log, data


def test_resume_after_a_log_cut_mid_line_reruns_that_job_and_mends_the_log(tmp_path: Path) -> None:
    """A run killed while writing its job log leaves a last line cut short:
    resume runs that job again (it used to refuse the log: 'not a job log
    line') and the log is whole again (the new line was glued to the cut
    one)."""
    log, whole = _log_then_cut(tmp_path, 30)
    summary, results = go([["echo", str(i)] for i in range(5)], joblog=str(log), resume=True)
    assert isinstance(summary, JobSummary), summary
    assert (summary.skipped, [r.seq for r in results]) == (4, [5])
    lines = log.read_bytes().splitlines()
    assert lines[:5] == whole.splitlines()[:5]
    assert len(lines) == 6 and lines[5].startswith(b"5\t:\t") and lines[5].endswith(b"\techo 4")
    # And it resumes again, with nothing left to run.
    summary, results = go([["echo", str(i)] for i in range(5)], joblog=str(log), resume=True)
    assert isinstance(summary, JobSummary) and (summary.skipped, results) == (5, [])


def test_resume_after_a_log_cut_in_its_command_counts_the_job_and_ends_its_line(tmp_path: Path) -> None:
    log, _ = _log_then_cut(tmp_path, 3)
    summary, results = go([["echo", str(i)] for i in range(6)], joblog=str(log), resume=True)
    assert isinstance(summary, JobSummary) and (summary.skipped, [r.seq for r in results]) == (5, [6])
    lines = log.read_bytes().splitlines()
    assert len(lines) == 7 and lines[6].startswith(b"6\t:\t")


def test_resume_from_a_log_cut_inside_its_header_starts_afresh(tmp_path: Path) -> None:
    log = tmp_path / "jobs.log"
    log.write_bytes(b"Seq\tHo")
    summary, results = go([["true"]] * 2, joblog=str(log), resume=True)
    assert isinstance(summary, JobSummary) and (summary.skipped, len(results)) == (0, 2)
    assert log.read_bytes().startswith(b"Seq\tHost\tStarttime\t")
    assert len(log.read_bytes().splitlines()) == 3


def test_resume_with_a_huge_seq_in_the_log_does_not_allocate_a_bitmap_for_it(tmp_path: Path) -> None:
    """A damaged (or hand-made) log's Seq of 10**17 would take a bitmap of
    12.5 PB: a MemoryError before; now it is kept aside."""
    log = tmp_path / "jobs.log"
    header = b"Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
    log.write_bytes(header + b"99999999999999999\t:\t1.0\t0.1\t0\t0\t0\t0\ttrue\n2\t:\t1.0\t0.1\t0\t0\t0\t0\ttrue\n")
    summary, results = go([["true"]] * 3, joblog=str(log), resume=True)
    assert isinstance(summary, JobSummary) and summary.skipped == 1
    assert sorted(r.seq for r in results) == [1, 3]


def test_resume_from_a_log_damaged_in_the_middle_is_refused_naming_the_line(tmp_path: Path) -> None:
    log = tmp_path / "jobs.log"
    header = b"Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
    log.write_bytes(header + b"1\t:\t1.0\t0.1\t0\t0\t0\t0\ttrue\ngarbage\n3\t:\t1.0\t0.1\t0\t0\t0\t0\ttrue\n")
    with pytest.raises(ValueError, match="line 3 is not a job log line: b'garbage'"):
        Runner(joblog=str(log), resume=True).run([["true"]])


def test_results_under_a_file_is_refused_before_any_job(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(NotADirectoryError):
        Runner(results=str(file / "out")).run([["true"]])


# -- the CLI, end to end ------------------------------------------------------------


def cli(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([*CLI, *argv], input=stdin, capture_output=True, timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(), p.stderr.decode())


@pytest.mark.parametrize(
    ("option", "named"),
    [
        (["-j", "x"], "-j: 'x' is not a number of jobs"),
        (["-j", "1.5"], "-j: '1.5': a number of jobs is a whole number"),
        (["--timeout", "-1"], "--timeout: '-1' is not a duration"),
        (["--timeout", "0"], "--timeout: '0' must be more than 0 seconds"),
        (["--timeout", "1e400"], "--timeout: '1e400' is too long a duration"),
        (["--retries", "x"], "--retries: 'x' is not a whole number"),
        (["--halt", "now"], "--halt: 'now' is not a halt policy"),
        (["--halt", "now,fail=200%"], "--halt: 'now,fail=200%': the percentage must be above 0"),
        (["--memfree", "2X"], "--memfree: '2X' is not a size"),
        (["--kill-grace", "nan"], "--kill-grace: 'nan' is not a number of seconds"),
        (["--joblog", ""], "--joblog: the file name is empty"),
        (["--joblog", "/nonexistent/dir/log"], "--joblog: '/nonexistent/dir/log': No such file or directory"),
        (["--joblog", "+/nonexistent/dir/log"], "--joblog: '/nonexistent/dir/log': No such file or directory"),
        (["--joblog", "/", "--resume"], "--joblog: '/': Is a directory"),
        (["--results", "/dev/null"], "--results: '/dev/null/.ferroproc-jobs-"),
        (["--resume"], "--resume needs --joblog"),
        (["--bogus"], "unknown option --bogus"),
    ],
)
def test_cli_odd_option_values_exit_255_naming_the_option(option: list[str], named: str) -> None:
    p = cli(*option, "echo", ":::", "a")
    assert p.returncode == 255, (p.returncode, p.stdout, p.stderr)
    assert named in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stdout == ""


def test_cli_a_concurrency_beyond_any_count_runs(tmp_path: Path) -> None:
    """``-j 99999999999999999999`` was an OverflowError traceback (exit 1)."""
    p = cli("-j", "99999999999999999999", "-k", "echo", ":::", "a", "b")
    assert (p.returncode, p.stdout, p.stderr) == (0, "a\nb\n", "")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_cli_a_stop_signal_with_input_on_stdin_leaves_no_job_process(tmp_path: Path, signum: int) -> None:
    """Jobs (and grandchildren) ignoring SIGTERM, the input still open on
    stdin: the signal ends the runner by that signal, and every job
    process is gone from the process table."""
    script = f"trap '' TERM; (trap '' TERM; sleep 300) & echo $! > {tmp_path}/g{{}}; wait"
    proc = subprocess.Popen(
        [*CLI, "-j", "3", "--kill-grace", "0.3", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    pids: list[int] = []
    try:
        proc.stdin.write(b"1\n2\n3\n")
        proc.stdin.flush()
        files = [tmp_path / f"g{i}" for i in (1, 2, 3)]
        deadline = time.monotonic() + 20
        while not all(f.exists() and f.read_text().strip() for f in files):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)  # polling the file system for the jobs' pids
        pids = [int(f.read_text()) for f in files]
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == -signum, err
        for pid in pids:
            assert wait_dead(pid, 10), f"job process {pid} survived the runner's {signal.Signals(signum).name}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_if_alive(pids)
    assert not any(alive_in_table(pid) for pid in pids)


# -- on asyncio's loops ----------------------------------------------------------------


def _loops() -> list[Any]:
    import asyncio

    import ferroproc.asyncio as fa

    out = [pytest.param(asyncio.run, id="asyncio"), pytest.param(fa.run, id="ferroproc-loop")]
    try:
        import uvloop
    except ImportError:
        return out
    # uvloop's first loop in a process keeps a pipe pair of libuv's for good:
    # made here, before any test counts its fds.
    uvloop.run(asyncio.sleep(0))
    return [*out, pytest.param(uvloop.run, id="uvloop")]


@pytest.mark.parametrize("runner", _loops())
def test_asyncio_wait_for_and_an_early_break_stop_every_job_group(runner: Any, tmp_path: Path) -> None:
    """``asyncio.wait_for`` timing out ``runJobs``, and a ``break`` out of
    ``Runner.stream``: every job's group is gone (the process table), and
    the loop's exception handler got nothing."""
    import asyncio

    from ferroproc.jobs import runJobs

    errors: list[Any] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        jobs = [
            sh(f"sleep 300 & echo $! > {tmp_path}/g{i}.tmp && mv {tmp_path}/g{i}.tmp {tmp_path}/g{i}; wait")
            for i in range(6)
        ]
        task = asyncio.ensure_future(runJobs(jobs, concurrency=3, killGrace=0.2))
        for _ in range(2000):  # the three running jobs' grandchildren
            if len(list(tmp_path.glob("g?"))) == 3:
                break
            await asyncio.sleep(0.005)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(task, 0.01)
        seen = 0
        async with Runner(concurrency=2, killGrace=0.2).stream([sh("echo x")] * 2 + [sh("sleep 300")] * 3) as results:
            async for _ in results:
                seen += 1
                if seen == 2:
                    break

    runner(asyncio.wait_for(main(), 60))
    pids = [int(g.read_text()) for g in tmp_path.glob("g?")]
    assert len(pids) == 3
    try:
        for pid in pids:
            assert wait_dead(pid, 10)
    finally:
        kill_if_alive(pids)
    assert errors == []


@pytest.mark.parametrize("append", [False, True], ids=["resume", "append"])
def test_a_file_that_is_no_job_log_is_never_cut(tmp_path: Path, append: bool) -> None:
    """A job log option pointing at some other file, whose last line has
    no newline: resume refuses it, appending ends its line; nothing of it
    is cut off."""
    log = tmp_path / "notes.txt"
    log.write_bytes(b"important text without a newline")
    if append:
        from ferroproc.jobs._joblog import JobLog

        JobLog(str(log), append=True).close()
        assert log.read_bytes() == b"important text without a newline\n"
    else:
        with pytest.raises(ValueError, match="line 1 is not a job log line"):
            Runner(joblog=str(log), resume=True).run([["true"]])
        assert log.read_bytes() == b"important text without a newline"


@pytest.mark.parametrize("seed", range(12))
def test_random_runs_report_each_job_exactly_once(seed: int) -> None:
    """Random mixes of jobs that succeed, fail and cannot start, under
    random concurrency, keepOrder, retries and halt policies: each job is
    reported at most once (exactly once without a halt), in input order
    with keepOrder, and the summary's counts agree with the results."""
    import random

    rng = random.Random(seed)
    kinds = [["true"], ["false"], ["/nonexistent/program"], sh("exit 2")]
    jobs = [rng.choices(kinds, weights=[6, 2, 1, 1])[0] for _ in range(rng.randint(0, 50))]
    options: dict[str, Any] = {
        "concurrency": rng.choice([1, 2, 3, 8, 100]),
        "keepOrder": rng.random() < 0.5,
        "retries": rng.choice([0, 0, 1, 2]),
    }
    if rng.random() < 0.3:
        options["halt"] = rng.choice(["soon,fail=3", "now,fail=5", "now,success=10", "soon,done=50%"])
    summary, results = go(iter(jobs), **options)
    assert isinstance(summary, JobSummary), summary
    seqs = [r.seq for r in results]
    assert len(seqs) == len(set(seqs)), options
    assert summary.succeeded + summary.failed == len(results)
    if not summary.halted:
        assert (summary.total, sorted(seqs)) == (len(jobs), list(range(1, len(jobs) + 1)))
    if options["keepOrder"]:
        assert seqs == sorted(seqs)
    for r in results:
        if jobs[r.seq - 1] == ["true"] and not r.cancelled:
            assert r.ok, r


@pytest.mark.parametrize(
    "options",
    [{"retries": 2**70}, {"maxBytes": 2**70}, {"halt": "soon,fail=99999999999999999999999"}],
    ids=["retries", "maxBytes", "halt"],
)
def test_counts_past_the_cores_integers_run_as_unbounded(options: dict[str, Any]) -> None:
    """A count or size larger than any run has: it was an OverflowError
    from the bindings at ``run()`` ('int too big to convert')."""
    summary, results = go([["true"], ["echo", "x"]], **options)
    assert isinstance(summary, JobSummary) and summary.succeeded == 2
    assert sorted(r.out for r in results) == [b"", b"x\n"]


def test_a_memfree_past_any_memory_waits_until_cancelled() -> None:
    """``memfree=2**200`` (an OverflowError before) holds every job back,
    as any memfree above the free memory does, until the run is cancelled."""
    runner = Runner(memfree=2**200)
    results: list[JobResult] = []
    d = runner.run([["true"]], results.append)
    reactor.callLater(0.1, runner.cancel)
    summary = run_reactor(d, 10)
    assert summary.cancelled and results == []


@pytest.mark.parametrize(
    "option", [["--retries", "99999999999999999999999"], ["--halt", "now,fail=99999999999999999999999"]]
)
def test_cli_huge_counts_run(option: list[str]) -> None:
    """They were OverflowError tracebacks, exit 1."""
    p = cli(*option, "echo", ":::", "a")
    assert (p.returncode, p.stdout, p.stderr) == (0, "a\n", "")
