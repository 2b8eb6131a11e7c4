"""The runner: :class:`Runner` and :func:`runJobs`.

Python's part of a run: read the input lazily, check and prepare each job
(bytes for the engine), hand prepared jobs to the core's queue
(``ferroproc._core.JobQueue``), and turn each batch of finished jobs into
:class:`JobResult` records, job log lines, callbacks, the input order on
request, and at the end the :class:`JobSummary`. The core starts jobs,
enforces time limits, captures output, retries, counts for the halt policy,
and starts the next job the moment one ends, without Python.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast

from ferroproc._core import JobQueue
from ferroproc._logger import logError
from ferroproc._spawnargs import SPAWN_PROCESS, ChildOptions, SpawnArgs, _envEntries, prepareSpawn
from ferroproc.defer import Deferred
from ferroproc.error import ResourceUsage
from ferroproc.failure import Failure
from ferroproc.jobs._halt import HaltPolicy
from ferroproc.jobs._host import hostFor
from ferroproc.jobs._job import Job, JobResult, JobSummary
from ferroproc.jobs._joblog import JobLog, ResumeSet, checkHost, command, readResumeSet

__all__ = ["ResultStream", "Runner", "runJobs"]

_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()
_CHILD_OPTIONS = frozenset(ChildOptions.__optional_keys__)
#: GNU parallel's unit prefixes (upper case: powers of 1024; lower: of 1000).
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_UNITS.update({"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15})
#: Results kept for an async iterator whose reader lags, before no more jobs start.
_STREAM_BACKLOG = 256
#: The largest concurrency that means anything (Linux's PID_MAX_LIMIT).
_MOST_SLOTS = 1 << 22
#: Threads that start jobs when more than one runs at a time (0: the loop's
#: thread starts them itself).
_SPAWNERS = 4


_U32_MAX = 2**32 - 1
_U63_MAX = 2**63 - 1


def _atMost(value: int | None, most: int) -> int | None:
    return None if value is None else min(value, most)


def _isNumber(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _seconds(value: object, what: str, allowZero: bool = False) -> float | None:
    if value is None:
        return None
    if not _isNumber(value) or not math.isfinite(cast(float, value)):
        raise ValueError(f"{what} must be a finite number of seconds or None, not {value!r}")
    v = float(cast(float, value))
    if v < 0 or (v == 0 and not allowZero):
        raise ValueError(f"{what} must be {'>= 0' if allowZero else 'positive'}, not {value!r}")
    return v


def _memory(value: int | str | None) -> int | None:
    """``memfree`` in bytes: an int, or GNU parallel's ``"2G"`` forms."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"memfree must be >= 0 bytes, not {value!r}")
        return value
    if isinstance(value, str):
        text = value.strip()
        unit = text[-1:] if text[-1:] in _UNITS and text[-1:] != "" else ""
        number = text[: len(text) - len(unit)]
        try:
            amount = float(number)
        except ValueError:
            amount = -1.0
        if not math.isfinite(amount) or amount < 0:
            raise ValueError(f"memfree: {value!r} is not a size (bytes, or a number with K, M, G, T, k, m, g, t ...)")
        return int(amount * _UNITS[unit])
    raise TypeError(f"memfree must be an int (bytes), a str such as '2G', or None, not {type(value).__name__}")


def _fd(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} must be an open fd (an int >= 0) or None, not {value!r}")
    try:
        os.fstat(value)
    except OSError:
        raise ValueError(f"{what}: fd {value} is not open") from None
    return value


