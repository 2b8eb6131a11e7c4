"""A run on a cluster, on the client (any engine): :class:`ClusterRunner`.

The same jobs in, the same :class:`JobResult` records out as the local
:class:`Runner`, from batches that the workers of a cluster run, each with
the local runner (``_batch.runBatch``). What is specific to an engine sits
behind the :class:`Executor` protocol (``ferroproc.jobs.dask`` is one), so
another engine is one more module:

- ``open(sink)``: get ready; call ``sink.ready(capacity)`` (how many
  batches are worth keeping submitted), again whenever that changes;
- ``submit(batch)``: run ``_batch.runBatch`` for it on a worker; report
  the chunks of results it sends with ``sink.chunks``, its end with
  ``sink.ended`` (the attempt's :class:`BatchStats`) or ``sink.failed``;
  if the worker dies, run it again (the engine may do that itself) with
  the jobs the client already has marked in the batch's ``skip`` bitmap;
- ``confirm(batchId, done)``: the client has the results of these jobs
  of the batch (a bitmap): an attempt starting from now on skips them;
- ``finished(batchId)``: the client needs nothing more of the batch;
- ``stop(now)``: attempts not yet started run nothing; those running start
  no more jobs, and with ``now`` stop their running jobs too;
- ``close()``: release everything, then ``sink.closed()``.

The executor may call the sink from any thread; the run moves each call to
its reactor's thread. Each job's result counts once: a batch rerun after a
worker died skips what the client has (``confirm``), and a result that
still comes twice (sent by the dead worker after the client last
confirmed) is dropped by job number here.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol, cast

from ferroproc._logger import logError
from ferroproc._spawnargs import SPAWN_PROCESS, ChildOptions, _envEntries, prepareSpawn
from ferroproc.defer import Deferred
from ferroproc.failure import Failure
from ferroproc.jobs._halt import HaltPolicy
from ferroproc.jobs._job import Job, JobResult, JobSummary
from ferroproc.jobs._joblog import JobLog, ResumeSet, command, readResumeSet
from ferroproc.jobs._runner import Runner, _asJob, _checkedSpawnCall, _seconds
from ferroproc.jobs._wire import (
    BatchSettings,
    BatchStats,
    PackedJob,
    bitmapHas,
    bitmapSet,
    loadResults,
    packJob,
    unpackResult,
)

__all__ = ["Batch", "BatchSink", "Chunk", "ClusterRunner", "Executor"]

_CHILD_OPTIONS = frozenset(ChildOptions.__optional_keys__)
#: Results kept for an async iterator whose reader lags, before no more batches go out.
_STREAM_BACKLOG = 256
#: The size of the first batches, before the run has measured how fast they go.
_FIRST_BATCH = 32
#: A batch is made to last about this long (seconds), once the run knows
#: how many jobs a batch runs per second: long enough that a batch's fixed
#: costs (a task, a few round trips to the scheduler) do not count, short
#: enough that the last batches end together and a dead worker costs little.
_BATCH_SECONDS = 1.0
#: ... and never has more jobs than this.
_MAX_BATCH = 10_000


class Batch(NamedTuple):
    """A batch for an :class:`Executor` to run on a worker."""

    #: The batch's number in this run, from 1.
    batchId: int
    #: Its jobs, packed (``_wire.packJob``).
    jobs: list[PackedJob]
    #: How the worker runs them.
    settings: BatchSettings


#: A chunk of results as the executor hands it over: the batch's number, the
#: attempt's id, the worker, its runner's ``started`` and ``running``
#: counters, and the packed results (``_wire.dumpResults``).
Chunk = tuple[int, str, str, int, int, bytes]


class BatchSink(Protocol):
    """Where an :class:`Executor` reports (from any thread)."""

    def ready(self, capacity: int) -> None:
        """Batches may be submitted: keep ``capacity`` of them submitted."""

    def chunks(self, chunks: list[Chunk]) -> None:
        """Results arrived."""

    def ended(self, batchId: int, stats: BatchStats) -> None:
        """An attempt at the batch ended (its chunks may still be on their way)."""

    def failed(self, batchId: int | None, error: BaseException) -> None:
        """The batch failed for good (``batchId`` None: the engine did)."""

    def closed(self) -> None:
        """``close()`` is done."""


class Executor(Protocol):
    """An engine that runs batches on workers (see the module's docstring)."""

    def open(self, sink: BatchSink) -> None: ...

    def submit(self, batch: Batch) -> None: ...

    def confirm(self, batchId: int, done: bytes) -> None: ...

    def finished(self, batchId: int) -> None: ...

    def stop(self, now: bool) -> None: ...

    def close(self) -> None: ...


class ClusterRunner:
    """Runs jobs on a cluster, as :class:`ferroproc.jobs.Runner` runs them
    here; an engine's runner (:class:`ferroproc.jobs.dask.DaskRunner`)
    gives it ``executor``, which makes the :class:`Executor` of each run.
    See :class:`ferroproc.jobs.dask.DaskRunner` for the arguments."""

    def __init__(
        self,
        executor: Callable[[], Executor],
        *,
        concurrency: int | None = None,
        batchSize: int | None = None,
        timeout: float | None = None,
        idleTimeout: float | None = None,
        killGrace: float = 5.0,
        retries: int = 0,
        retryDelay: float = 0.0,
        halt: str | HaltPolicy | None = None,
        memfree: int | str | None = None,
        maxBytes: int | None = 1 << 20,
        capture: bool = True,
        keepOrder: bool = False,
        joblog: str | os.PathLike[str] | None = None,
        resume: bool | Literal["failed"] = False,
        processGroup: bool = True,
        parentDeathSignal: int | str | None = "KILL",
        reactor: Any = None,
    ) -> None:
        # The local runner checks the options it shares with us, with the
        # same messages (and starts nothing; the reactor is checked below:
        # a run on a cluster needs no engine of its own).
        check = Runner(
            concurrency=1 if concurrency is None else concurrency,
            timeout=timeout,
            idleTimeout=idleTimeout,
            killGrace=killGrace,
            retries=retries,
            retryDelay=retryDelay,
            halt=halt,
            memfree=memfree,
            maxBytes=maxBytes,
            capture=capture,
            keepOrder=keepOrder,
            joblog=joblog,
            resume=resume,
            processGroup=processGroup,
            parentDeathSignal=parentDeathSignal,
        )
        _callFromThreadFor(reactor, check=True)
        if batchSize is not None and (not isinstance(batchSize, int) or isinstance(batchSize, bool) or batchSize < 1):
            raise ValueError(f"batchSize must be an int of at least 1 or None, not {batchSize!r}")
        self.concurrency = concurrency
        self.batchSize = batchSize
        self.halt = check.halt
        self.keepOrder = check.keepOrder
        self.joblog = joblog
        self.resume = resume
        self.settings = BatchSettings(
            concurrency=concurrency,
            timeout=check.timeout,
            idleTimeout=check.idleTimeout,
            killGrace=check.killGrace,
            retries=check.retries,
            retryDelay=check.retryDelay,
            memfree=check.memfree,
            maxBytes=check.maxBytes,
            capture=check.capture,
            processGroup=check.processGroup,
            parentDeathSignal=check.parentDeathSignal,
        )
        self._newExecutor = executor
        self._reactor = reactor
        self._run: _ClusterRun | None = None

    def run(
        self,
        jobs: Iterable[Job | Sequence[str | bytes]],
        onResult: Callable[[JobResult], object] | None = None,
    ) -> Deferred[JobSummary]:
        """Run ``jobs``: see :meth:`ferroproc.jobs.dask.DaskRunner.run`."""
        if self._run is not None and not self._run.finished:
            raise RuntimeError("this runner is already running jobs (make another one to run more at once)")
        if onResult is not None and not callable(onResult):
            raise TypeError("onResult must be callable or None")
        try:
            iterator = iter(jobs)
        except TypeError:
            raise TypeError(f"jobs must be an iterable of Job or argv sequences, not {type(jobs).__name__}") from None
        total = len(jobs) if isinstance(jobs, Sequence) else None
        self._run = _ClusterRun(self, iterator, total, onResult)
        return self._run.start()

    def stream(self, jobs: Iterable[Job | Sequence[str | bytes]]) -> AsyncIterator[JobResult]:
        """Run ``jobs``, yielding results: see :meth:`ferroproc.jobs.dask.DaskRunner.stream`."""
        return _stream(self, jobs)

    def cancel(self) -> None:
        """Stop the run: see :meth:`ferroproc.jobs.dask.DaskRunner.cancel`."""
        if self._run is not None:
            self._run.cancel()

    @property
    def running(self) -> int:
        """Jobs running now, as the workers last reported."""
        return self._run.running() if self._run is not None else 0

    @property
    def started(self) -> int:
        """Job attempts started in this run, as the workers last reported."""
        return self._run.started() if self._run is not None else 0

    @property
    def done(self) -> int:
        """Jobs reported so far in this run (succeeded or failed)."""
        return self._run.succeeded + self._run.failed if self._run is not None else 0

    @property
    def failed(self) -> int:
        """Jobs reported as failed so far in this run."""
        return self._run.failed if self._run is not None else 0


def _callFromThreadFor(reactor: Any, check: bool = False) -> Callable[..., None]:
    """How to call into the reactor's thread (the run's thread) from the
    executor's threads; with ``check``, only whether ``reactor`` is one."""
    from ferroproc._reactor import Reactor

    if reactor is None:
        from ferroproc import reactor as default

        reactor = default
    if not isinstance(reactor, Reactor) and not (
        callable(getattr(reactor, "callFromThread", None)) and callable(getattr(reactor, "callLater", None))
    ):
        raise TypeError(f"reactor must be ferroproc's reactor or a Twisted reactor, not {type(reactor).__name__}")
    if check:
        return cast("Callable[..., None]", reactor.callFromThread)
    if isinstance(reactor, Reactor):
        # Inside a running asyncio loop (the reactor not running), that loop
        # drives the engine, and so runs the calls.
        reactor._followAsyncio()
    return cast("Callable[..., None]", reactor.callFromThread)


class _Sink:
    """The executor's :class:`BatchSink`: every call moves to the run's thread."""

    def __init__(self, run: _ClusterRun, callFromThread: Callable[..., None]) -> None:
        self._run = run
        self._call = callFromThread

    def ready(self, capacity: int) -> None:
        self._call(self._run.ready, capacity)

    def chunks(self, chunks: list[Chunk]) -> None:
        self._call(self._run.chunks, chunks)

    def ended(self, batchId: int, stats: BatchStats) -> None:
        self._call(self._run.ended, batchId, stats)

    def failed(self, batchId: int | None, error: BaseException) -> None:
        self._call(self._run.batchFailed, batchId, error)

    def closed(self) -> None:
        self._call(self._run.closed)


class _Batch:
    """A batch the run has sent, until it is done."""

    __slots__ = ("attempts", "batchId", "done", "error", "jobs", "missing", "progress", "seqs", "stats")

    def __init__(self, batchId: int, seqs: list[int], jobs: list[Job]) -> None:
        self.batchId = batchId
        self.seqs = seqs
        self.jobs = jobs
        #: The jobs whose results the client has, by index.
        self.done = bytearray((len(seqs) + 7) >> 3)
        self.missing = len(seqs)
        #: Chunks received, per attempt.
        self.attempts: dict[str, int] = {}
        #: How the last attempt to end ended.
        self.stats: BatchStats | None = None
        self.error: BaseException | None = None
        #: The worker runner's (started, running), as last reported.
        self.progress = (0, 0)


#: The first callback of a cancelled run's Deferred: wait for the summary.
_WAIT_FOR_SUMMARY = object()


class _ClusterRun:
    """One run of a :class:`ClusterRunner`."""

    def __init__(
        self,
        runner: ClusterRunner,
        iterator: Iterator[Job | Sequence[str | bytes]],
        total: int | None,
        onResult: Callable[[JobResult], object] | None,
    ) -> None:
        self.runner = runner
        self.executor = runner._newExecutor()
        self.iterator = iterator
        #: The number of jobs, for a halt percentage (as the local runner
        #: counts it: ``len()`` of the input, or once the input is read).
        self.total = total
        self.onResult = onResult
        self.seq = 0
        self.succeeded = self.failed = self.skipped = 0
        self.exhausted = self.stopping = self.cancelled = self.halted = False
        self.finished = self.closing = False
        self.error: Failure | None = None
        self.haltStatus: int | None = None
        self.batches: dict[int, _Batch] = {}
        self.nextBatch = 1
        #: Batches worth keeping submitted (0 until the executor is ready).
        self.capacity = 0
        #: Jobs per second through one batch, as measured (None at first).
        self.rate: float | None = None
        self.startedBefore = 0
        self.held: dict[int, JobResult | None] = {}
        self.nextSeq = 1
        self.backlog: Callable[[], int] | None = None
        self.skip: ResumeSet | None = None
        self.log: JobLog | None = None
        self.deferred: Deferred[JobSummary] = Deferred(self._cancelDeferred)
        self.deferred.addCallback(self._waitIfCancelled)
        self.summaryReady: Deferred[JobSummary] | None = None
        self.began = time.monotonic()

    # -- the Deferred ------------------------------------------------------------

    def _cancelDeferred(self, d: Deferred[JobSummary]) -> None:
        self.cancel()
        if not d.called:
            self.summaryReady = Deferred()
            d.callback(cast(JobSummary, _WAIT_FOR_SUMMARY))

    def _waitIfCancelled(self, result: object) -> object:
        if result is _WAIT_FOR_SUMMARY:
            assert self.summaryReady is not None
            return self.summaryReady
        return result

    # -- start, input --------------------------------------------------------------

    def start(self) -> Deferred[JobSummary]:
        r = self.runner
        callFromThread = _callFromThreadFor(r._reactor)
        try:
            if r.joblog is not None:
                if r.resume:
                    self.skip = readResumeSet(r.joblog, failedToo=r.resume == "failed")
                self.log = JobLog(r.joblog, append=bool(r.resume))
            self.executor.open(_Sink(self, callFromThread))
        except BaseException:
            self.finished = True
            if self.log is not None:
                self.log.close()
            raise
        return self.deferred

    def ready(self, capacity: int) -> None:
        if self.finished:
            return
        self.capacity = max(1, capacity)
        self._fill()
        self._maybeFinish()

    def _batchSize(self) -> int:
        r = self.runner
        if r.batchSize is not None:
            return r.batchSize
        least = max(_FIRST_BATCH, 2 * (r.concurrency or 1))
        size = least if self.rate is None else int(self.rate * _BATCH_SECONDS)
        if self.total is not None:
            # Spread what is left over the batches in flight, so that the
            # last ones end together.
            size = min(size, math.ceil(max(self.total - self.seq, 1) / self.capacity))
        return min(max(size, least), _MAX_BATCH)

    def _fill(self) -> None:
        """Send batches until ``capacity`` are out (unless stopping, the
        input is read, or an async iterator's reader lags)."""
        while (
            not self.stopping
            and not self.exhausted
            and self.capacity
            and len(self.batches) < self.capacity
            and (self.backlog is None or self.backlog() < _STREAM_BACKLOG)
        ):
            batch = self._take(self._batchSize())
            if batch is None:
                continue
            self.batches[batch.batchId] = batch
            try:
                self.executor.submit(Batch(batch.batchId, [packJob(j) for j in batch.jobs], self.runner.settings))
            except Exception as e:  # noqa: BLE001 - the engine refused: stop the run with it
                del self.batches[batch.batchId]
                self._fail(e, f"jobs: the cluster refused batch {batch.batchId}: {e}")

    def _take(self, size: int) -> _Batch | None:
        """The next batch from the input (None when it had no job to run)."""
        seqs: list[int] = []
        jobs: list[Job] = []
        while len(seqs) < size:
            try:
                item = next(self.iterator)
            except StopIteration:
                self.exhausted = True
                if self.total is None:
                    self.total = self.seq - self.skipped
                break
            except Exception as e:  # noqa: BLE001 - the input failed: stop the run with it
                self._fail(e, f"jobs: the input raised {type(e).__name__} after job {self.seq}: {e}")
                return None
            self.seq += 1
            seq = self.seq
            if self.skip is not None and seq in self.skip:
                self.skipped += 1
                if self.runner.keepOrder:
                    self.held[seq] = None
                continue
            try:
                job = _checkJob(item, self.runner.settings)
            except (TypeError, ValueError, OSError) as e:
                self._fail(e, f"jobs: job {seq}: {e}")
                return None
            seqs.append(seq)
            jobs.append(job)
        if not seqs:
            self._flushHeld()
            return None
        batch = _Batch(self.nextBatch, seqs, jobs)
        self.nextBatch += 1
        return batch

    def _fail(self, e: BaseException, message: str) -> None:
        """Stop the run because of bad input or a failed batch; the Deferred
        fails with ``e`` (its message naming the job or batch)."""
        if self.error is None:
            try:
                e.args = (message,)
            except (AttributeError, TypeError):  # an exception class that refuses new args
                pass
            self.error = Failure(e)
        self.cancel()

    # -- stopping --------------------------------------------------------------------

    def cancel(self) -> None:
        if self.finished or self.closing or (self.stopping and self.cancelled):
            return
        self.cancelled = True
        self._stop(now=True)

    def _stop(self, now: bool) -> None:
        self.stopping = True
        try:
            self.executor.stop(now)
        finally:
            self._maybeFinish()

    # -- results -----------------------------------------------------------------------

    def chunks(self, chunks: list[Chunk]) -> None:
        if self.finished:
            return
        executor = self.executor
        for batchId, attempt, _host, started, running, payload in chunks:
            b = self.batches.get(batchId)
            if b is None:
                continue  # a dead attempt's, after the batch was done: the client has all of it
            b.attempts[attempt] = b.attempts.get(attempt, 0) + 1
            b.progress = (started, running)
            fresh = False
            for p in loadResults(payload):
                index = p[0]
                if bitmapHas(b.done, index):
                    continue  # sent again by a rerun of a batch whose worker died
                bitmapSet(b.done, index)
                b.missing -= 1
                fresh = True
                self._result(unpackResult(b.seqs[index], b.jobs[index], p))
            if fresh and b.missing:
                executor.confirm(batchId, bytes(b.done))
            self._check(b)
        if self.log is not None:
            self.log.flush()
        self._fill()
        self._maybeFinish()

    def ended(self, batchId: int, stats: BatchStats) -> None:
        b = self.batches.get(batchId)
        if self.finished or b is None:
            return
        b.stats = stats
        if stats.elapsed > 0 and stats.ran:
            rate = stats.ran / stats.elapsed
            self.rate = rate if self.rate is None else (self.rate + rate) / 2
        self._check(b)
        self._fill()
        self._maybeFinish()

    def batchFailed(self, batchId: int | None, error: BaseException) -> None:
        if self.finished:
            return
        if not (self.cancelled and self.error is None):
            # Unless the user cancelled the run (then a batch that could not
            # end well does not matter), the run fails with it.
            what = "the cluster" if batchId is None else f"batch {batchId}"
            self._fail(error, f"jobs: {what} failed: {type(error).__name__}: {error}")
        # No more results will come from the batch (from any batch, when the
        # engine itself failed).
        for b in list(self.batches.values()):
            if batchId is None or b.batchId == batchId:
                b.error = error
                self._check(b)
        self._maybeFinish()

    def _check(self, b: _Batch) -> None:
        """Whether the batch is done: its last attempt ended and every chunk
        that attempt sent has arrived (or it failed)."""
        stats = b.stats
        if b.error is None and (stats is None or b.attempts.get(stats.attempt, 0) < stats.chunks):
            return
        del self.batches[b.batchId]
        self.startedBefore += b.progress[0]
        self.executor.finished(b.batchId)

    def _result(self, result: JobResult) -> None:
        if result.ok:
            self.succeeded += 1
        else:
            self.failed += 1
        if self.runner.halt is not None and not self.halted and not self.stopping:
            self._maybeHalt(result, self.runner.halt)
        if self.log is not None:
            self.log.write(result, command(result.job))
        if not self.runner.keepOrder:
            self._report(result)
            return
        self.held[result.seq] = result
        self._flushHeld()

    def _flushHeld(self) -> None:
        while self.nextSeq in self.held:
            held = self.held.pop(self.nextSeq)
            self.nextSeq += 1
            if held is not None:
                self._report(held)

    def _report(self, result: JobResult) -> None:
        if self.onResult is not None:
            try:
                self.onResult(result)
            except Exception as e:  # noqa: BLE001 - logged, the run goes on
                logError("onResult", e)

    def _maybeHalt(self, result: JobResult, policy: HaltPolicy) -> None:
        """GNU parallel's ``--halt``, counted here over every worker's jobs."""
        count = {"fail": self.failed, "success": self.succeeded, "done": self.succeeded + self.failed}[policy.on]
        if count == 0:
            return
        if policy.number is not None:
            reached = count >= policy.number
        else:
            reached = self.total is not None and count >= self.total * cast(float, policy.percent) / 100
        if not reached:
            return
        self.halted = True
        if policy.on == "success":
            self.haltStatus = 0
        elif policy.number == 1:
            self.haltStatus = result.status
        elif policy.percent is not None:
            self.haltStatus = math.ceil(self.failed / max(self.total or 1, 1) * 100)
        else:
            self.haltStatus = min(self.failed, 101)
        self._stop(now=policy.when == "now")

    def running(self) -> int:
        return sum(b.progress[1] for b in self.batches.values())

    def started(self) -> int:
        return self.startedBefore + sum(b.progress[0] for b in self.batches.values())

    def resumeInput(self) -> None:
        """An async iterator's reader caught up: send more batches."""
        if not self.finished:
            self._fill()
            self._maybeFinish()

    # -- the end -------------------------------------------------------------------------

    def _maybeFinish(self) -> None:
        if self.finished or self.closing or not (self.exhausted or self.stopping) or self.batches:
            return
        self.closing = True
        try:
            self.executor.close()
        except Exception as e:  # noqa: BLE001 - the summary must still come
            logError("closing the cluster run", e)
            self.closed()

    def closed(self) -> None:
        if self.finished:
            return
        self.finished = True
        for seq in sorted(self.held):
            held = self.held.pop(seq)
            if held is not None:
                self._report(held)
        if self.log is not None:
            self.log.close()
        summary = JobSummary(
            total=self.seq,
            succeeded=self.succeeded,
            failed=self.failed,
            skipped=self.skipped,
            halted=self.halted,
            cancelled=self.cancelled and self.error is None,
            elapsed=time.monotonic() - self.began,
            haltStatus=self.haltStatus,
        )
        target = self.summaryReady if self.summaryReady is not None else self.deferred
        if self.error is not None:
            target.errback(self.error)
        else:
            target.callback(summary)


def _checkJob(item: object, settings: BatchSettings) -> Job:
    """The job ``item`` stands for, checked here as the local runner checks
    it, so that a mistake stops the run before it reaches a worker (with
    the same message)."""
    job = item if isinstance(item, Job) else _asJob(item)
    argv = job.argv
    if not isinstance(argv, (tuple, list)) or not argv:
        raise TypeError(f"argv must be a non-empty tuple of str or bytes, not {argv!r}")
    for i, a in enumerate(argv):
        if not isinstance(a, (str, bytes, os.PathLike)):
            raise TypeError(f"argv[{i}] must be str or bytes, not {type(a).__name__}")
        if b"\0" in os.fsencode(a):
            raise ValueError(f"argv[{i}] contains a NUL byte: {a!r}")
    _seconds(job.timeout, "timeout")
    _seconds(job.idleTimeout, "idleTimeout")
    if job.stdinBytes is not None and not isinstance(job.stdinBytes, bytes):
        raise TypeError(f"stdinBytes must be bytes or None, not {type(job.stdinBytes).__name__}")
    if job.env is not None:
        if not isinstance(job.env, Mapping):
            raise TypeError(f"env must be a mapping or None, not {type(job.env).__name__}")
        _checkedSpawnCall(_envEntries, job.env, SPAWN_PROCESS)
    if job.path is not None:
        cwd = os.fsencode(job.path)
        if not cwd or b"\0" in cwd:
            raise ValueError(f"path must be a non-empty path without NUL bytes, not {job.path!r}")
    if job.options:
        if not isinstance(job.options, Mapping):
            raise TypeError(f"options must be a mapping of ChildOptions, not {type(job.options).__name__}")
        unknown = sorted(set(job.options) - _CHILD_OPTIONS)
        if unknown:
            raise TypeError(f"options: {unknown[0]!r} is not one of spawnProcess's ChildOptions")
        _checkedSpawnCall(
            prepareSpawn,
            None,
            argv[0],
            argv,
            {},
            job.path,
            None,
            None,
            False,
            {0: 0, 1: 1, 2: 2},
            _options(job, settings),
        )
    return job


def _options(job: Job, settings: BatchSettings) -> dict[str, Any]:
    """The child options the worker's runner gives ``job``: its own over
    the runner's, as the local runner merges them."""
    options: dict[str, Any] = {}
    if settings.processGroup:
        options["processGroup"] = True
        options["killGroupOnExit"] = True
    if settings.parentDeathSignal is not None:
        options["parentDeathSignal"] = settings.parentDeathSignal
    if "processGroup" in job.options or "newSession" in job.options:
        options.pop("processGroup", None)
        if job.options.get("processGroup") is not True and not job.options.get("newSession"):
            options.pop("killGroupOnExit", None)
    options.update(job.options)
    return options


async def _stream(runner: ClusterRunner, jobs: Iterable[Job | Sequence[str | bytes]]) -> AsyncIterator[JobResult]:
    import asyncio

    loop = asyncio.get_running_loop()
    ready: deque[JobResult] = deque()
    waiter: list[asyncio.Future[None] | None] = [None]
    outcome: list[JobSummary | Failure | None] = [None]

    def wake() -> None:
        w = waiter[0]
        if w is not None and not w.done() and not loop.is_closed():
            w.set_result(None)

    def onResult(result: JobResult) -> None:
        ready.append(result)
        wake()

    def onEnd(result: JobSummary | Failure) -> None:
        outcome[0] = result
        wake()

    d = runner.run(jobs, onResult)
    run = runner._run
    assert run is not None
    run.backlog = lambda: len(ready)
    d.addBoth(onEnd)
    try:
        while True:
            while ready:
                result = ready.popleft()
                if len(ready) == _STREAM_BACKLOG // 2:
                    run.resumeInput()
                yield result
            if outcome[0] is not None:
                break
            future = waiter[0] = loop.create_future()
            await future
            waiter[0] = None
        end = outcome[0]
        if isinstance(end, Failure):
            end.raiseException()
    finally:
        if outcome[0] is None:
            runner.cancel()
            while outcome[0] is None:
                future = waiter[0] = loop.create_future()
                await future
