"""ferroproc.jobs.dask on a real Dask cluster: a ``LocalCluster`` with 2
worker processes, started once for the module in a process of its own (as
a cluster runs apart from its clients), and a ``distributed.Client`` here.

Every result arrives exactly once; a time limit and a cancel stop the
jobs' whole groups on the workers; a killed worker's jobs run on the other
worker and count once; nothing is left running on the workers. All checked
in the process table, not taken from the runner's word.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

distributed = pytest.importorskip(
    "distributed", reason="the Dask tests need Dask distributed: pip install 'ferroproc[dask]' (or 'dask[distributed]')"
)

from helpers import CHILDREN, PY, iterate_until, open_fds, our_children, run_reactor, wait_dead  # noqa: E402
from jobs_support import ENV, alive_in_table, grandchild_job, kill_if_alive, sh  # noqa: E402

from ferroproc.jobs import Job, JobResult, JobSummary  # noqa: E402
from ferroproc.jobs.dask import DaskRunner, runJobs  # noqa: E402


class Cluster(NamedTuple):
    #: The process running the LocalCluster (its scheduler and nannies).
    proc: subprocess.Popen[bytes]
    client: Any

    def workers(self) -> dict[str, int]:
        """Each worker's address and pid, as they are now."""
        pids: dict[str, int] = self.client.run(os.getpid)
        return pids

    def schedulerObjects(self) -> list[str]:
        """ferroproc's queues, variables and events on the scheduler."""

        # Defined here, so that Dask sends it by value (the scheduler cannot
        # import this module).
        def ours(dask_scheduler: Any) -> list[str]:
            ext = dask_scheduler.extensions
            names = [*ext["queues"].queues, *ext["variables"].variables, *ext["events"]._events]
            return sorted(str(n) for n in names if str(n).startswith("ferroproc-jobs-"))

        names: list[str] = self.client.run_on_scheduler(ours)
        return names

    def forgetSchedulerObjects(self) -> None:
        """Drop what runs left on the scheduler (a run whose client died)."""

        def forget(dask_scheduler: Any) -> None:
            ext = dask_scheduler.extensions
            queues, variables, events = ext["queues"], ext["variables"], ext["events"]
            for table in (queues.queues, queues.client_refcount, variables.variables, events._events):
                for name in [n for n in table if str(n).startswith("ferroproc-jobs-")]:
                    del table[name]

        self.client.run_on_scheduler(forget)

    def jobProcesses(self) -> list[tuple[int, int]]:
        """(pid, parent) of every process a worker process started: a job
        (or anything else) running on the cluster."""
        parents = _parents()
        workers = {pid for pid, parent in parents.items() if parent == self.proc.pid}
        return sorted((pid, parent) for pid, parent in parents.items() if parent in workers)


