"""A Dask LocalCluster for the tests, in a process of its own: 2 worker
processes on loopback, no dashboard. Prints the scheduler's address on one
line, then runs until its stdin closes (the test's end, or the test
process's death), and closes the cluster.

Run: python dask_cluster.py [THREADS_PER_WORKER]
"""

import sys

from distributed import LocalCluster


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    with LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=threads,
        dashboard_address=None,
        host="127.0.0.1",
        silence_logs=40,
    ) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