class Runner:
    """Runs jobs with a concurrency limit; see :mod:`ferroproc.jobs`.

    Arguments (all keyword-only):
        concurrency: how many jobs run at once (default: the number of CPUs).
        timeout, idleTimeout: each job's limits in seconds, wall clock and
            without output (a :class:`Job`'s own override them); then the
            job's process group gets SIGTERM, and SIGKILL ``killGrace``
            seconds later. ``idleTimeout`` needs captured output (not with
            ``results``, ``stdout`` or ``stderr``).
        killGrace: seconds between SIGTERM and SIGKILL (time limits,
            :meth:`cancel`, a ``now`` halt); 0 sends SIGKILL at once.
        retries, retryDelay: run a failed job again, up to ``retries`` more
            times, ``retryDelay`` seconds after it ended. Only its last
            attempt is reported.
        halt: a :class:`HaltPolicy`, or GNU parallel's ``--halt`` text
            (``"now,fail=1"``, ``"soon,fail=10%"``, ``"now,success=1"`` ...).
        memfree: start a job only while the kernel's ``MemAvailable`` is at
            least this many bytes (an int, or ``"2G"``, ``"500M"``);
            checked again every 0.2 s while it holds jobs back.
        maxBytes: what is kept of each job's stdout and of its stderr (the
            rest is counted and dropped: ``truncated``); None keeps all.
        capture: False reads the output and drops it (still counted).
        results: a directory: each job's stdout and stderr go to
            ``DIR/<seq>/stdout`` and ``DIR/<seq>/stderr`` (files the core
            opens for the job: no byte passes through this process).
        stdout, stderr: an fd every job writes that stream to directly
            (GNU parallel's ``-u``); not captured.
        keepOrder: report results in input order (those that end early wait).
        joblog: write GNU parallel's ``--joblog`` file here.
        joblogAppend: add to ``joblog`` rather than start it afresh (GNU
            parallel's ``--joblog +FILE``); the header only if it is new.
        joblogHost: the log's Host column (default ``":"``, this machine,
            as GNU parallel writes it for local jobs): a name without TAB,
            newline or NUL.
        resume: True skips the jobs ``joblog`` shows (``--resume``);
            ``"failed"`` skips only those it shows succeeded, so the failed
            ones run again (``--resume-failed``). The log is appended to;
            a last line cut short (a run killed while writing it) is
            dropped first, and that job runs again.
        processGroup: each job leads its own process group (default), which
            time limits, a cancel and a ``now`` halt stop, and which is
            killed when the job's program exits (``killGroupOnExit``).
        parentDeathSignal: the signal a job's program gets if this process
            dies (default ``"KILL"``); None for none.
        onOutput: ``onOutput(seq, fd, data)`` for each piece of output as it
            arrives (in batches, before the job's result), e.g. to show lines
            as they come.
        reactor: the reactor whose engine runs the jobs: ferroproc's (the
            default; it also runs inside any running asyncio loop) or a
            Twisted reactor (with :mod:`ferroproc.twisted`).

    Raises ``TypeError``/``ValueError`` naming a bad argument.

    The counters :attr:`running`, :attr:`started`, :attr:`done` and
    :attr:`failed` describe the current (or last) run, for progress displays.
    """

    def __init__(
        self,
        *,
        concurrency: int | None = None,
        timeout: float | None = None,
        idleTimeout: float | None = None,
        killGrace: float = 5.0,
        retries: int = 0,
        retryDelay: float = 0.0,
        halt: str | HaltPolicy | None = None,
        memfree: int | str | None = None,
        maxBytes: int | None = 1 << 20,
        capture: bool = True,
        results: str | os.PathLike[str] | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        keepOrder: bool = False,
        joblog: str | os.PathLike[str] | None = None,
        resume: bool | Literal["failed"] = False,
        joblogAppend: bool = False,
        joblogHost: str = ":",
        processGroup: bool = True,
        parentDeathSignal: int | str | None = "KILL",
        onOutput: Callable[[int, int, bytes], object] | None = None,
        reactor: Any = None,
    ) -> None:
        if concurrency is None:
            concurrency = os.cpu_count() or 1
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValueError(f"concurrency must be an int of at least 1, not {concurrency!r}")
        # No more jobs can run at once than the kernel has process ids
        # (pid_max is at most 2**22): a larger limit changes nothing, and
        # past 2**64 the core's count could not even hold it.
        self.concurrency = min(concurrency, _MOST_SLOTS)
        self.timeout = _seconds(timeout, "timeout")
        self.idleTimeout = _seconds(idleTimeout, "idleTimeout")
        self.killGrace = cast(float, _seconds(killGrace, "killGrace", allowZero=True))
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, not {retries!r}")
        self.retries = retries
        self.retryDelay = cast(float, _seconds(retryDelay, "retryDelay", allowZero=True))
        if isinstance(halt, str):
            halt = HaltPolicy.parse(halt)
        elif isinstance(halt, HaltPolicy):
            halt = halt._check()
        elif halt is not None:
            raise TypeError(f"halt must be a str, a HaltPolicy or None, not {type(halt).__name__}")
        self.halt: HaltPolicy | None = halt
        self.memfree = _memory(memfree)
        if maxBytes is not None and (not isinstance(maxBytes, int) or isinstance(maxBytes, bool) or maxBytes < 0):
            raise ValueError(f"maxBytes must be an int >= 0 or None, not {maxBytes!r}")
        self.maxBytes = maxBytes
        if not isinstance(capture, bool):
            raise TypeError(f"capture must be a bool, not {type(capture).__name__}")
        self.capture = capture
        self.results = None if results is None else os.fsencode(results)
        self.stdout = _fd(stdout, "stdout")
        self.stderr = _fd(stderr, "stderr")
        if self.idleTimeout is not None and (self.results is not None or stdout is not None or stderr is not None):
            raise ValueError("idleTimeout needs the output captured: not with results, stdout or stderr")
        self.keepOrder = bool(keepOrder)
        self.joblog = joblog
        if resume not in (False, True, "failed"):
            raise ValueError(f"resume must be False, True or 'failed', not {resume!r}")
        if resume and joblog is None:
            raise ValueError("resume needs a joblog to read")
        self.resume = resume
        if not isinstance(joblogAppend, bool):
            raise TypeError(f"joblogAppend must be a bool, not {type(joblogAppend).__name__}")
        self.joblogAppend = joblogAppend
        self.joblogHost = checkHost(joblogHost)
        if not isinstance(processGroup, bool):
            raise TypeError(f"processGroup must be a bool, not {type(processGroup).__name__}")
        self.processGroup = processGroup
        self.parentDeathSignal = parentDeathSignal
        # Every option every job gets, checked now by spawnProcess's own rules.
        _checkedSpawnCall(_template, _runnerOptions(self))
        if onOutput is not None and not callable(onOutput):
            raise TypeError("onOutput must be callable or None")
        self.onOutput = onOutput
        self._host = hostFor(reactor)
        self._run: _Run | None = None

    # -- running -------------------------------------------------------------

    def run(
        self,
        jobs: Iterable[Job | Sequence[str | bytes]],
        onResult: Callable[[JobResult], object] | None = None,
    ) -> Deferred[JobSummary]:
        """Run ``jobs`` (read lazily: a generator is fine); returns a
        Deferred (awaitable under asyncio) that fires with the
        :class:`JobSummary` once every job that started has ended and been
        reaped, and the job log is written.

        ``onResult(result)`` is called with each :class:`JobResult` as jobs
        end (in batches, one per loop turn; in input order with
        ``keepOrder``). An exception it raises is logged; the run goes on.

        Cancelling the Deferred (or the asyncio task awaiting it) is
        :meth:`cancel`: the Deferred then fires with the summary
        (``cancelled=True``) once every job is reaped. A job the runner
        cannot accept (not a :class:`Job` or sequence of str/bytes, a bad
        field) or an exception from ``jobs`` stops the run as a cancel does,
        then fails the Deferred with that exception (naming the job).

        Raises ``TypeError`` when ``jobs`` is not iterable, ``RuntimeError``
        while a run of this runner is in progress, ``OSError`` when the job
        log or the results directory cannot be opened, ``ValueError`` for an
        unreadable job log to resume from.
        """
        if self._run is not None and not self._run.finished:
            raise RuntimeError("this Runner is already running jobs (make another Runner to run more at once)")
        if onResult is not None and not callable(onResult):
            raise TypeError("onResult must be callable or None")
        try:
            iterator = iter(jobs)
        except TypeError:
            raise TypeError(f"jobs must be an iterable of Job or argv sequences, not {type(jobs).__name__}") from None
        total = len(jobs) if isinstance(jobs, Sequence) else None
        self._run = _Run(self, iterator, total, onResult)
        return self._run.start()

    def stream(self, jobs: Iterable[Job | Sequence[str | bytes]]) -> ResultStream:
        """Run ``jobs`` and give each :class:`JobResult` as it ends (asyncio)::

            async with runner.stream(jobs) as results:
                async for result in results:
                    print(result.seq, result.status)

        A reader that falls behind holds the run back (no job starts while
        256 results wait) rather than letting results pile up. Leaving early
        (``break``, an exception, the task cancelled) cancels the run as soon
        as the iterator is dropped; leaving the ``async with`` block (or
        ``await results.aclose()``) also waits until every job has been
        reaped. A failed run (see :meth:`run`) raises its exception at the end.
        """
        return ResultStream(self, jobs)

    def cancel(self, grace: float | None = None) -> None:
        """Stop the run: no job starts any more, and every running job's
        process group gets SIGTERM, then SIGKILL ``grace`` seconds later
        (default ``killGrace``; 0: SIGKILL at once); the run's Deferred
        fires with the summary (``cancelled=True``) once all are reaped and
        logged. Called again with a shorter ``grace`` while they are being
        stopped, it brings their SIGKILL forward (``cancel(grace=0)``: a
        second Ctrl-C), also for jobs a time limit is stopping (they still
        count as timed out). Does nothing when no run is in progress. Safe
        from any thread (and from a signal handler): from another thread
        than the one the run runs on, it is handed to that thread.

        Raises ``ValueError`` for a ``grace`` that is not a number >= 0."""
        grace = _seconds(grace, "grace", allowZero=True)
        run = self._run
        if run is None:
            return
        if threading.get_ident() != run.thread:
            self._host.callFromThread(lambda: run.cancel(grace))
        else:
            run.cancel(grace)

    def drain(self) -> None:
        """Stop starting jobs, and let the running ones end by themselves
        (GNU parallel's ``--halt soon``): jobs not started yet never start,
        a running job that fails is not retried, and the run's Deferred
        fires with the summary (``cancelled=True``) once the running jobs
        have ended. :meth:`cancel` afterwards stops them too. Does nothing
        when no run is in progress, or once it is stopping already. Safe
        from any thread, as :meth:`cancel` is."""
        run = self._run
        if run is None:
            return
        if threading.get_ident() != run.thread:
            self._host.callFromThread(run.drain)
        else:
            run.drain()

    @property
    def running(self) -> int:
        """Jobs running now."""
        return self._run.queue.running if self._run is not None else 0

    @property
    def started(self) -> int:
        """Job attempts started in this run (a retry counts again)."""
        return self._run.queue.started if self._run is not None else 0

    @property
    def done(self) -> int:
        """Jobs reported so far in this run (succeeded or failed)."""
        return self._run.succeeded + self._run.failed if self._run is not None else 0

    @property
    def failed(self) -> int:
        """Jobs reported as failed so far in this run."""
        return self._run.failed if self._run is not None else 0

    @property
    def skipped(self) -> int:
        """Jobs skipped so far in this run, because the job log showed them
        done (``resume``): the summary's ``skipped``, counted as the input
        is read."""
        return self._run.skipped if self._run is not None else 0


