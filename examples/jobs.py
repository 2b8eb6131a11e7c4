"""Running many commands with ferroproc.jobs: checksums of a directory's files,
4 at a time, each with a time limit, one retry, a GNU parallel job log, and a
second run that resumes from that log (only what failed runs again).

Run: python examples/jobs.py [DIR]      (default: a few generated files)
"""

import asyncio
import os
import sys
import tempfile

from ferroproc import jobs


def checksum_jobs(directory: str):
    """One job per file, read lazily (a directory of millions would do)."""
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_file():
            yield jobs.Job(("sha256sum", entry.path), timeout=60)
    # A job that fails, to show a failure, its retry and the resume.
    yield jobs.Job.shell("echo 'no such file' >&2; exit 2")


def show(result: jobs.JobResult) -> None:
    if result.ok:
        digest, name = result.out.decode().split()
        print(f"{result.seq:3} {digest[:16]}  {os.path.basename(name)}")
    else:
        why = result.err.decode().strip()
        print(f"{result.seq:3} failed ({result.status}) after {result.attempts} attempts: {why}")


async def main(directory: str, log: str) -> int:
    runner = jobs.Runner(concurrency=4, retries=1, joblog=log, keepOrder=True)
    summary = await runner.run(checksum_jobs(directory), onResult=show)
    print(f"{summary.succeeded} done, {summary.failed} failed in {summary.elapsed:.2f}s")

    # Resume from the log: the jobs that succeeded are skipped.
    again = await jobs.runJobs(checksum_jobs(directory), joblog=log, resume="failed", onResult=show)
    print(f"resumed: {again.skipped} skipped, {again.failed} failed again")
    return summary.exitStatus


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        directory = sys.argv[1] if len(sys.argv) > 1 else os.path.join(tmp, "files")
        if len(sys.argv) == 1:
            os.mkdir(directory)
            for i in range(10):
                with open(os.path.join(directory, f"file{i:02}.txt"), "w") as f:
                    f.write("data\n" * (i + 1))
        sys.exit(asyncio.run(main(directory, os.path.join(tmp, "jobs.log"))))