def _parents() -> dict[int, int]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            rest = stat[stat.rindex(")") + 2 :].split()
            if rest[0] != "Z":
                out[int(name)] = int(rest[1])
    return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    proc = subprocess.Popen([PY, str(CHILDREN / "dask_cluster.py"), "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        if not ready:
            pytest.fail("the Dask cluster did not start within 60 s")
        address = proc.stdout.readline().decode().strip()
        client = distributed.Client(address, timeout=30)
        try:
            cluster = Cluster(proc, client)
            run(cluster, [["true"]] * 4)  # what the client opens on first use, before no_leaks looks
            yield cluster
        finally:
            client.close()
    finally:
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _fdsButSockets() -> dict[int, str]:
    out = {}
    for fd in open_fds():
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if not target.startswith("socket:"):
            out[fd] = target
    return out


@pytest.fixture(autouse=True)
def no_leaks(cluster: Cluster) -> Iterator[None]:
    """conftest's check, for this module: the Dask client's connection pool
    opens and keeps sockets as it likes, so fds other than sockets must be
    as they were; no child of ours is left; no process is left running on
    the cluster's workers; and the scheduler keeps none of the runs' queues,
    variables and events."""
    before = _fdsButSockets()
    kids = {pid for pid, _ in our_children()}
    yield
    # Let the reactor deliver what a test started (its runs' ends).
    iterate_until(lambda: not cluster.jobProcesses() and not cluster.schedulerObjects(), 10.0)
    left = cluster.jobProcesses()
    kept = cluster.schedulerObjects()
    newKids = [(p, s) for p, s in our_children() if p not in kids]
    leaked = {fd: t for fd, t in _fdsButSockets().items() if before.get(fd) != t}
    assert not left, f"processes left running on the workers (pid, worker): {left}"
    assert not kept, f"runs' objects left on the scheduler: {kept}"
    assert not newKids, f"test left children behind (pid, state): {newKids}"
    assert not leaked, f"test leaked fds: {leaked}"


def run(cluster: Cluster, jobs: Any, timeout: float = 60.0, **options: Any) -> tuple[JobSummary, list[JobResult]]:
    """Run ``jobs`` with a DaskRunner made of ``options``; the summary and
    every result, in the order reported."""
    results: list[JobResult] = []
    summary = run_reactor(DaskRunner(cluster.client, **options).run(jobs, results.append), timeout)
    return summary, results


def dask_job(directory: Path, name: str, wait: bool = False) -> Job:
    """tests/children/dask_job.py: notes each start in ``DIR/NAME.starts``
    ("pid worker-pid"); with ``wait``, waits for ``DIR/go``."""
    return Job((PY, str(CHILDREN / "dask_job.py"), str(directory), name, *(["wait"] if wait else [])), env=ENV)


def starts(directory: Path, name: str) -> list[tuple[int, int]]:
    path = directory / f"{name}.starts"
    if not path.exists():
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in path.read_text().splitlines())]


# -- results ----------------------------------------------------------------------


def test_every_job_reports_exactly_once_from_many_batches(cluster: Cluster) -> None:
    jobs = [Job(("echo", str(i))) for i in range(1, 301)]
    summary, results = run(cluster, jobs, concurrency=4, batchSize=7)
    assert sorted(r.seq for r in results) == list(range(1, 301))
    for r in results:
        assert r.ok and r.out == f"{r.seq}\n".encode() and r.job is jobs[r.seq - 1]
        assert r.attempts == 1 and r.resourceUsage is not None and r.startTime > 0
    assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (300, 300, 0, 0)
    assert not summary.cancelled and not summary.halted and summary.exitStatus == 0


