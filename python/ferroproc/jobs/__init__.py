"""Run many commands: a concurrency limit, time limits that stop a job's
whole process group, retries, a halt policy, a job log that GNU parallel's
tools read, and resume, with the scheduling loop in ferroproc's Rust core.

When a job ends, the next one is started from Rust in the same loop turn,
with no Python in between (with more than one slot, by one of a few Rust
spawner threads, so that the loop never waits for a child's ``exec``);
Python sees the finished jobs in batches (one call per turn), so a slow
callback never leaves a slot idle. The input is read lazily (a generator of
millions of jobs is fine), and finished results are not kept.

Example::

    from ferroproc import jobs

    async def main():
        summary = await jobs.runJobs(
            (["gzip", "-9", path] for path in paths),
            concurrency=8,
            timeout=600,
            joblog="gzip.log",
            onResult=lambda r: print(r.seq, r.status),
        )
        print(summary.succeeded, "done,", summary.failed, "failed")

Each job runs in its own process group (``processGroup=True``), which is
killed with it: when its time limit runs out (SIGTERM, then SIGKILL after
``killGrace``), when the run is cancelled or halted, and when the job's
program exits while others of its group are left (``killGroupOnExit``, on
by default; pass ``options={"killGroupOnExit": False}`` in a
:class:`Job` to keep them). Every job gets ``parentDeathSignal="KILL"``, so
a runner killed with SIGKILL leaves no job's program running; processes a
job started itself are not reached that way (their parent, the job, is gone
first): give jobs a ``cgroup`` to contain those too.

The runner works on ferroproc's reactor (the default), inside any running
asyncio loop (asyncio's own, ferroproc's, uvloop), and under Twisted
(``Runner(reactor=twistedReactor)`` with :mod:`ferroproc.twisted`).
"""

from ferroproc.jobs._halt import HaltPolicy
from ferroproc.jobs._job import Job, JobResult, JobSummary
from ferroproc.jobs._runner import ResultStream, Runner, runJobs

__all__ = ["HaltPolicy", "Job", "JobResult", "JobSummary", "ResultStream", "Runner", "runJobs"]
