"""ferroproc.jobs: what happens to a job's output — bounded capture,
counting without keeping, per-job files, a caller's fd, streaming."""

from __future__ import annotations

import os
from pathlib import Path

from jobs_support import run, sh

from ferroproc.jobs import JobResult, Runner


def test_capture_is_capped_per_stream_and_everything_is_counted() -> None:
    jobs = [sh("head -c 100000 /dev/zero; head -c 50 /dev/zero >&2"), sh("printf 12345")]
    _, results = run(jobs, maxBytes=1000, concurrency=1)
    big, small = sorted(results)
    assert big.out == bytes(1000) and big.err == bytes(50)
    assert big.truncated and big.received == 100000
    assert small.out == b"12345" and not small.truncated and small.received == 5


def test_a_cap_inside_a_chunk_keeps_its_head() -> None:
    _, (r,) = run([sh("printf abcdefghij")], maxBytes=4)
    assert (r.out, r.truncated, r.received) == (b"abcd", True, 10)


def test_unbounded_capture_and_zero_capture() -> None:
    _, (r,) = run([sh("head -c 3000000 /dev/urandom | od -An -v | head -c 2500000")], maxBytes=None)
    assert len(r.out) == 2500000 and not r.truncated
    _, (z,) = run([sh("echo hi; echo there >&2")], maxBytes=0)
    assert (z.out, z.err, z.truncated, z.received) == (b"", b"", True, 3)


def test_without_capture_output_is_counted_only() -> None:
    _, (r,) = run([sh("head -c 70000 /dev/zero; echo e >&2")], capture=False)
    assert (r.out, r.err, r.truncated, r.received) == (b"", b"", False, 70000)


def test_results_go_to_files_per_job(tmp_path: Path) -> None:
    d = tmp_path / "res"
    jobs = [sh(f"echo out {i}; echo err {i} >&2; exit {i % 2}") for i in range(1, 4)]
    summary, results = run(jobs, results=d, concurrency=2)
    for r in results:
        assert r.outPath == str(d / str(r.seq) / "stdout") and r.errPath == str(d / str(r.seq) / "stderr")
        assert Path(r.outPath).read_bytes() == f"out {r.seq}\n".encode()
        assert Path(r.errPath).read_bytes() == f"err {r.seq}\n".encode()
        assert (r.out, r.err) == (b"", b"")
        assert r.received == len(f"out {r.seq}\n")
    assert summary.failed == 2


def test_a_retried_job_leaves_its_last_attempts_output(tmp_path: Path) -> None:
    d = tmp_path / "res"
    job = sh(
        f"n=$(cat {tmp_path}/n 2>/dev/null || echo 0); echo $((n+1)) > {tmp_path}/n; echo attempt $n; exit $((n<1))"
    )
    _, (r,) = run([job], results=d, retries=3)
    assert r.attempts == 2 and r.ok
    assert Path(r.outPath or "").read_bytes() == b"attempt 1\n"


def test_results_that_cannot_be_written_fail_the_job(tmp_path: Path) -> None:
    d = tmp_path / "res"
    d.mkdir()
    (d / "1").write_text("a file where the job's directory goes")
    _, (r,) = run([sh("echo x")], results=d)
    assert r.exitCode == 126 and b"cannot open the job's output files" in r.err


def test_stdout_to_a_callers_fd(tmp_path: Path) -> None:
    path = tmp_path / "all"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC)
    try:
        _, results = run([sh(f"echo line {i}; echo e{i} >&2") for i in range(5)], stdout=fd, concurrency=2)
    finally:
        os.close(fd)
    assert sorted(path.read_text().splitlines()) == [f"line {i}" for i in range(5)]
    assert all(r.out == b"" and r.received == 0 and r.err.startswith(b"e") for r in results)


def test_on_output_streams_each_piece_before_the_jobs_result() -> None:
    events: list[tuple[str, int, int, bytes]] = []

    def onOutput(seq: int, fd: int, data: bytes) -> None:
        events.append(("data", seq, fd, data))

    def onResult(r: JobResult) -> None:
        events.append(("end", r.seq, 0, b""))

    jobs = [sh(f"echo a{i}; sleep 0.05; echo b{i} >&2; echo c{i}") for i in range(4)]
    runner = Runner(concurrency=4, onOutput=onOutput, maxBytes=2)
    from helpers import run_reactor

    run_reactor(runner.run(jobs, onResult), 10)
    for seq in range(1, 5):
        mine = [e for e in events if e[1] == seq]
        assert mine[-1][0] == "end"
        out = b"".join(e[3] for e in mine if e[0] == "data" and e[2] == 1)
        err = b"".join(e[3] for e in mine if e[0] == "data" and e[2] == 2)
        assert out == f"a{seq - 1}\nc{seq - 1}\n".encode() and err == f"b{seq - 1}\n".encode()