def test_results_in_input_order_a_job_log_and_resume(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "joblog"
    # Every third job fails the first time.
    first = [sh(f"echo {i}; exit {1 if i % 3 == 0 else 0}") for i in range(1, 31)]
    summary, results = run(cluster, iter(first), keepOrder=True, joblog=log, batchSize=4, concurrency=3)
    assert [r.seq for r in results] == list(range(1, 31)), "keepOrder: input order"
    assert (summary.succeeded, summary.failed, summary.exitStatus) == (20, 10, 10)
    lines = log.read_bytes().splitlines()
    assert lines[0].startswith(b"Seq\tHost\tStarttime")
    rows = {int(line.split(b"\t")[0]): line.split(b"\t") for line in lines[1:]}
    assert sorted(rows) == list(range(1, 31))
    assert rows[3][6] == b"1" and rows[4][6] == b"0" and rows[4][8] == b"echo 4; exit 0"
    # --resume-failed: only the failed ones run again (now they succeed).
    again = [sh(f"echo {i}") for i in range(1, 31)]
    summary, results = run(cluster, again, keepOrder=True, joblog=log, resume="failed", batchSize=4)
    assert [r.seq for r in results] == list(range(3, 31, 3))
    assert (summary.total, summary.succeeded, summary.skipped) == (30, 10, 20)
    assert len(log.read_bytes().splitlines()) == 1 + 30 + 10


def test_a_bad_job_stops_the_run_and_names_the_job(cluster: Cluster) -> None:
    jobs = [["true"], ["true"], Job(("true",), options={"nice": "very"})]
    with pytest.raises(ValueError, match=r"job 3: nice must be an int"):
        run(cluster, jobs, batchSize=1)
    with pytest.raises(TypeError, match=r"job 2: .*single str"):
        run(cluster, [["true"], "true"])


def test_bad_arguments_are_named(cluster: Cluster) -> None:
    with pytest.raises(TypeError, match=r"client must be a distributed\.Client, not str"):
        DaskRunner("tcp://127.0.0.1:8786")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batchSize must be an int of at least 1"):
        DaskRunner(cluster.client, batchSize=0)
    with pytest.raises(ValueError, match="concurrency must be an int of at least 1"):
        DaskRunner(cluster.client, concurrency=0)
    with pytest.raises(TypeError, match="reactor must be ferroproc's reactor or a Twisted reactor"):
        DaskRunner(cluster.client, reactor=object())
    with pytest.raises(ValueError, match="halt: 'sometimes' is not a halt policy"):
        DaskRunner(cluster.client, halt="sometimes")
    with pytest.raises(TypeError, match="jobs must be an iterable"):
        DaskRunner(cluster.client).run(42)  # type: ignore[arg-type]


def test_halt_now_on_the_first_failure_stops_every_worker(cluster: Cluster, tmp_path: Path) -> None:
    # Two batches (two tasks: they run at once, on 2 workers of 2 threads):
    # the job that fails waits until the three others have started.
    pidfiles = [tmp_path / f"g{i}" for i in range(3)]
    wait = " && ".join(f"[ -e {p} ]" for p in pidfiles)
    fail = sh(f"for i in $(seq 600); do {wait} && break; sleep 0.05; done; exit 7")
    jobs = [*(grandchild_job(p) for p in pidfiles), fail]
    try:
        summary, results = run(cluster, jobs, halt="now,fail=1", killGrace=1, concurrency=2, batchSize=2)
        pids = [int(p.read_text()) for p in pidfiles]
        assert all(wait_dead(pid, 5) for pid in pids), "a halted job's grandchild lived on"
    finally:
        kill_if_alive(int(p.read_text()) for p in pidfiles if p.exists())
    by = {r.seq: r for r in results}
    assert by[4].exitCode == 7 and not by[4].cancelled
    assert all(by[i].cancelled and by[i].signal == 15 for i in range(1, 4))
    assert summary.halted and summary.haltStatus == 7 and summary.exitStatus == 7


# -- what stops jobs on the workers ------------------------------------------------------


def test_a_job_that_times_out_on_a_worker_loses_its_grandchild(cluster: Cluster, tmp_path: Path) -> None:
    pidfiles = [tmp_path / f"g{i}" for i in range(2)]
    jobs = [grandchild_job(p, timeout=0.5) for p in pidfiles] + [sh("true")]
    try:
        summary, results = run(cluster, jobs, killGrace=1, batchSize=1)
        pids = [int(p.read_text()) for p in pidfiles]
        assert all(wait_dead(pid, 5) for pid in pids), "a grandchild outlived its job's timeout"
    finally:
        kill_if_alive(int(p.read_text()) for p in pidfiles if p.exists())
    by = {r.seq: r for r in results}
    assert by[1].timedOut and by[2].timedOut and by[1].signal == 15 and not by[1].ok
    assert by[3].ok
    assert (summary.succeeded, summary.failed) == (1, 2)


def test_cancel_stops_the_jobs_groups_on_the_workers(cluster: Cluster, tmp_path: Path) -> None:
    pidfiles = [tmp_path / f"g{i}" for i in range(4)]
    jobs = [grandchild_job(p) for p in pidfiles] + [sh("sleep 300")] * 20
    runner = DaskRunner(cluster.client, concurrency=2, batchSize=2, killGrace=1)
    results: list[JobResult] = []
    d = runner.run(jobs, results.append)
    try:
        assert iterate_until(lambda: all(p.exists() for p in pidfiles), 30), "the jobs did not start"
        pids = [int(p.read_text()) for p in pidfiles]
        on = {parent for _, parent in cluster.jobProcesses()}
        assert len(on) == 2, "both workers run jobs"
        runner.cancel()
        summary = run_reactor(d, 30)
        # The summary came after the workers ended their jobs: nothing runs there.
        assert cluster.jobProcesses() == []
        assert not any(alive_in_table(pid) for pid in pids), "a cancelled job's grandchild lived on"
    finally:
        kill_if_alive(int(p.read_text()) for p in pidfiles if p.exists())
    assert summary.cancelled and not summary.halted
    by = {r.seq: r for r in results}
    assert all(by[i].cancelled and not by[i].ok for i in range(1, 5))
    assert all(r.cancelled for r in results), "no job ended by itself"
    assert summary.failed == len(results) and summary.succeeded == 0


def test_a_killed_worker_s_jobs_run_on_the_other_worker_and_count_once(cluster: Cluster, tmp_path: Path) -> None:
    # Batches of 3: a quick job, then two that wait for the "go" file.
    jobs = []
    for b in range(4):
        jobs += [
            dask_job(tmp_path, f"{b}q"),
            dask_job(tmp_path, f"{b}a", wait=True),
            dask_job(tmp_path, f"{b}b", wait=True),
        ]
    names = [Path(j.argv[3]).name for j in jobs]
    runner = DaskRunner(cluster.client, concurrency=3, batchSize=3)
    results: list[JobResult] = []
    d = runner.run(jobs, results.append)
    executor = runner._run.executor  # type: ignore[union-attr]
    try:
        waiting = [n for n in names if not n.endswith("q")]
        assert iterate_until(lambda: all(starts(tmp_path, n) for n in waiting) and len(results) == 4, 30)
        workers = set(cluster.workers().values())
        dead = starts(tmp_path, "0a")[0][1]
        assert dead in workers
        doomed = [b for b in range(4) if starts(tmp_path, f"{b}a")[0][1] == dead]
        leaders = [starts(tmp_path, f"{b}{x}")[0][0] for b in doomed for x in "ab"]

        # The client has the quick jobs' results, and has told the scheduler.
        def confirmed() -> bool:
            return all(
                distributed.Variable(executor.names.skip(b + 1), client=cluster.client).get(timeout=5) == b"\x01"
                for b in doomed
            )

        assert iterate_until(confirmed, 10)
        os.kill(dead, signal.SIGKILL)
        assert all(wait_dead(pid, 10) for pid in leaders), "a job outlived its worker (parentDeathSignal)"
        # Dask runs the batches again elsewhere: only their unfinished jobs.
        assert iterate_until(lambda: all(len(starts(tmp_path, f"{b}{x}")) == 2 for b in doomed for x in "ab"), 60)
        (tmp_path / "go").touch()
        summary = run_reactor(d, 60)
    finally:
        (tmp_path / "go").touch()
        kill_if_alive(pid for n in names for pid, _ in starts(tmp_path, n))
    assert sorted(r.seq for r in results) == list(range(1, 13)), "each job's result exactly once"
    assert all(r.ok and r.attempts == 1 for r in results)
    assert (summary.succeeded, summary.failed, summary.cancelled) == (12, 0, False)
    for b in doomed:
        assert len(starts(tmp_path, f"{b}q")) == 1, "the rerun skipped the job the client had"
        for x in "ab":
            assert starts(tmp_path, f"{b}{x}")[1][1] != dead
    for b in set(range(4)) - set(doomed):
        assert all(len(starts(tmp_path, f"{b}{x}")) == 1 for x in "qab")


def test_a_client_that_dies_leaves_no_job_running_on_the_workers(cluster: Cluster, tmp_path: Path) -> None:
    # A client in a process of its own, killed while its jobs run: the
    # scheduler lets its tasks go, and the workers stop the jobs' groups.
    pidfiles = [tmp_path / f"g{i}" for i in range(2)]
    client = textwrap.dedent(
        """
        import sys
        from distributed import Client
        from ferroproc import reactor
        from ferroproc.jobs import Job
        from ferroproc.jobs.dask import DaskRunner

        jobs = [Job.shell(sys.argv[i], env={"PATH": "/usr/bin:/bin"}) for i in (2, 3)]
        DaskRunner(Client(sys.argv[1]), batchSize=1, killGrace=1).run(jobs)
        reactor.run()
        """
    )
    address = cluster.client.scheduler.address
    scripts = [grandchild_job(p).argv[2] for p in pidfiles]
    proc = subprocess.Popen([PY, "-c", client, address, *scripts])
    try:
        assert iterate_until(lambda: all(p.exists() for p in pidfiles), 30), "the jobs did not start"
        pids = [int(p.read_text()) for p in pidfiles]
        assert len(cluster.jobProcesses()) == 2
        proc.kill()
        proc.wait()
        assert all(wait_dead(pid, 15) for pid in pids), "a job of a dead client went on running"
        assert iterate_until(lambda: not cluster.jobProcesses(), 15)
    finally:
        proc.kill()
        proc.wait()
        kill_if_alive(int(p.read_text()) for p in pidfiles if p.exists())
        # What the dead client's run made on the scheduler stays there (its
        # queue, variables, events): nothing of Dask's ties them to a client.
        cluster.forgetSchedulerObjects()


# -- hosts and the example ----------------------------------------------------------------


def test_stream_and_await_inside_asyncio(cluster: Cluster) -> None:
    async def main() -> tuple[list[int], JobSummary, list[int]]:
        runner = DaskRunner(cluster.client, batchSize=5)
        seen = [r.seq async for r in runner.stream([["echo", str(i)] for i in range(20)])]
        summary = await runJobs([["true"]] * 10, cluster.client, batchSize=3)
        early = []
        stream = DaskRunner(cluster.client, batchSize=1, killGrace=0).stream([["true"], *[["sleep", "300"]] * 4])
        async with contextlib.aclosing(stream):  # the generator closed at once, in this loop
            async for r in stream:
                early.append(r.seq)
                break  # leaving the loop cancels the run, and waits for its end
        return seen, summary, early

    seen, summary, early = asyncio.run(main())
    assert sorted(seen) == list(range(1, 21))
    assert summary.succeeded == 10
    # The first result, whichever job it is (under load a sleep stopped by the
    # early exit may be reported before the true's result reaches the client).
    assert len(early) == 1


def test_under_a_twisted_reactor(cluster: Cluster) -> None:
    pytest.importorskip("twisted")
    from twisted.internet.epollreactor import EPollReactor

    r = EPollReactor()
    got: list[JobResult] = []
    outcome: list[Any] = []
    d = DaskRunner(cluster.client, reactor=r, batchSize=3).run([["echo", str(i)] for i in range(10)], got.append)
    d.addBoth(lambda s: (outcome.append(s), r.stop()))
    guard = r.callLater(30, r.stop)
    try:
        r.run(installSignalHandlers=False)
    finally:
        if guard.active():
            guard.cancel()
        # Release the test reactor's fds (a run on a cluster gives it no engine).
        assert "_ferroprocEngineReader" not in vars(r)
        for reader in list(getattr(r, "_internalReaders", ())):
            r.removeReader(reader)
            reader.connectionLost(None)
        r.disconnectAll()
        r._poller.close()
    (summary,) = outcome
    assert summary.succeeded == 10
    assert sorted(x.seq for x in got) == list(range(1, 11))


def test_the_example_runs(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "jobs_dask.py"
    done = subprocess.run([PY, str(example)], capture_output=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "100 jobs: 100 succeeded, 0 failed" in out
    assert "cancelled: True" in out
