"""Run jobs on a Dask distributed cluster, when one machine is not enough.

:class:`DaskRunner` takes the same jobs as :class:`ferroproc.jobs.Runner`
and gives the same :class:`~ferroproc.jobs.JobResult` records, as they
finish, and the same :class:`~ferroproc.jobs.JobSummary`. The jobs go to
the workers in batches (one Dask task each); each worker runs a batch with
ferroproc's local runner, so every job leads its own process group, time
limits stop the whole group on the worker, and results come back in chunks
as jobs end. ferroproc adds what Dask lacks:

- **cancel stops the jobs**: Dask's ``Future.cancel`` leaves a running
  command running; :meth:`DaskRunner.cancel` (or cancelling the Deferred,
  the awaiting task, the async iterator) tells every worker, through a
  ``distributed.Event``, to stop its running jobs' process groups (SIGTERM,
  then SIGKILL after ``killGrace``), and the summary comes once every batch
  has ended;
- **each result counts once**: Dask runs a task again when its worker dies
  (even with ``retries=0``); the rerun skips the jobs whose results the
  client already has (a ``distributed.Variable`` per batch, kept up to
  date), and a result that still arrives twice is dropped by job number.
  A job that was running on the dead worker runs again elsewhere, so jobs
  should be safe to run twice (as with any retry);
- **no job outlives its worker**: every job gets ``parentDeathSignal``
  (SIGKILL by default), so a killed worker leaves no job leader behind.
  Processes a job started itself are not reached that way: give jobs a
  ``cgroup`` to contain those too.

Example::

    from distributed import Client
    from ferroproc.jobs.dask import DaskRunner

    async def main():
        with Client("tcp://scheduler:8786") as client:
            runner = DaskRunner(client, concurrency=8, timeout=600, joblog="gzip.log")
            summary = await runner.run(
                (["gzip", "-9", path] for path in paths),
                onResult=lambda r: print(r.seq, r.status),
            )

The jobs run on the workers' machines: paths, programs and the
environment (``env=None``) are the workers'. Dask runs the code a client
sends, and so does ferroproc: bind the scheduler and workers to loopback or
a private network, or use Dask's TLS security.

Needs the ``dask`` extra: ``pip install 'ferroproc[dask]'`` (Dask
distributed 2024.1 or later), on the client and on every worker.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

if importlib.util.find_spec("distributed") is None:  # pragma: no cover - the test suite has the extra
    raise ImportError(
        "ferroproc.jobs.dask needs Dask distributed: pip install 'ferroproc[dask]' "
        "(or 'dask[distributed]'), on the client and on every worker"
    )

import distributed
from distributed import Event, Queue, Variable, get_client, get_worker

from ferroproc.jobs._batch import runBatch
from ferroproc.jobs._cluster import Batch, BatchSink, Chunk, ClusterRunner
from ferroproc.jobs._wire import BatchSettings, BatchStats, PackedJob, allDone

if TYPE_CHECKING:
    from ferroproc.defer import Deferred
    from ferroproc.jobs._halt import HaltPolicy
    from ferroproc.jobs._job import Job, JobResult, JobSummary

__all__ = ["DaskRunner", "runJobs"]

_log = logging.getLogger("ferroproc")

#: How long one wait of a worker's stop watcher (and of the client's result
#: reader) lasts on the scheduler: a watcher whose batches have ended lets
#: go within that time.
_POLL_SECONDS = 2.0
#: How long a batch waits for its skip bitmap (set before the batch is
#: submitted; missing only when the client has dropped the batch).
_SKIP_SECONDS = 10.0
#: How often the client asks the scheduler how many threads the cluster has.
_CAPACITY_SECONDS = 2.0
#: How long closing a run waits for its last exchanges with the scheduler.
_CLOSE_SECONDS = 10.0
#: The last item of a run's result queue.
_END = "end"


class DaskRunner(ClusterRunner):
    """Runs jobs on the Dask cluster ``client`` is connected to, as
    :class:`ferroproc.jobs.Runner` runs them on this machine.

    ``client`` is a ``distributed.Client`` (a synchronous one: the usual
    ``Client(address)`` or ``Client(LocalCluster(...))``). The other
    arguments (keyword-only) are the local runner's, except:

    - ``concurrency``: how many jobs a batch runs at once on its worker
      (default: the worker's CPUs divided by its threads, at least 1). A
      worker runs as many batches at once as it has threads.
    - ``batchSize``: jobs per batch; None (the default) sizes batches from
      the run's pace (each lasting about a second, the first ones small,
      the last ones spread over the workers).
    - ``killGrace``, ``timeout``, ``idleTimeout``, ``retries``,
      ``retryDelay``, ``memfree``, ``maxBytes``, ``capture``,
      ``processGroup``, ``parentDeathSignal``: applied by each worker's
      runner, on the worker.
    - ``halt``, ``keepOrder``, ``joblog``, ``resume``: applied here, over
      every worker's jobs (the job log is written here).
    - not offered: ``results``, ``stdout``, ``stderr``, ``onOutput``.

    ``reactor`` is the reactor whose thread the run's callbacks and
    Deferred use: ferroproc's (the default; it also works inside any
    running asyncio loop) or a Twisted reactor.

    Raises ``TypeError``/``ValueError`` naming a bad argument.
    """

    def __init__(
        self,
        client: distributed.Client,
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
        if not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a distributed.Client, not {type(client).__name__}")
        self.client = client
        super().__init__(
            lambda: _DaskExecutor(client),
            concurrency=concurrency,
            batchSize=batchSize,
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
            reactor=reactor,
        )

    def run(
        self,
        jobs: Iterable[Job | Sequence[str | bytes]],
        onResult: Callable[[JobResult], object] | None = None,
    ) -> Deferred[JobSummary]:
        """Run ``jobs`` on the cluster (read lazily: a generator is fine; at
        most a few batches are read ahead); returns a Deferred (awaitable
        under asyncio) that fires with the :class:`~ferroproc.jobs.JobSummary`
        once every batch has ended on its worker, its jobs reaped there, and
        the job log is written.

        ``onResult(result)`` is called with each
        :class:`~ferroproc.jobs.JobResult` as results arrive from the workers
        (in chunks; in input order with ``keepOrder``), once per job even
        when a batch ran again after its worker died. An exception it raises
        is logged; the run goes on.

        Cancelling the Deferred (or the asyncio task awaiting it) is
        :meth:`cancel`. A job the runner cannot accept (checked here, before
        it is sent), an exception from ``jobs``, or a batch that fails on
        the cluster (one whose workers died too often while running it:
        Dask's ``KilledWorker``, after ``distributed.scheduler.allowed-failures``
        deaths) stops the run as a cancel does, then fails the Deferred
        with that exception (naming the job or the batch).

        Raises ``TypeError`` when ``jobs`` is not iterable, ``RuntimeError``
        while a run of this runner is in progress or when the client is
        closed, ``OSError`` when the job log cannot be opened, ``ValueError``
        for an unreadable job log to resume from.
        """
        return super().run(jobs, onResult)

    def stream(self, jobs: Iterable[Job | Sequence[str | bytes]]) -> AsyncIterator[JobResult]:
        """Run ``jobs`` and yield each :class:`~ferroproc.jobs.JobResult` as
        it arrives (asyncio)::

            async for result in runner.stream(jobs):
                print(result.seq, result.status)

        A reader that falls behind holds the run back (no batch is sent
        while 256 results wait). Leaving the loop early (``break``, an
        exception, the task cancelled) cancels the run and waits for its end.
        A failed run (see :meth:`run`) raises its exception at the end.
        """
        return super().stream(jobs)

    def cancel(self) -> None:
        """Stop the run: no batch is sent any more, batches that have not
        started run nothing, and on every worker each running job's process
        group gets SIGTERM, then SIGKILL after ``killGrace``; the run's
        Deferred fires with the summary (``cancelled=True``) once every
        batch has ended. Does nothing when no run is in progress."""
        super().cancel()

    @property
    def running(self) -> int:
        """Jobs running now on the workers (as they last told, at most a
        second ago)."""
        return super().running

    @property
    def started(self) -> int:
        """Job attempts started so far in this run (as the workers last told)."""
        return super().started

    @property
    def done(self) -> int:
        """Jobs reported so far in this run (succeeded or failed)."""
        return super().done

    @property
    def failed(self) -> int:
        """Jobs reported as failed so far in this run."""
        return super().failed


def runJobs(
    jobs: Iterable[Job | Sequence[str | bytes]],
    client: distributed.Client,
    *,
    onResult: Callable[[JobResult], object] | None = None,
    **runnerOptions: Any,
) -> Deferred[JobSummary]:
    """``DaskRunner(client, **runnerOptions).run(jobs, onResult)``: run
    ``jobs`` on the cluster and get a Deferred (awaitable) of the
    :class:`~ferroproc.jobs.JobSummary`."""
    return DaskRunner(client, **runnerOptions).run(jobs, onResult)


def _asyncioLoop(client: distributed.Client) -> asyncio.AbstractEventLoop:
    """The asyncio loop a client (or a worker's client) runs on."""
    loop = client.loop
    assert loop is not None, "a running client has a loop"
    return cast(asyncio.AbstractEventLoop, getattr(loop, "asyncio_loop"))  # noqa: B009 - not in tornado's types


class _Names(NamedTuple):
    """The names of a run's objects on the scheduler."""

    run: str

    @property
    def queue(self) -> str:
        """The queue the workers send results to."""
        return f"ferroproc-jobs-{self.run}-results"

    @property
    def soon(self) -> str:
        """The event set when the run stops: start no more jobs."""
        return f"ferroproc-jobs-{self.run}-soon"

    @property
    def now(self) -> str:
        """The event set when the run is cancelled (set before ``soon``):
        stop the running jobs too."""
        return f"ferroproc-jobs-{self.run}-now"

    def skip(self, batchId: int) -> str:
        """The variable holding the bitmap of a batch's jobs the client has."""
        return f"ferroproc-jobs-{self.run}-skip-{batchId}"

    def key(self, batchId: int) -> str:
        """The batch's task key."""
        return f"ferroproc-jobs-{self.run}-{batchId}"


# -- the client side -------------------------------------------------------------


class _DaskExecutor:
    """The :class:`~ferroproc.jobs._cluster.Executor` of one run on Dask.

    Everything talking to the scheduler runs as coroutines on the client's
    own event loop (its thread), so the run's thread never waits for the
    network; the public methods only hand work to that loop.
    """

    def __init__(self, client: distributed.Client) -> None:
        self.client = client
        self.names = _Names(uuid.uuid4().hex[:16])
        self.loop = _asyncioLoop(client)
        self.sink: BatchSink | None = None
        self.queue: Queue | None = None
        self.reader: asyncio.Future[None] | None = None
        #: The size of every batch not finished yet.
        self.sizes: dict[int, int] = {}
        #: Bitmaps to write to a batch's skip variable, the latest only.
        self.latest: dict[int, bytes] = {}
        #: Batches whose skip variable is being written.
        self.writing: set[int] = set()
        self.tasks: set[asyncio.Future[Any]] = set()
        #: Batches whose task has not ended yet.
        self.inflight: set[int] = set()
        self.stopped = False
        self.closing = False
        self.capacityAt = 0.0

    def _soon(self, f: Callable[..., object], *args: Any) -> None:
        self.loop.call_soon_threadsafe(f, *args)

    def _spawn(self, coro: Any) -> None:
        """Start ``coro`` on the loop (called on the loop's thread)."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _start(self, f: Callable[[], Any]) -> None:
        """Start ``f()`` on the loop: the coroutine is made there, so none is
        left unawaited if the loop has closed."""
        self._spawn(f())

    # -- the Executor protocol (any thread) --

    def open(self, sink: BatchSink) -> None:
        if self.client.status not in ("running", "connecting", "newly-created"):
            raise RuntimeError(f"the Dask client is {self.client.status}, not running")
        self.sink = sink
        self._soon(self._start, self._open)

    def submit(self, batch: Batch) -> None:
        self._soon(self._submit, batch)

    def confirm(self, batchId: int, done: bytes) -> None:
        self._soon(self._confirm, batchId, done)

    def finished(self, batchId: int) -> None:
        self._soon(self._finished, batchId)

    def stop(self, now: bool) -> None:
        self._soon(self._stop, now)

    def close(self) -> None:
        self._soon(self._closeOnce)

    # -- on the loop --

    async def _open(self) -> None:
        assert self.sink is not None
        try:
            # Made on the client's loop, the queue is created on the scheduler
            # by a task of its own; wait for that one (``await queue`` would
            # create it a second time, and one close() would then leave it).
            self.queue = Queue(self.names.queue, client=self.client)
            await getattr(self.queue, "_started")  # noqa: B009 - not in distributed's types
            self.reader = asyncio.ensure_future(self._read())
            await self._capacity()
        except Exception as e:  # noqa: BLE001 - the run fails with it
            self.sink.failed(None, e)

    async def _capacity(self) -> None:
        """Tell the run how many batches to keep submitted: two per worker
        thread, so a thread that ends a batch finds the next one waiting."""
        assert self.sink is not None
        self.capacityAt = self.loop.time()
        threads = await self.client.nthreads()
        self.sink.ready(max(2, 2 * sum(threads.values())))

    async def _read(self) -> None:
        """Take the workers' chunks of results from the run's queue, as they
        come, until the end mark."""
        assert self.queue is not None and self.sink is not None
        while True:
            try:
                first = await self.queue.get(timeout=_POLL_SECONDS)
                items = [first]
                if first != _END:
                    items += await self.queue.get(batch=True)
            except asyncio.TimeoutError:
                continue
            except Exception as e:  # noqa: BLE001 - the run fails with it
                self.sink.failed(None, e)
                return
            chunks: list[Chunk] = [tuple(item) for item in items if item != _END]
            if chunks:
                self.sink.chunks(chunks)
            if _END in items:
                return

    def _submit(self, batch: Batch) -> None:
        self.sizes[batch.batchId] = len(batch.jobs)
        self.inflight.add(batch.batchId)
        # The variable's first write is _run's: later ones wait for it (two
        # writes in flight could land in either order).
        self.writing.add(batch.batchId)
        self._spawn(self._run(batch))

    async def _run(self, batch: Batch) -> None:
        assert self.sink is not None
        batchId = batch.batchId
        try:
            try:
                skip = allDone(len(batch.jobs)) if self.stopped else b""
                await Variable(self.names.skip(batchId), client=self.client).set(skip)
            finally:
                self.writing.discard(batchId)
                latest = self.latest.pop(batchId, None)
                if batchId not in self.sizes:
                    Variable(self.names.skip(batchId), client=self.client).delete()
                elif latest is not None:
                    self._write(batchId, latest)
            future = self.client.submit(
                _daskBatch,
                self.names,
                batchId,
                batch.jobs,
                batch.settings,
                key=self.names.key(batchId),
                pure=False,
                retries=0,
                priority=-batchId,
            )
            stats = await cast("Awaitable[BatchStats]", future.result())
        except Exception as e:  # noqa: BLE001 - the run decides what a failed batch means
            self.sink.failed(batchId, e)
        else:
            self.sink.ended(batchId, stats)
        finally:
            self.inflight.discard(batchId)
            if self.stopped and not self.inflight:
                self._closeOnce()
        if self.loop.time() - self.capacityAt > _CAPACITY_SECONDS and not self.stopped:
            try:
                await self._capacity()
            except Exception as e:  # noqa: BLE001 - keep the capacity it had
                _log.debug("ferroproc.jobs.dask: could not count the cluster's threads: %s", e)

    def _confirm(self, batchId: int, done: bytes) -> None:
        if batchId not in self.sizes or self.stopped:
            return
        self._write(batchId, done)

    def _write(self, batchId: int, bitmap: bytes) -> None:
        self.latest[batchId] = bitmap
        if batchId not in self.writing:
            self.writing.add(batchId)
            self._spawn(self._writer(batchId))

    async def _writer(self, batchId: int) -> None:
        """Write the latest bitmap to the batch's skip variable, one write at
        a time (a rerun reads the variable when it starts)."""
        variable = Variable(self.names.skip(batchId), client=self.client)
        try:
            while batchId in self.sizes:
                bitmap = self.latest.pop(batchId, None)
                if bitmap is None:
                    break
                await variable.set(bitmap)
        except Exception as e:  # noqa: BLE001 - a rerun runs more than needed; results still count once
            _log.debug("ferroproc.jobs.dask: could not update %s: %s", variable.name, e)
        finally:
            self.writing.discard(batchId)
            if batchId not in self.sizes:
                variable.delete()

    def _finished(self, batchId: int) -> None:
        self.sizes.pop(batchId, None)
        self.latest.pop(batchId, None)
        if batchId not in self.writing:
            Variable(self.names.skip(batchId), client=self.client).delete()

    def _stop(self, now: bool) -> None:
        first = not self.stopped
        self.stopped = True
        # Attempts not started yet run nothing (a queued batch, a rerun).
        for batchId, size in self.sizes.items():
            self._write(batchId, allDone(size))
        self._spawn(self._signal(now, first))
        if not self.inflight:
            self._closeOnce()

    def _closeOnce(self) -> None:
        """Release the run's objects on the scheduler, once: when the run
        asks, or as soon as a stopped run has no batch left on the cluster
        (so that they go even if the run's thread no longer turns: an
        ``async for`` left early whose loop then closed)."""
        if not self.closing:
            self.closing = True
            self._spawn(self._close())

    async def _signal(self, now: bool, soon: bool) -> None:
        try:
            if now:
                await Event(self.names.now, client=self.client).set()
            if soon:
                await Event(self.names.soon, client=self.client).set()
        except Exception as e:  # noqa: BLE001 - the run fails with it
            assert self.sink is not None
            self.sink.failed(None, e)

    async def _close(self) -> None:
        assert self.sink is not None
        try:
            # The run has every batch: what is left is bookkeeping (a skip
            # bitmap, the stop Events, a count of the cluster's threads),
            # given a bounded time in case the scheduler has gone.
            others = [task for task in self.tasks if task is not asyncio.current_task()]
            if others:
                _, late = await asyncio.wait(others, timeout=_CLOSE_SECONDS)
                for task in late:
                    task.cancel()
            for batchId in list(self.sizes):
                self._finished(batchId)
            # Every batch has ended: wake the workers' watchers, so that they
            # end now rather than at their next poll, and free the events.
            events = [Event(name, client=self.client) for name in (self.names.now, self.names.soon)]
            for event in events:
                await event.set()
            for event in events:
                await event.clear()
            if self.queue is not None:
                await self.queue.put(_END)
                if self.reader is not None:
                    await self.reader
                self.queue.close()
        except Exception as e:  # noqa: BLE001 - the summary must still come
            _log.warning("ferroproc.jobs.dask: closing the run's objects on the scheduler: %s", e)
        finally:
            self.sink.closed()


# -- the worker side ------------------------------------------------------------------


def _daskBatch(names: _Names, batchId: int, jobs: list[PackedJob], settings: BatchSettings) -> BatchStats:
    """The task that runs one batch on a worker (see ``_batch.runBatch``)."""
    attempt = uuid.uuid4().hex
    return runBatch(jobs, settings, _DaskChannel(names, batchId, attempt), attempt)


class _DaskChannel:
    """``_batch.BatchChannel`` on a Dask worker: the run's queue, the batch's
    skip variable and the run's stop events, through the worker's client,
    on the worker's event loop."""

    def __init__(self, names: _Names, batchId: int, attempt: str) -> None:
        self.names = names
        self.batchId = batchId
        self.attempt = attempt
        self.worker = get_worker()
        #: The task's key: the watcher stops the batch if the scheduler lets
        #: the task go (its client died or cancelled it).
        self.key = self.worker.get_current_task()
        self.client = get_client()
        self.loop = _asyncioLoop(self.client)
        self.host = self.worker.address
        self.outbox: asyncio.Queue[list[Any] | None] = asyncio.Queue()
        self.sender = asyncio.run_coroutine_threadsafe(self._send(), self.loop)
        self.onStop: Callable[[bool], None] | None = None
        #: The batch has been told to stop its running jobs.
        self.stopped = False

    def skip(self) -> bytes | None:
        try:
            value = Variable(self.names.skip(self.batchId), client=self.client).get(timeout=_SKIP_SECONDS)
        except (asyncio.TimeoutError, TimeoutError):
            return None
        return bytes(value)

    def slots(self) -> int:
        return max(1, (os.cpu_count() or 1) // max(1, self.worker.state.nthreads))

    def send(self, payload: bytes, started: int, running: int) -> None:
        item = [self.batchId, self.attempt, self.host, started, running, payload]
        self.loop.call_soon_threadsafe(self.outbox.put_nowait, item)

    async def _send(self) -> int:
        """Put the chunks in the run's queue, one after the other (so they
        arrive in order); how many were put. The queue is the client's: it
        is put to without a ``Queue`` object, which would hold a reference
        to it that a killed worker never gives back."""
        sent = 0
        error: Exception | None = None
        while True:
            item = await self.outbox.get()
            if item is None:
                break
            if error is not None:
                continue
            try:
                await cast(Any, self.client.scheduler).queue_put(name=self.names.queue, data=item)
                sent += 1
            except Exception as e:  # noqa: BLE001 - reported by close()
                # The client cannot have the results (it has gone, or the run
                # ended): stop the batch's jobs rather than run them unseen.
                error = e
                onStop = self.onStop
                if onStop is not None:
                    onStop(True)
        if error is not None:
            raise RuntimeError(f"could not send results to the client: {type(error).__name__}: {error}") from error
        return sent

    def watch(self, onStop: Callable[[bool], None]) -> None:
        self.onStop = onStop
        _watchers.register(self)

    def released(self) -> bool:
        """Whether the scheduler has let this batch's task go: its client
        cancelled it or died (Dask goes on running the task's thread).
        Called on the worker's event loop, which owns its state."""
        task = self.worker.state.tasks.get(self.key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    def close(self) -> int:
        if self.onStop is not None:
            _watchers.unregister(self)
            self.onStop = None
        self.loop.call_soon_threadsafe(self.outbox.put_nowait, None)
        return self.sender.result()


class _RunWatch:
    """The batches of one run on this worker, and what the client said."""

    def __init__(self) -> None:
        self.batches: set[_DaskChannel] = set()
        self.soon = False
        self.now = False
        self.watching = False


class _Watchers:
    """One watcher per run on a worker (not one per batch): a coroutine on
    the worker's event loop that waits on the run's ``soon`` event, then on
    its ``now`` event, while the run has batches here, and tells them; and
    between two waits stops the batches whose task the scheduler let go."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, _RunWatch] = {}

    def register(self, channel: _DaskChannel) -> None:
        onStop = channel.onStop
        assert onStop is not None
        with self.lock:
            watch = self.runs.get(channel.names.run)
            if watch is None:
                watch = self.runs[channel.names.run] = _RunWatch()
            watch.batches.add(channel)
            # The client may have spoken before this batch started here.
            told = watch.soon
            now = watch.now
            start = not watch.watching and not now
            watch.watching = watch.watching or start
        if told:
            onStop(now)
        if start:
            asyncio.run_coroutine_threadsafe(self._watch(channel.names, channel.client, watch), channel.loop)

    def unregister(self, channel: _DaskChannel) -> None:
        names = channel.names
        with self.lock:
            watch = self.runs.get(names.run)
            if watch is not None:
                watch.batches.discard(channel)
                if not watch.batches and not watch.watching:
                    del self.runs[names.run]

    def _tell(self, watch: _RunWatch, now: bool) -> None:
        with self.lock:
            if now:
                watch.now = True
            watch.soon = True
            batches = list(watch.batches)
        for channel in batches:
            _stop(channel, now)

    def _orphans(self, watch: _RunWatch) -> None:
        """Stop the batches nobody waits for any more."""
        with self.lock:
            batches = list(watch.batches)
        for channel in batches:
            if channel.released():
                _stop(channel, True)

    async def _watch(self, names: _Names, client: distributed.Client, watch: _RunWatch) -> None:
        soon = Event(names.soon, client=client)
        now = Event(names.now, client=client)
        while True:
            with self.lock:
                if not watch.batches or watch.now:
                    watch.watching = False
                    if not watch.batches and self.runs.get(names.run) is watch:
                        del self.runs[names.run]
                    return
            try:
                if not watch.soon:
                    if await soon.wait(timeout=_POLL_SECONDS):
                        # A cancel sets ``now`` first: look at it at once.
                        self._tell(watch, bool(await now.is_set()))
                elif await now.wait(timeout=_POLL_SECONDS):
                    self._tell(watch, True)
                self._orphans(watch)
            except Exception as e:  # noqa: BLE001 - keep watching
                _log.warning("ferroproc.jobs.dask: watching run %s for a stop: %s", names.run, e)
                await asyncio.sleep(_POLL_SECONDS)


def _stop(channel: _DaskChannel, now: bool) -> None:
    onStop = channel.onStop
    if onStop is not None and not channel.stopped:
        channel.stopped = now
        onStop(now)


_watchers = _Watchers()
