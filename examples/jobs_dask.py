"""Many commands on a Dask cluster: ferroproc.jobs.dask.

Starts a small Dask cluster on this machine (2 worker processes; point a
Client at your scheduler's address instead to use a real one), then:

1. runs 100 jobs on it, each result as it arrives, and the summary;
2. cancels a run of long jobs: their process groups stop on the workers.

Run: python examples/jobs_dask.py    (needs: pip install 'ferroproc[dask]')
"""

import asyncio

from distributed import Client, LocalCluster

from ferroproc.jobs import Job
from ferroproc.jobs.dask import DaskRunner


async def main(client: Client) -> None:
    # 1. Word counts of 100 generated texts, 4 jobs at a time per batch.
    jobs = (Job(("wc", "-w"), stdinBytes=b"word " * n, timeout=30) for n in range(100))
    counts = {}
    runner = DaskRunner(client, concurrency=4)
    summary = await runner.run(jobs, onResult=lambda r: counts.__setitem__(r.seq, int(r.out)))
    print(f"{summary.total} jobs: {summary.succeeded} succeeded, {summary.failed} failed ({summary.elapsed:.2f} s)")
    print("word counts of jobs 1-5:", [counts[seq] for seq in range(1, 6)])

    # 2. Long jobs, cancelled once the first has started: every running
    # job's group gets SIGTERM on its worker, and the summary waits for them.
    runner = DaskRunner(client, concurrency=2, killGrace=1)
    run = runner.run([Job.shell("echo started; sleep 600")] * 8)
    while runner.running == 0:
        await asyncio.sleep(0.05)
    runner.cancel()
    summary = await run
    print(f"cancelled: {summary.cancelled}, {summary.failed} jobs stopped")


if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        asyncio.run(main(client))
