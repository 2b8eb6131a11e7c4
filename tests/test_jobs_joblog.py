"""ferroproc.jobs: the job log in GNU parallel's ``--joblog`` format (read
by GNU parallel itself where it is installed), and resume / resume-failed,
with every job's result exactly once across the runs."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import run_reactor
from jobs_support import (
    ENV,
    run,
    settle_engines,  # noqa: F401 - no_leaks calls it
    sh,
)

from ferroproc.jobs import Job, Runner
from ferroproc.jobs._joblog import HEADER, readResumeSet

PARALLEL = shutil.which("parallel")
needs_parallel = pytest.mark.skipif(PARALLEL is None, reason="GNU parallel is not installed (Debian: parallel)")

#: GNU parallel's own test for a job log line (open_joblog, --resume).
GNU_LINE = re.compile(r"^\d+\s+[^\s]+\s+([-0-9.]+\s+){6}")
#: And for one that succeeded (--resume-failed).
GNU_OK = re.compile(r"^(\d+)(?:\t[^\t]+){5}\t0\t0\t")


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


def test_the_log_has_gnu_parallels_format(tmp_path: Path) -> None:
    log = tmp_path / "log"
    jobs = [sh("echo hello"), sh("exit 3"), sh("kill -9 $$"), sh("sleep 5", timeout=0.2), Job(("echo", "a b", "c'd"))]
    run(jobs, joblog=log, killGrace=1, concurrency=5)
    text = log.read_bytes()
    assert text.startswith(HEADER)
    rows = {int(r.split("\t")[0]): r.split("\t") for r in lines(log)[1:]}
    assert sorted(rows) == [1, 2, 3, 4, 5]
    for row in rows.values():
        assert GNU_LINE.match("\t".join(row)), row
        assert row[1] == ":" and re.fullmatch(r"\d+\.\d{3}", row[2]) and re.fullmatch(r" *\d+\.\d{3}", row[3])
        assert len(row[3]) >= 10
    assert rows[1][4:9] == ["0", "6", "0", "0", "echo hello"]
    assert rows[2][6:8] == ["3", "0"]
    assert rows[3][6:8] == ["0", "9"], "a signal: exit value 0, the signal"
    assert rows[4][6:8] == ["-1", "15"], "a timeout: -1, the signal that stopped it"
    assert rows[5][8] == "echo 'a b' 'c'\"'\"'d'"
    assert sorted(int(m.group(1)) for r in lines(log)[1:] if (m := GNU_OK.match(r))) == [1, 5]


def test_newlines_in_a_command_are_written_as_nul(tmp_path: Path) -> None:
    log = tmp_path / "log"
    run([sh("echo a\necho b")], joblog=log)
    (row,) = log.read_bytes().splitlines()[1:]
    assert row.endswith(b"\techo a\0echo b")


def test_resume_skips_what_the_log_shows_and_reports_each_job_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    jobs = [sh(f"exit {e}") for e in (0, 1, 0, 2, 0, 0)]
    first, results1 = run(jobs, joblog=log, halt="soon,done=4", concurrency=1)
    assert [r.seq for r in results1] == [1, 2, 3, 4] and first.halted
    second, results2 = run(jobs, joblog=log, resume=True, concurrency=2)
    assert sorted(r.seq for r in results2) == [5, 6]
    assert (second.skipped, second.total, second.succeeded) == (4, 6, 2)
    seqs = sorted(int(line.split("\t")[0]) for line in lines(log)[1:])
    assert seqs == [1, 2, 3, 4, 5, 6], "appended, one line per job"
    assert lines(log)[0].startswith("Seq\t"), "one header"
    third, results3 = run(jobs, joblog=log, resume="failed")
    assert sorted(r.seq for r in results3) == [2, 4]
    assert third.skipped == 4
    again, results4 = run(jobs, joblog=log, resume=True)
    assert results4 == [] and again.skipped == 6


def test_the_runner_counts_skipped_jobs_as_it_reads_the_input(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(HEADER + b"".join(b"%d\t:\t1.000\t     0.001\t0\t0\t0\t0\ttrue\n" % s for s in (1, 2, 4)))
    runner = Runner(joblog=log, resume=True, concurrency=1)
    assert runner.skipped == 0
    asked: list[int] = []

    def jobs() -> Iterator[Job]:
        for _ in range(5):
            asked.append(runner.skipped)  # as the runner asks for the next job
            yield sh("true")

    results: list[int] = []
    summary = run_reactor(runner.run(jobs(), lambda r: results.append(r.seq)), 30)
    assert asked == [0, 1, 2, 2, 3], "counted as the input is read"
    assert results == [3, 5] and summary.skipped == 3 == runner.skipped


def test_resume_with_keep_order_and_a_missing_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(HEADER + b"2\t:\t1.000\t     0.001\t0\t0\t0\t0\ttrue\n")
    _, results = run([sh("true")] * 4, joblog=log, resume=True, keepOrder=True, concurrency=4)
    assert [r.seq for r in results] == [1, 3, 4]
    fresh = tmp_path / "new"
    summary, results = run([sh("true")] * 2, joblog=fresh, resume=True)
    assert summary.skipped == 0 and len(results) == 2 and lines(fresh)[0].startswith("Seq")


def test_the_host_column_is_the_callers_name_and_a_colon_by_default(tmp_path: Path) -> None:
    log = tmp_path / "log"
    run([sh("true"), sh("exit 3")], joblog=log, joblogHost="node7.example", concurrency=1)
    assert [line.split("\t")[1] for line in lines(log)[1:]] == ["node7.example"] * 2
    run([sh("true"), sh("exit 3")], joblog=log, resume="failed")
    rows = [line.split("\t") for line in lines(log)[1:]]
    assert [(r[0], r[1]) for r in rows] == [("1", "node7.example"), ("2", "node7.example"), ("2", ":")]


@pytest.mark.parametrize(
    ("host", "error"),
    [
        ("", ValueError),
        ("a\tb", ValueError),
        ("a\nb", ValueError),
        ("a\0b", ValueError),
        (b"h", TypeError),
        (None, TypeError),
    ],
)
def test_a_host_that_would_break_the_log_is_refused(host: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="joblogHost must be"):
        Runner(joblog="unused", joblogHost=host)  # type: ignore[arg-type]


def test_joblog_append_adds_to_the_log_without_resuming(tmp_path: Path) -> None:
    log = tmp_path / "log"
    run([sh("true")], joblog=log)
    summary, results = run([sh("true")] * 2, joblog=log, joblogAppend=True)
    assert len(results) == 2 and summary.skipped == 0, "nothing skipped: not a resume"
    seqs = [line.split("\t")[0] for line in lines(log)]
    assert seqs[:2] == ["Seq", "1"] and sorted(seqs[2:]) == ["1", "2"], "one header, lines added"
    fresh = tmp_path / "fresh"
    run([sh("true")], joblog=fresh, joblogAppend=True)
    assert lines(fresh)[0].startswith("Seq\t"), "a new log gets its header"
    with pytest.raises(TypeError, match="joblogAppend must be"):
        Runner(joblog=log, joblogAppend=1)  # type: ignore[arg-type]


def test_a_log_that_is_not_a_job_log_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("Seq\tHost\tStarttime\n1\tnot a job line\n")
    with pytest.raises(ValueError, match="line 2 is not a job log line"):
        Runner(joblog=log, resume=True).run([sh("true")])


def test_a_log_that_cannot_be_opened_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Runner(joblog=tmp_path / "no" / "such" / "dir" / "log").run([sh("true")])


@needs_parallel
def test_gnu_parallel_resumes_from_our_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    args = ["a", "b", "c", "d", "e"]
    jobs = [Job(("sh", "-c", f'echo {a}; [ "{a}" != b ]'), env=ENV) for a in args]
    run(jobs, joblog=log, halt="soon,done=3", concurrency=1)
    assert PARALLEL is not None
    cmd = [PARALLEL, "--will-cite", "-j1", "-k", "--joblog", str(log)]
    out = subprocess.run(
        [*cmd, "--resume", "echo", ":::", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.split() == ["d", "e"], out.stderr
    out = subprocess.run(
        [*cmd, "--resume-failed", "echo", ":::", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.split() == ["b"], "only the failed job: d and e are in the log now"


@needs_parallel
def test_we_resume_from_gnu_parallels_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert PARALLEL is not None
    subprocess.run(
        [PARALLEL, "--will-cite", "-j1", "--joblog", str(log), "exit {}", ":::", "0", "1", "0"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert readResumeSet(log, failedToo=False).count == 3
    jobs = [sh("true")] * 5
    _, results = run(jobs, joblog=log, resume=True)
    assert sorted(r.seq for r in results) == [4, 5]
    log2 = tmp_path / "log2"
    log2.write_bytes(
        b"".join(line for line in log.read_bytes().splitlines(True) if not line.startswith((b"4\t", b"5\t")))
    )
    _, results = run(jobs, joblog=log2, resume="failed")
    assert sorted(r.seq for r in results) == [2, 4, 5]


def test_the_log_is_written_even_when_the_run_fails(tmp_path: Path) -> None:
    log = tmp_path / "log"
    d = Runner(joblog=log, concurrency=1).run([sh("true"), 7])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="job 2"):
        run_reactor(d, 10)
    assert [line.split("\t")[0] for line in lines(log)] == ["Seq", "1"]