def runJobs(
    jobs: Iterable[Job | Sequence[str | bytes]],
    *,
    onResult: Callable[[JobResult], object] | None = None,
    **runnerOptions: Any,
) -> Deferred[JobSummary]:
    """``Runner(**runnerOptions).run(jobs, onResult)``: run ``jobs`` and get a
    Deferred (awaitable) of the :class:`JobSummary`."""
    return Runner(**runnerOptions).run(jobs, onResult)


#: The first callback of a cancelled run's Deferred: wait for the summary.
_WAIT_FOR_SUMMARY = object()


class _Run:
    """One run of a :class:`Runner`."""

    def __init__(
        self,
        runner: Runner,
        iterator: Iterator[Job | Sequence[str | bytes]],
        total: int | None,
        onResult: Callable[[JobResult], object] | None,
    ) -> None:
        self.runner = runner
        self.host = runner._host
        #: The thread the run runs on (the engine's driver).
        self.thread = threading.get_ident()
        self.iterator = iterator
        self.total = total
        self.onResult = onResult
        self.onOutput = runner.onOutput
        self.seq = 0
        self.succeeded = self.failed = self.skipped = 0
        self.exhausted = False
        self.stopping = False
        #: cancel() or drain() stopped the run (the summary says so) ...
        self.cancelled = False
        #: ... cancel() is stopping the running jobs.
        self.killing = False
        self.finished = False
        self.error: Failure | None = None
        self.haltStatus: int | None = None
        self.halted = False
        #: keepOrder: results (or None for skipped jobs) waiting for an earlier one.
        self.held: dict[int, JobResult | None] = {}
        self.nextSeq = 1
        self.wakeCall: Any = None
        self.wakeAt: float | None = None
        self.draining = False
        self.again = False
        #: Set by an async iterator: how many results it has not read yet.
        self.backlog: Callable[[], int] | None = None
        self.skip: ResumeSet | None = None
        self.log: JobLog | None = None
        self.deferred: Deferred[JobSummary] = Deferred(self._cancelDeferred)
        self.deferred.addCallback(self._waitIfCancelled)
        self.summaryReady: Deferred[JobSummary] | None = None
        self.envp = _envEntries(None, SPAWN_PROCESS)
        self.options = _runnerOptions(runner)
        template = _template(self.options)
        halt = runner.halt
        self.queue = JobQueue(
            self.host.engine(),
            self._drain,
            template,
            environ=self.envp,
            concurrency=runner.concurrency,
            ahead=runner.concurrency + max(runner.concurrency, 16),
            killGrace=runner.killGrace,
            # Counts and sizes past what the core's integers hold mean the
            # same as the largest it holds (more tries, jobs or bytes than
            # any run has): an OverflowError from the bindings otherwise.
            retries=min(runner.retries, _U32_MAX),
            retryDelay=runner.retryDelay,
            memfree=None if runner.memfree is None else min(runner.memfree, _U63_MAX),
            halt=None if halt is None else (halt.when, halt.on, _atMost(halt.number, _U63_MAX), halt.percent),
            maxBytes=None if runner.maxBytes is None else min(runner.maxBytes, _U63_MAX),
            capture=runner.capture,
            results=runner.results,
            stdout=runner.stdout,
            stderr=runner.stderr,
            streamOutput=runner.onOutput is not None,
            timeout=runner.timeout,
            idleTimeout=runner.idleTimeout,
            jobClass=Job,
            resultClass=JobResult,
            usageClass=ResourceUsage,
            utf8=_FS_ENCODING == "utf-8" and _FS_ERRORS == "surrogateescape",
            spawners=_SPAWNERS,
        )
        if total is not None:
            self.queue.setTotal(total)

    # -- the Deferred ----------------------------------------------------------

    def _cancelDeferred(self, d: Deferred[JobSummary]) -> None:
        """Cancelling the run's Deferred: cancel the run, and have the
        Deferred wait for the summary instead of failing with CancelledError."""
        self.cancel()
        if not d.called:
            self.summaryReady = Deferred()
            d.callback(cast(JobSummary, _WAIT_FOR_SUMMARY))

    def _waitIfCancelled(self, result: object) -> object:
        if result is _WAIT_FOR_SUMMARY:
            assert self.summaryReady is not None
            return self.summaryReady
        return result

    # -- start, input ----------------------------------------------------------

    def start(self) -> Deferred[JobSummary]:
        r = self.runner
        self.started = self.host.engine().seconds()
        try:
            if r.joblog is not None:
                if r.resume:
                    self.skip = readResumeSet(r.joblog, failedToo=r.resume == "failed")
                self.log = JobLog(r.joblog, append=bool(r.resume) or r.joblogAppend, host=r.joblogHost)
            if r.results is not None:
                os.makedirs(r.results, exist_ok=True)
        except BaseException:
            self.queue.close()
            if self.log is not None:
                self.log.close()
            self.finished = True
            raise
        try:
            self._outside(self._refill)
        except BaseException:
            # Refused before any job could start (another thread's run).
            self.queue.cancel()
            if self.queue.idle:
                self.queue.close()
                if self.log is not None:
                    self.log.close()
                self.finished = True
            raise
        return self.deferred

    def _outside(self, f: Callable[[], object]) -> None:
        """Run ``f`` (which gives the engine work) from outside an engine
        turn, then let the host know, and report what it led to."""
        try:
            f()
        finally:
            self.host.touched()
            self._drain()

    def _refill(self) -> None:
        """Prepare jobs until the queue has enough (unless stopping, or an
        async iterator's reader lags)."""
        if self.exhausted or self.stopping:
            return
        if self.backlog is not None and self.backlog() >= _STREAM_BACKLOG:
            return
        queue = self.queue
        wanted = queue.wanted
        while wanted > 0:
            try:
                item = next(self.iterator)
            except StopIteration:
                self.exhausted = True
                if self.total is None:
                    self.total = self.seq - self.skipped
                    self.queue.setTotal(self.total)
                return
            except Exception as e:  # noqa: BLE001 - the input failed: stop the run with it
                self._fail(e, f"jobs: the input raised {type(e).__name__} after job {self.seq}: {e}")
                return
            self.seq += 1
            seq = self.seq
            if self.skip is not None and seq in self.skip:
                self.skipped += 1
                if self.runner.keepOrder:
                    self.held[seq] = None
                continue
            try:
                if not queue.push(seq, item):
                    self._push(seq, item)
            except (TypeError, ValueError, OSError) as e:
                self._fail(e, f"jobs: job {seq}: {e}")
                return
            wanted -= 1

    def _push(self, seq: int, item: Job | Sequence[str | bytes]) -> None:
        """Check one job the queue's fast path left to Python, and hand it
        to the queue (or raise, naming what is wrong)."""
        job = item if isinstance(item, Job) else _asJob(item)
        argv = job.argv
        if not isinstance(argv, (tuple, list)) or not argv:
            raise TypeError(f"argv must be a non-empty tuple of str or bytes, not {argv!r}")
        r = self.runner
        timeout = r.timeout if job.timeout is None else _seconds(job.timeout, "timeout")
        idle = r.idleTimeout if job.idleTimeout is None else _seconds(job.idleTimeout, "idleTimeout")
        if idle is not None and (r.results is not None or r.stdout is not None or r.stderr is not None):
            raise ValueError("idleTimeout needs the output captured: not with results, stdout or stderr")
        stdin = job.stdinBytes
        if stdin is not None and type(stdin) is not bytes:
            if not isinstance(stdin, bytes):
                raise TypeError(f"stdinBytes must be bytes or None, not {type(stdin).__name__}")
            stdin = bytes(stdin)
        if job.options:
            self.queue.pushPrepared(seq, job, None, None, None, stdin, timeout, idle, self._fullArgs(job))
            return
        out = []
        for i, a in enumerate(argv):
            if type(a) is str:
                b = a.encode(_FS_ENCODING, _FS_ERRORS)
            elif type(a) is bytes:
                b = a
            elif isinstance(a, (str, bytes, os.PathLike)):
                b = os.fsencode(a)
            else:
                raise TypeError(f"argv[{i}] must be str or bytes, not {type(a).__name__}")
            if b"\0" in b:
                raise ValueError(f"argv[{i}] contains a NUL byte: {a!r}")
            out.append(b)
        env = job.env
        envp = None if env is None else _checkedSpawnCall(_envEntries, env, SPAWN_PROCESS)
        cwd = None
        if job.path is not None:
            cwd = os.fsencode(job.path)
            if not cwd or b"\0" in cwd:
                raise ValueError(f"path must be a non-empty path without NUL bytes, not {job.path!r}")
        self.queue.pushPrepared(seq, job, out, envp, cwd, stdin, timeout, idle, None)

    def _fullArgs(self, job: Job) -> SpawnArgs:
        """A job with options of its own: every spawn argument, checked by
        ``prepareSpawn`` (the runner's options under the job's)."""
        if not isinstance(job.options, Mapping):
            raise TypeError(f"options must be a mapping of ChildOptions, not {type(job.options).__name__}")
        unknown = sorted(set(job.options) - _CHILD_OPTIONS)
        if unknown:
            raise TypeError(f"options: {unknown[0]!r} is not one of spawnProcess's ChildOptions")
        options = dict(self.options)
        ownGroup = "processGroup" in job.options or "newSession" in job.options
        if ownGroup:
            options.pop("processGroup", None)
            if job.options.get("processGroup") is not True and not job.options.get("newSession"):
                options.pop("killGroupOnExit", None)
        options.update(job.options)
        args: SpawnArgs = _checkedSpawnCall(
            prepareSpawn,
            None,
            job.argv[0],
            job.argv,
            {} if job.env is None else job.env,
            job.path,
            None,
            None,
            False,
            {0: 0, 1: 1, 2: 2},
            options,
        )
        return args._replace(envp=self.envp) if job.env is None else args

    def _fail(self, e: BaseException, message: str) -> None:
        """Stop the run because of bad input; the Deferred fails with ``e``
        (its message naming the job) once every job is reaped."""
        if self.error is None:
            try:
                e.args = (message,)
            except (AttributeError, TypeError):  # an exception class that refuses new args
                pass
            self.error = Failure(e)
        self.cancel()

    # -- stopping ----------------------------------------------------------------

    def cancel(self, grace: float | None = None) -> None:
        if self.finished or (self.killing and grace is None):
            return
        self.cancelled = self.stopping = self.killing = True
        self._outside(lambda: self.queue.cancel(grace))

    def drain(self) -> None:
        if self.finished or self.stopping:
            return
        self.cancelled = self.stopping = True
        self._outside(self.queue.drain)

    # -- results -------------------------------------------------------------------

    def _drain(self) -> None:
        """Take what the queue has finished and report it; refill; finish
        when nothing is left. Called by the engine at the end of a turn that
        finished jobs, and after anything done from outside a turn."""
        if self.draining:
            self.again = True
            return
        self.draining = True
        queue = self.queue
        try:
            while True:
                self.again = False
                results, outputs, wakeAt, haltSeq = queue.take()
                if outputs and self.onOutput is not None:
                    for seq, fd, data in outputs:
                        try:
                            self.onOutput(seq, fd, data)
                        except Exception as e:  # noqa: BLE001 - logged, the run goes on
                            logError("onOutput", e)
                for result in results:
                    self._result(result, haltSeq)
                if self.log is not None and results:
                    self.log.flush()
                if haltSeq is not None:
                    # The policy was reached: the queue starts no more jobs.
                    self.stopping = self.halted = True
                self._refill()
                if wakeAt is not None:
                    self._wakeAt(wakeAt)
                # More since the take (a job that could not start ...)?
                if not self.again and not queue.news:
                    break
            self._maybeFinish()
        finally:
            self.draining = False

    def _result(self, result: JobResult, haltSeq: int | None) -> None:
        seq = result.seq
        if result.exitCode == 0 and not result.timedOut and not result.cancelled:
            self.succeeded += 1
        else:
            self.failed += 1
        if seq == haltSeq:
            self._halt(result)
        if self.log is not None:
            self.log.write(result, command(result.job))
        if not self.runner.keepOrder:
            self._report(result)
            return
        self.held[seq] = result
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

    def _halt(self, result: JobResult) -> None:
        """The halt policy triggered on ``result``: decide the exit status
        as GNU parallel does."""
        self.halted = True
        policy = self.runner.halt
        assert policy is not None
        if policy.on == "success":
            self.haltStatus = 0
        elif policy.number == 1:
            self.haltStatus = result.status
        elif policy.percent is not None:
            self.haltStatus = math.ceil(self.failed / max(self.total or 1, 1) * 100)
        else:
            self.haltStatus = min(self.failed, 101)

    def _wakeAt(self, at: float | None) -> None:
        """Have the host call :meth:`_kick` at ``at`` (a retry's delay, the
        memory gate's next look)."""
        if at is None or (self.wakeAt is not None and self.wakeAt <= at):
            return
        if self.wakeCall is not None and self.wakeCall.active():
            self.wakeCall.cancel()
        self.wakeAt = at
        self.wakeCall = self.host.callLater(max(0.0, at - self.host.engine().seconds()), self._kick)

    def _kick(self) -> None:
        self.wakeCall = self.wakeAt = None
        if not self.finished:
            self._outside(self.queue.kick)

    def resumeInput(self) -> None:
        """An async iterator's reader caught up: read more jobs."""
        if not self.finished and not self.draining:
            self._outside(self._refill)

    def _maybeFinish(self) -> None:
        if self.finished or not (self.exhausted or self.stopping) or not self.queue.idle:
            return
        self.finished = True
        if self.wakeCall is not None and self.wakeCall.active():
            self.wakeCall.cancel()
        self.wakeCall = None
        for seq in sorted(self.held):
            held = self.held.pop(seq)
            if held is not None:
                self._report(held)
        self.queue.close()
        if self.log is not None:
            self.log.close()
        if self.exhausted and self.total is None:
            self.total = self.seq - self.skipped
        summary = JobSummary(
            total=self.seq,
            succeeded=self.succeeded,
            failed=self.failed,
            skipped=self.skipped,
            halted=self.halted,
            cancelled=self.cancelled and self.error is None,
            elapsed=self.host.engine().seconds() - self.started,
            haltStatus=self.haltStatus,
        )
        outcome: JobSummary | Failure = summary if self.error is None else self.error
        target = self.summaryReady if self.summaryReady is not None else self.deferred
        if isinstance(outcome, Failure):
            target.errback(outcome)
        else:
            target.callback(outcome)


