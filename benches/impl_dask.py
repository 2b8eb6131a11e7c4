"""S12, the same jobs on a Dask cluster: ``ferroproc.jobs.dask.DaskRunner`` on a ``LocalCluster``
of 2 worker processes (1 thread each) on this machine, against the local runner
(``ferroproc.jobs.runJobs``) running the same jobs with the same total concurrency.

The cluster is started, and warmed with 100 jobs (its workers import ferroproc and make their
engines, as a running cluster has done long before), before the clock starts; its start time is
reported on its own. The scheduler runs in this process, as ``LocalCluster`` runs it; the parent
CPU (``cpu_us``) is this process's: the client's and the scheduler's.
"""

from __future__ import annotations

from typing import Any

from _common import ENV, NotApplicable, cpu_seconds, exe, now

PEERS = ("ferroproc", "ferroproc-dask")
SCENARIOS = {"S12"}
#: Worker processes, and threads (batches at once) per worker.
WORKERS, THREADS = 2, 1


def load(peer: str) -> str:
    if peer not in PEERS:
        raise NotApplicable(f"{peer} has no S12")
    return peer


def _local(n: int, conc: int) -> dict[str, Any]:
    from ferroproc import reactor
    from ferroproc.jobs import Job, JobResult, runJobs

    true = exe("true")
    failures = [0]

    def onResult(r: JobResult) -> None:
        if not r.ok:
            failures[0] += 1

    t0, c0 = now(), cpu_seconds()
    d = runJobs((Job((true,), env=ENV) for _ in range(n)), concurrency=conc, onResult=onResult)
    summary: list[Any] = []
    d.addBoth(lambda s: (summary.append(s), reactor.stop()))
    reactor.run()
    dt, cpu = now() - t0, cpu_seconds() - c0
    ok = getattr(summary[0], "succeeded", -1) == n - failures[0]
    return {"n": n, "seconds": dt, "rate": n / dt, "cpu_us": cpu / n * 1e6, "failures": failures[0], "ok": ok}


def _dask(n: int, conc: int) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from ferroproc import reactor
    from ferroproc.jobs import Job, JobResult
    from ferroproc.jobs.dask import DaskRunner

    true = exe("true")
    failures = [0]

    def onResult(r: JobResult) -> None:
        if not r.ok:
            failures[0] += 1

    def run(count: int) -> Any:
        runner = DaskRunner(client, concurrency=max(1, conc // (WORKERS * THREADS)))
        d = runner.run((Job((true,), env=ENV) for _ in range(count)), onResult)
        summary: list[Any] = []
        d.addBoth(lambda s: (summary.append(s), reactor.stop()))
        reactor.run()
        return summary[0]

    t0 = now()
    with (
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=THREADS,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        started = now() - t0
        run(100)
        failures[0] = 0
        t0, c0 = now(), cpu_seconds()
        summary = run(n)
        dt, cpu = now() - t0, cpu_seconds() - c0
    ok = getattr(summary, "succeeded", -1) == n - failures[0]
    return {
        "n": n,
        "seconds": dt,
        "rate": n / dt,
        "cpu_us": cpu / n * 1e6,
        "cluster_start": started,
        "failures": failures[0],
        "ok": ok,
    }


def run(peer: str, scenario: str, p: dict[str, Any]) -> dict[str, Any]:
    if peer == "ferroproc":
        return _local(p["n"], p["conc"])
    return _dask(p["n"], p["conc"])
