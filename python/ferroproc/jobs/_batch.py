"""One batch of a cluster run, on a worker (any engine): the local
:class:`Runner` on an engine of its own, results sent back in chunks, and a
stop from the client obeyed.

An engine adapter (``ferroproc.jobs.dask``) calls :func:`runBatch` in the
worker's task with a :class:`BatchChannel`: how to learn which jobs the
client already has, how to send a chunk, how to hear that the client
stopped the run. Everything else is here, the same for every engine.

The task's thread runs a ferroproc :class:`Reactor` of its own (kept for
the thread's next batches): the engine's jobs are spawned from this thread,
so ``parentDeathSignal`` (Linux delivers it when the spawning *thread*
ends, and so when the worker process dies) reaches every job leader if the
worker is killed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from ferroproc._reactor import Reactor
from ferroproc.failure import Failure
from ferroproc.jobs._job import Job, JobResult, JobSummary
from ferroproc.jobs._runner import Runner
from ferroproc.jobs._wire import (
    BatchSettings,
    BatchStats,
    PackedJob,
    PackedResult,
    allDone,
    bitmapHas,
    dumpResults,
    packResult,
    unpackJob,
)

if TYPE_CHECKING:
    from ferroproc._core import DelayedCall

__all__ = ["BatchChannel", "runBatch"]


class BatchChannel(Protocol):
    """What :func:`runBatch` needs from the engine, on the worker."""

    def skip(self) -> bytes | None:
        """The bitmap of the batch's jobs not to run (the client has their
        results: this attempt reruns a batch whose worker died), or None
        when the client no longer wants the batch at all."""

    def slots(self) -> int:
        """How many jobs a batch runs at once when the client left it to
        the worker."""

    def send(self, payload: bytes, started: int, running: int) -> None:
        """Send a chunk of results to the client, in order, without
        waiting (called on the task's thread), with the batch runner's
        counters (job attempts started, jobs running) for progress displays."""

    def watch(self, onStop: Callable[[bool], None]) -> None:
        """Call ``onStop(now)`` (from any thread) when the client stops the
        run: ``now`` False: start no more jobs; True: stop the running ones too."""

    def close(self) -> int:
        """Stop watching, wait until every chunk is sent; how many were."""


#: How often a batch tells the client how many of its jobs run, when that
#: changed and no result told it.
PROGRESS_SECONDS = 1.0

#: Each worker thread's reactor, kept for its next batches (an engine per
#: batch would cost a poll fd and a wake-up fd each time).
_local = threading.local()


def _threadReactor() -> Reactor:
    reactor: Reactor | None = getattr(_local, "reactor", None)
    if reactor is None:
        reactor = _local.reactor = Reactor()
    return reactor


def runBatch(jobs: Sequence[PackedJob], settings: BatchSettings, channel: BatchChannel, attempt: str) -> BatchStats:
    """Run one attempt at a batch on this worker, in the calling thread,
    until every job it started has ended and been reaped; its results go to
    ``channel`` in chunks. Raises what the runner raised (a job it could
    not accept); the channel is closed in any case."""
    try:
        skip = channel.skip()
        if skip is None:
            skip = allDone(len(jobs))
        todo = [i for i in range(len(jobs)) if not bitmapHas(skip, i)]
        if not todo:
            return BatchStats(attempt, channel.close(), 0, len(jobs), 0.0)
        batch = _Batch(jobs, todo, settings, channel)
        summary = batch.run()
    except BaseException:
        channel.close()
        raise
    return BatchStats(attempt, channel.close(), batch.taken, len(jobs) - len(todo), summary.elapsed)


class _Batch:
    def __init__(
        self, jobs: Sequence[PackedJob], todo: list[int], settings: BatchSettings, channel: BatchChannel
    ) -> None:
        self.jobs = jobs
        #: The batch indexes of the jobs to run, in order: the runner's job
        #: number n is ``todo[n - 1]``.
        self.todo = todo
        self.settings = settings
        self.channel = channel
        self.reactor = _threadReactor()
        self.runner = Runner(
            concurrency=settings.concurrency or channel.slots(), reactor=self.reactor, **settings.runnerOptions()
        )
        self.buffer: list[PackedResult] = []
        self.bytes = 0
        self.timer: DelayedCall | None = None
        #: Set from the channel's thread when the client stops the run: the
        #: input ends there (no more jobs start).
        self.stopped = False
        #: Jobs handed to the runner.
        self.taken = 0
        #: The counters the client last heard, and the call that tells it
        #: when they change while no result goes out.
        self.told = (0, 0)
        self.ticker: DelayedCall | None = None

    def run(self) -> JobSummary:
        outcome: list[JobSummary | Failure] = []

        def done(result: JobSummary | Failure) -> None:
            outcome.append(result)
            if self.reactor.running:
                self.reactor.stop()

        self.channel.watch(self._onStop)
        d = self.runner.run(self._input(), self._onResult)
        d.addBoth(done)
        if not outcome:
            self.ticker = self.reactor.callLater(self.settings.flushSeconds, self._tick)
            self.reactor.run(installSignalHandlers=False)
        if self.ticker is not None and self.ticker.active():
            self.ticker.cancel()
        self._flush()
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        assert isinstance(result, JobSummary)
        return result

    def _input(self) -> Iterator[Job]:
        for i in self.todo:
            if self.stopped:
                return
            self.taken += 1
            yield unpackJob(self.jobs[i])

    def _onStop(self, now: bool) -> None:
        """The client stopped the run (called from the channel's thread)."""
        self.stopped = True
        if now:
            self.reactor.callFromThread(self.runner.cancel)

    def _onResult(self, r: JobResult) -> None:
        self.buffer.append(packResult(self.todo[r.seq - 1], r))
        self.bytes += len(r.out) + len(r.err)
        s = self.settings
        if len(self.buffer) >= s.flushResults or self.bytes >= s.flushBytes:
            self._flush()
        elif self.timer is None:
            self.timer = self.reactor.callLater(s.flushSeconds, self._onTimer)

    def _onTimer(self) -> None:
        self.timer = None
        self._flush()

    def _tick(self) -> None:
        """Tell the client how many jobs run, when that changed and no
        result has told it (long jobs), at most every ``PROGRESS_SECONDS``."""
        self.ticker = self.reactor.callLater(PROGRESS_SECONDS, self._tick)
        if (self.runner.started, self.runner.running) != self.told:
            self._flush(always=True)

    def _flush(self, always: bool = False) -> None:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None
        if self.buffer or always:
            payload = dumpResults(self.buffer)
            self.buffer = []
            self.bytes = 0
            self.told = (self.runner.started, self.runner.running)
            self.channel.send(payload, *self.told)