def _runnerOptions(r: Runner) -> dict[str, Any]:
    """The spawn options every job of ``r`` gets (a job's own go over them)."""
    options: dict[str, Any] = {}
    if r.processGroup:
        options["processGroup"] = True
        options["killGroupOnExit"] = True
    if r.parentDeathSignal is not None:
        options["parentDeathSignal"] = r.parentDeathSignal
    return options


def _template(options: Mapping[str, Any]) -> SpawnArgs:
    """The spawn arguments every job starts from, checked by
    ``prepareSpawn``. A bare program name, so that they carry our ``PATH``
    for jobs whose program is a bare name."""
    return prepareSpawn(None, "job", ["job"], {}, None, None, None, False, {0: 0, 1: 1, 2: 2}, options)


def _asJob(item: object) -> Job:
    if isinstance(item, (str, bytes)):
        raise TypeError(
            f"a job must be a Job or a sequence of arguments, not a single {type(item).__name__} "
            "(use Job.shell(...) for a shell command line)"
        )
    if not isinstance(item, Sequence):
        raise TypeError(f"a job must be a Job or a sequence of arguments, not {type(item).__name__}")
    return Job(tuple(item))


def _checkedSpawnCall(f: Callable[..., Any], *args: Any) -> Any:
    """Call one of ``_spawnargs``' checks, its messages named for a job
    (they name ``spawnProcess``, which the job's author never called)."""
    try:
        return f(*args)
    except (TypeError, ValueError) as e:
        text = str(e).removeprefix("spawnProcess: ")
        raise type(e)(text) from None


class _StreamState:
    """What a run tells a :class:`ResultStream` (kept apart from it, so that
    the run holds no reference to the stream: dropping the stream, as
    ``break`` does, is seen at once)."""

    def __init__(self) -> None:
        self.ready: deque[JobResult] = deque()
        self.outcome: JobSummary | Failure | None = None
        self.waiter: Any = None
        self.run: _Run | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def onResult(self, result: JobResult) -> None:
        self.ready.append(result)
        self.wake()

    def onEnd(self, outcome: JobSummary | Failure) -> None:
        self.outcome = outcome
        self.wake()

    def backlog(self) -> int:
        return len(self.ready)

    async def wait(self) -> None:
        import asyncio

        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


class ResultStream(AsyncIterator[JobResult]):
    """The results of a run as they come, from :meth:`Runner.stream`: an
    async iterator (asyncio), and an async context manager whose exit waits
    until every job has been reaped (cancelling the run if it is left early).
    """

    def __init__(self, runner: Runner, jobs: Iterable[Job | Sequence[str | bytes]]) -> None:
        self._runner = runner
        self._state = state = _StreamState()
        self._failure: Failure | None = None
        d = runner.run(jobs, state.onResult)
        state.run = runner._run
        assert state.run is not None
        state.run.backlog = state.backlog
        d.addBoth(state.onEnd)

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> JobResult:
        state = self._state
        while True:
            if state.ready:
                result = state.ready.popleft()
                if len(state.ready) == _STREAM_BACKLOG // 2 and state.run is not None:
                    state.run.resumeInput()
                return result
            outcome = state.outcome
            if outcome is not None:
                if isinstance(outcome, Failure) and self._failure is None:
                    self._failure = outcome
                    outcome.raiseException()
                raise StopAsyncIteration
            await state.wait()

    async def aclose(self) -> None:
        """Cancel the run unless it has ended, and wait until every job has
        been reaped (and the job log written)."""
        state = self._state
        if state.outcome is None:
            self._runner.cancel()
        while state.outcome is None:
            await state.wait()

    async def __aenter__(self) -> ResultStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Left early (``break``, an exception): stop the jobs now; the engine
        # reaps them while its loop runs (aclose() waits for that).
        state = getattr(self, "_state", None)
        if state is not None and state.outcome is None:
            try:
                self._runner.cancel()
            except Exception:  # noqa: BLE001 - a finalizer must not raise (interpreter shutdown...)
                pass
